"""The workspace as a user runs it: validated and materialized through the dagster CLI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from platform_core.settings import init_dagster_home
from tests.conftest import REPO_ROOT

DAGSTER = str(Path(sys.executable).with_name("dagster"))


@pytest.fixture
def cli_env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    home = init_dagster_home(tmp_path / "dagster_home")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(data_dir),
        "PLATFORM_STORAGE_ROOT": str(tmp_path / "storage"),
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_workspace_definitions_validate(cli_env):
    proc = run([DAGSTER, "definitions", "validate", "-w", "workspace.yaml"], cli_env)
    out = proc.stdout + proc.stderr
    for location in ("beer", "wine"):
        assert f"Validation successful for code location {location}" in out


@pytest.mark.slow
def test_full_crawl_job_through_cli_passes_every_error_check(cli_env, punkapi_server):
    env = {**cli_env, "PUNK_API_URL": punkapi_server.url, "PUNK_API_MAX_REQUESTS_PER_HOUR": "0"}
    run(
        [DAGSTER, "job", "execute", "-m", "beer_assets.definitions", "-j", "punkapi_full_crawl"],
        env,
    )
    run(
        [DAGSTER, "job", "execute", "-m", "beer_assets.definitions", "-j", "punkapi_random_poll"],
        env,
    )

    os.environ["DAGSTER_HOME"], saved = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert [r.job_name for r in runs] == ["punkapi_random_poll", "punkapi_full_crawl"]
            assert all(r.is_success for r in runs)
            evaluations = [
                e.dagster_event.event_specific_data
                for r in runs
                for e in instance.all_logs(
                    r.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                )
            ]
            assert len({ev.check_name for ev in evaluations}) >= 7
            errors = [
                ev.check_name
                for ev in evaluations
                if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
            ]
            assert errors == []
            for key in [
                "punkapi_raw_beers",
                "beers_clean",
                "ibu_model_candidate",
                "ibu_model_champion",
                "ibu_predictions",
            ]:
                assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None
            clean = instance.get_latest_materialization_event(dg.AssetKey("beers_clean"))
            assert clean.run_id == runs[0].run_id  # the poll refreshed the table
            assert clean.asset_materialization.metadata["dagster/row_count"].value == 325
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = saved
