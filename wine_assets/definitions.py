"""The ``wine`` code location: barrel readings → daily history → quality predictions.

Readings are scored outside Dagster runs by ``wine-scorer`` (``quality/consumer.py``), which
reports its work as materializations of the daily history assets; runs here write and check
a day's history (``barrel_history_sensor``), retrain, monitor and profile.
"""

import dagster as dg

from platform_core.alerts import alert_sensors, alert_webhook_resource
from platform_core.automation import automation_sensor
from platform_core.housekeeping import (
    housekeeping_job,
    housekeeping_schedule,
    run_retention_resource,
)
from platform_core.resources import shared_resources
from platform_core.run_tags import SCORING, lane_tags
from platform_core.settings import default_readings_store_url, setting
from wine_assets.monitoring import definitions as monitoring
from wine_assets.profiles import definitions as profiles
from wine_assets.quality.assets import quality_checks, wine_quality_model_candidate
from wine_assets.quality.champion import wine_quality_champion
from wine_assets.quality.sensor import build_history_sensor
from wine_assets.quality.snapshot import (
    barrel_quality_predictions,
    wine_sensor_snapshot,
)
from wine_assets.quality.training import training_checks, wine_training_data
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.retention import definitions as retention

snapshot_job = dg.define_asset_job(
    "barrel_snapshot",
    selection=dg.AssetSelection.assets(wine_sensor_snapshot, barrel_quality_predictions),
    description="Write one UTC day of barrel history (readings and the scorer's predictions) "
    "and check that every write of the day is accounted for (sensor-triggered, at most hourly).",
    tags=lane_tags(SCORING),
)
retrain_job = dg.define_asset_job(
    "wine_retrain",
    selection=dg.AssetSelection.assets(
        wine_training_data, wine_quality_model_candidate, wine_quality_champion
    ),
    description="Reload the training data, retrain, gate the candidate and decide whether it "
    "becomes champion (wine_quality_champion).",
)


def quality_definitions() -> dg.Definitions:
    """Readings → daily history → quality predictions, and the model they use."""
    return dg.Definitions(
        assets=[
            wine_training_data,
            wine_quality_model_candidate,
            wine_quality_champion,
            wine_sensor_snapshot,
            barrel_quality_predictions,
        ],
        asset_checks=[*training_checks, *quality_checks],
        jobs=[snapshot_job, retrain_job],
        sensors=[build_history_sensor(snapshot_job), automation_sensor("wine")],
        resources={
            **shared_resources(),
            "readings_store": ReadingsStoreResource(
                url=setting("WINE_READINGS_STORE", default_readings_store_url())
            ),
        },
        # A day's history run is two steps: one process, no per-step subprocess start-up.
        executor=dg.in_process_executor,
    )


def operations_definitions() -> dg.Definitions:
    """Alerts (failed scoring/drift/profile/housekeeping/retention runs, failed blocking
    checks, stale assets) and the daily deletion of old successful runs of the high-frequency
    jobs."""
    failure_jobs = [
        snapshot_job,
        monitoring.drift_job,
        profiles.profiles_job,
        housekeeping_job,
        retention.retention_job,
    ]
    return dg.Definitions(
        jobs=[housekeeping_job],
        schedules=[housekeeping_schedule],
        sensors=alert_sensors("wine", failure_jobs, freshness=True),
        resources={
            "alert_webhook": alert_webhook_resource(),
            "run_retention": run_retention_resource(),
        },
    )


# One Definitions object at module scope (Dagster's loader refuses several).
defs = dg.Definitions.merge(
    quality_definitions(), monitoring.defs, profiles.defs, retention.defs, operations_definitions()
)
