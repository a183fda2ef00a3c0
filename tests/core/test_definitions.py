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


def test_every_model_has_a_blocking_promotion_check_and_an_approval_job():
    for defs, asset, job, others in (
        (beer, "ibu_model_candidate", "approve_beer_ibu", []),
        # the wine model's interval coverage also decides promotion (issue 16)
        (wine, "wine_quality_model_candidate", "approve_wine_quality", ["interval_coverage"]),
    ):
        specs = [
            spec
            for checks in defs.asset_checks
            for spec in checks.check_specs
            if spec.asset_key == dg.AssetKey(asset)
        ]
        assert sorted((s.name, s.blocking) for s in specs) == sorted(
            [("candidate_promotion", True)] + [(name, True) for name in others]
        )
        assert defs.resolve_job_def(job) is not None


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
