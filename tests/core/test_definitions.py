"""What the README promises about both code locations' defaults in `dagster dev`."""

import subprocess
import sys

import dagster as dg

from beer_assets.definitions import defs as beer
from wine_assets.definitions import defs as wine


def test_random_poll_schedule_is_every_five_minutes_and_off_by_default():
    schedule = beer.resolve_schedule_def("punkapi_random_poll_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_readings_sensor_runs_by_default_and_jobs_run_in_process():
    sensor = wine.resolve_sensor_def("barrel_readings_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for defs in (beer, wine):
        assert defs.executor is dg.in_process_executor


def test_every_model_has_a_blocking_promotion_check_and_an_approval_job():
    for defs, asset, job in (
        (beer, "ibu_model_candidate", "approve_beer_ibu"),
        (wine, "wine_quality_model_candidate", "approve_wine_quality"),
    ):
        specs = [
            spec
            for checks in defs.asset_checks
            for spec in checks.check_specs
            if spec.asset_key == dg.AssetKey(asset)
        ]
        assert [(s.name, s.blocking) for s in specs] == [("candidate_promotion", True)]
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
