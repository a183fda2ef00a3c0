"""What a fresh machine has without any setting: shipped wine data, a generated drop month,
automation that builds what is missing, clear errors for missing inputs, and plain Dagster
commands that work from the repository root."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from beer_assets.definitions import defs as beer_defs
from platform_core.automation import BUILD_WHEN_MISSING
from platform_core.dev import alive, descendants
from platform_core.errors import MissingInputError
from platform_core.storage import PlatformStorage
from tests.conftest import REPO_ROOT
from tests.first_run.platform import fresh_env, leftovers, wait_until
from wine_assets.datasets import SHA256, SHIPPED_WINE_QUALITY, wine_quality_dir
from wine_assets.definitions import defs as wine_defs
from wine_assets.features import read_uci
from wine_assets.profiles.assets import drop_source
from wine_assets.profiles.generate import SYNTHETIC_DAYS, SYNTHETIC_MARKER, is_synthetic
from wine_assets.profiles.resources import (
    SensorProfilesSettings,
    default_drop_dir,
    synthetic_drop_dir,
)
from wine_assets.quality.training import TrainingSourceConfig, wine_training_data

BIN = Path(sys.executable).parent


@pytest.fixture
def fresh(monkeypatch, tmp_path) -> Path:
    """A newcomer's settings: an empty data folder and platform home."""
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    return tmp_path


# -- data -----------------------------------------------------------------------------


def test_shipped_wine_files_match_their_checksums_and_licence():
    licence = (SHIPPED_WINE_QUALITY / "LICENSE.md").read_text()
    assert "CC BY 4.0" in licence and "Cortez" in licence
    for name, digest in SHA256.items():
        assert hashlib.sha256((SHIPPED_WINE_QUALITY / name).read_bytes()).hexdigest() == digest
        assert digest in licence, name


def test_wine_data_comes_from_the_package_unless_the_data_folder_has_it(fresh):
    assert wine_quality_dir() == SHIPPED_WINE_QUALITY
    uci = read_uci()
    assert (uci["wine_type"] == "red").sum() == 1599 and (uci["wine_type"] == "white").sum() == 4898
    own = fresh / "data" / "wine_quality"
    own.mkdir(parents=True)
    for name in ("winequality-red.csv", "winequality-white.csv"):
        text = (SHIPPED_WINE_QUALITY / name).read_text().splitlines()
        (own / name).write_text("\n".join(text[:11]) + "\n")  # header + 10 wines
    assert wine_quality_dir() == own
    assert len(read_uci()) == 20


def test_training_data_asset_reads_the_shipped_copy_and_says_so(fresh):
    result = dg.materialize([wine_training_data])
    assert result.success
    (event,) = result.asset_materializations_for_node("wine_training_data")
    assert event.metadata["source"].value == str(SHIPPED_WINE_QUALITY)
    assert event.metadata["shipped_copy"].value is True


def test_generated_drop_month_is_written_once_and_labelled_synthetic(fresh):
    assert default_drop_dir() == str(synthetic_drop_dir())
    assert not synthetic_drop_dir().exists()
    settings = SensorProfilesSettings(drop_dir=default_drop_dir())
    location = settings.drop_location(s3=None)
    files = location.files()
    assert len(files) == SYNTHETIC_DAYS
    assert is_synthetic(synthetic_drop_dir()) and (synthetic_drop_dir() / SYNTHETIC_MARKER).exists()
    before = {f.name: f.signature for f in files}
    settings.drop_location(s3=None)  # a second look leaves the files alone
    assert {f.name: f.signature for f in location.files()} == before
    storage = PlatformStorage.local(str(fresh / "storage"))
    day = files[0].name.removeprefix("readings-").removesuffix(".csv")
    begin = datetime.fromisoformat(day)
    _, _, metadata = drop_source(settings, storage, [day], begin, begin + timedelta(days=1))
    assert metadata["synthetic"] is True
    assert metadata["drop_location"] == str(synthetic_drop_dir())


def test_generated_month_is_the_same_on_every_machine(monkeypatch, tmp_path):
    contents = []
    for machine in ("a", "b"):
        monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / machine))
        monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "none"))
        SensorProfilesSettings(drop_dir=default_drop_dir()).drop_location(s3=None)
        folder = synthetic_drop_dir()
        contents.append({p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))})
    assert contents[0] == contents[1]


def test_system_e_sample_is_the_default_where_a_user_has_it(monkeypatch, tmp_path):
    sample = tmp_path / "data" / "mock_ml_pipeline"
    sample.mkdir(parents=True)
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "data"))
    assert default_drop_dir() == str(sample)


# -- missing inputs -----------------------------------------------------------------------


def test_missing_training_source_names_setting_path_and_fix(tmp_path):
    missing = tmp_path / "nowhere"
    result = dg.materialize(
        [wine_training_data],
        run_config={"ops": {"wine_training_data": {"config": {"source": str(missing)}}}},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert f"{missing}/winequality-red.csv" in message
    assert "PLATFORM_DATA_DIR" in message and "Fix:" in message
    assert TrainingSourceConfig().source == ""


def test_missing_drop_folder_names_setting_and_fix(tmp_path):
    settings = SensorProfilesSettings(drop_dir=str(tmp_path / "gone"))
    with pytest.raises(Exception, match="PROFILES_DROP_DIR") as info:
        settings.drop_location(s3=None).files()
    assert str(tmp_path / "gone") in str(info.value) and "Fix:" in str(info.value)


def test_missing_punk_api_dump_tells_how_to_get_it(tmp_path):
    missing = tmp_path / "beers.json"
    proc = subprocess.run(
        [str(BIN / "punkapi-server"), "--dump", str(missing), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "make data" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_prints_one_line_for_a_missing_input(capsys):
    from platform_core.errors import exit_on_missing_input

    @exit_on_missing_input
    def tool() -> int:
        raise MissingInputError("thing", "/x/y", "SOME_SETTING", "do this")

    assert tool() == 2
    err = capsys.readouterr().err
    assert err == "error: thing not found at /x/y (setting SOME_SETTING). Fix: do this\n"


# -- automation ---------------------------------------------------------------------------

BOOTSTRAPPED = {
    "beer": ["punkapi_raw_beers", "beers_clean", "punkapi_quarantine", "ibu_model_candidate"]
    + ["ibu_model_champion", "ibu_predictions"],
    "wine": ["wine_training_data", "wine_quality_model_candidate", "wine_quality_champion"],
}


def test_what_the_live_paths_need_is_built_by_automation_that_runs_by_default():
    for location, defs in (("beer", beer_defs), ("wine", wine_defs)):
        graph = defs.resolve_asset_graph()
        for name in BOOTSTRAPPED[location]:
            condition = graph.get(dg.AssetKey(name)).automation_condition
            assert condition == BUILD_WHEN_MISSING, name
        sensor = defs.resolve_sensor_def(f"{location}_automation")
        assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_build_when_missing_builds_a_missing_chain_in_one_go_and_not_twice():
    """Evaluated by Dagster's own evaluator: a fresh instance requests the whole chain on the
    first tick (on_missing() would request nothing there); once built, nothing more."""

    @dg.asset(automation_condition=BUILD_WHEN_MISSING)
    def parent() -> int:
        return 1

    @dg.asset(automation_condition=BUILD_WHEN_MISSING)
    def child(parent: int) -> int:
        return parent + 1

    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=[parent, child], instance=instance)
    assert first.total_requested == 2
    dg.materialize([parent, child], instance=instance)
    again = dg.evaluate_automation_conditions(
        defs=[parent, child], instance=instance, cursor=first.cursor
    )
    assert again.total_requested == 0
    # A user wipes the model: the same recovery, for it alone (its parent is there).
    instance.wipe_assets([child.key])
    recovery = dg.evaluate_automation_conditions(
        defs=[parent, child], instance=instance, cursor=again.cursor
    )
    assert recovery.get_num_requested(child.key) == 1
    assert recovery.total_requested == 1


def test_a_fresh_instance_requests_each_model_chain_up_to_its_champion_in_one_tick():
    """Dagster's evaluator on the real definitions and an empty instance: the first tick
    requests every BUILD_WHEN_MISSING asset, the champion with its candidate and what reads
    it, so one run brings candidate → champion → predictions up."""
    for location, defs in (("beer", beer_defs), ("wine", wine_defs)):
        instance = dg.DagsterInstance.ephemeral()
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        requested = {
            key.to_user_string()
            for key in defs.resolve_asset_graph().get_all_asset_keys()
            if first.get_num_requested(key)
        }
        assert requested == set(BOOTSTRAPPED[location]), location


# -- plain Dagster commands from the repository root ----------------------------------------


def no_dagster_home(tmp_path: Path) -> dict[str, str]:
    env = fresh_env(tmp_path)
    env.pop("DAGSTER_HOME")
    return env


def dagster_cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """``dagster …`` in the repository root, as a newcomer types it (no DAGSTER_HOME)."""
    proc = subprocess.run(
        [str(BIN / "dagster"), *argv],
        cwd=REPO_ROOT,
        env=no_dagster_home(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_definitions_validate_needs_no_variable(tmp_path):
    proc = dagster_cli(tmp_path, "definitions", "validate", "-w", "workspace.yaml")
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_asset_materialize_from_the_cli_needs_no_variable(tmp_path):
    dagster_cli(
        tmp_path,
        "asset",
        "materialize",
        "--select",
        "wine_training_data",
        "-m",
        "wine_assets.definitions",
    )
    written = list((tmp_path / "platform" / "storage").rglob("wine_training_data*"))
    assert written, "the asset's table was not written"


def test_plain_dagster_dev_in_the_root_loads_both_locations(tmp_path):
    from tests.conftest import free_port
    from tests.first_run.platform import RunningPlatform, ui_up

    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-p", str(port)],
        cwd=REPO_ROOT,
        env=no_dagster_home(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    platform = RunningPlatform(proc, tmp_path, f"http://127.0.0.1:{port}", "", {}, 0.0)
    try:
        wait_until(lambda: ui_up(platform), 240, "both code locations", on_poll=platform.watch)
    finally:
        platform.watch()
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=120)[0].decode()
        for pid in leftovers(platform):
            os.kill(pid, signal.SIGKILL)
    assert "DagsterInvalidConfigError" not in out
    assert "will not be used" not in out


# -- the launcher -------------------------------------------------------------------------

FAKE_SERVICE = (
    "import subprocess, sys, time\n"
    # a grandchild in a session of its own: beyond the reach of a process-group signal
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
    " start_new_session=True)\n"
    "time.sleep(600)\n"
)
LAUNCHER = (
    "import sys\n"
    "from pathlib import Path\n"
    "import platform_core.dev as dev\n"
    "fake = [sys.executable, '-c', sys.argv[1]]\n"
    "dev.commands = lambda args: [(n, fake, Path('.')) for n in ('dagster', 'wine-api')]\n"
    "sys.exit(dev.main(['--no-simulate']))\n"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_launcher_stops_every_process_it_started(tmp_path, sig):
    env = fresh_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, FAKE_SERVICE],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: len(descendants(proc.pid)) >= 4, 60, "two services and their children")
    seen = descendants(proc.pid)
    time.sleep(1.5)  # the launcher's watch loop has seen them too
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    assert "Ctrl-C stops everything" in out and "stopped" in out
    assert [pid for pid in seen if alive(pid)] == [], "processes left behind"


def run_cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_missing_inputs_are_one_line_naming_the_fix(tmp_path):
    """Each command-line tool, on a fresh machine whose input is not there: exit status, one
    line naming the setting or option and the fix, no traceback."""
    cases = [
        (("wine-send-batch", "normal", "--url", "http://127.0.0.1:9"), "--url", "wine-api"),
        (("platform-models", "list", "wine_quality"), "PLATFORM_STORAGE_ROOT", "Fix:"),
        (("wine-sim", "run", "--ticks", "1"), "wine-sim seed", "no barrels"),
        (
            ("wine-sim", "--store", "dynamodb://t?endpoint=http://127.0.0.1:9", "run"),
            "WINE_READINGS_STORE",
            "Fix:",
        ),
    ]
    for argv, setting, fix in cases:
        proc = run_cli(tmp_path, *argv)
        assert proc.returncode != 0, argv
        assert setting in proc.stderr and fix in proc.stderr, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)
