"""What the README promises about both code locations' defaults in `dagster dev`."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from beer_assets.definitions import defs as beer
from platform_core.settings import init_dagster_home
from tests.conftest import REPO_ROOT
from wine_assets.definitions import defs as wine


def test_random_poll_schedule_is_every_five_minutes_and_off_by_default():
    schedule = beer.resolve_schedule_def("punkapi_random_poll_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_history_sensor_runs_by_default_and_jobs_run_in_process():
    sensor = wine.resolve_sensor_def("barrel_history_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for defs in (beer, wine):
        assert defs.executor is dg.in_process_executor


def test_every_model_is_candidate_then_gate_then_champion_then_what_reads_it():
    """One lifecycle: blocking gate checks on the candidate, a champion asset downstream of
    it, and everything that scores with the model downstream of the champion; no side job
    approves (approval is a materialization of the champion)."""
    wine_readers = ["barrel_quality_predictions", "wine_drift_report", "wine_quality_api"]
    cases = (
        (
            beer,
            "ibu_model_candidate",
            ["candidate_gate"],
            "ibu_model_champion",
            ["ibu_predictions"],
        ),
        # the wine model's interval coverage also gates it (issue 16)
        (
            wine,
            "wine_quality_model_candidate",
            ["candidate_gate", "interval_coverage"],
            "wine_quality_champion",
            wine_readers,
        ),
        (
            wine,
            "sensor_profile_model",
            ["no_empty_cluster"],
            "sensor_profile_champion",
            ["sensor_profile_assignments"],
        ),
    )
    for defs, candidate, gates, champion, readers in cases:
        graph = defs.resolve_asset_graph()
        specs = graph.get(dg.AssetKey(candidate)).check_keys
        blocking = {
            spec.name
            for checks in [*defs.asset_checks, *defs.assets]
            for spec in getattr(checks, "check_specs", [])
            if spec.asset_key == dg.AssetKey(candidate) and spec.blocking
        }
        assert {k.name for k in specs} == blocking == set(gates), candidate
        assert graph.get(dg.AssetKey(champion)).parent_keys == {dg.AssetKey(candidate)}
        for reader in readers:
            parents = graph.get(dg.AssetKey(reader)).parent_keys
            assert dg.AssetKey(champion) in parents and dg.AssetKey(candidate) not in parents
        assert not [j.name for j in defs.jobs if j.name.startswith("approve_")]


def test_loading_a_code_location_leaves_heavy_libraries_for_the_steps_that_use_them():
    """Every run process imports its code location: a sensor-triggered snapshot run must not
    pay for scikit-learn, XGBoost, matplotlib, Eurybia or the web service on start-up."""
    heavy = ["sklearn", "xgboost", "matplotlib", "scipy", "eurybia", "fastapi", "uvicorn"]
    for module in ("wine_assets.definitions", "beer_assets.definitions"):
        probe = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]", f"{module} imports {out.strip()} at load time"


def test_the_workspace_loads_as_dagster_dev_loads_it(tmp_path):
    """Dagster's module loader (not a plain import) over workspace.yaml: it refuses, for
    instance, a module holding more than one Definitions object."""
    home = init_dagster_home(tmp_path / "home")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"]
        + ["-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout
