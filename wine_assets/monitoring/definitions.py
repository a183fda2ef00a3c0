"""The monitoring part of the ``wine`` location: drift reports, their checks and sensor.

Merged into ``wine_assets.definitions``; the shared storage, IO manager and model store come
from there. ``monitoring_resources()`` are the resources this part adds.
"""

import dagster as dg

from platform_core.run_tags import BACKGROUND, lane_tags
from wine_assets.monitoring.assets import wine_drift_report
from wine_assets.monitoring.checks import drift_checks
from wine_assets.monitoring.resources import (
    drift_sensor_settings,
    prediction_log_resource,
    wine_api_resource,
)
from wine_assets.monitoring.sensor import build_drift_sensor
from wine_assets.monitoring.thresholds import drift_thresholds

#: The wine-api service runs outside Dagster but serves the champion: declared here (an
#: external asset, never materialized by Dagster) so the lineage shows which model answers it.
wine_quality_api = dg.AssetSpec(
    "wine_quality_api",
    group_name="wine_monitoring",
    deps=[dg.AssetKey("wine_quality_champion")],
    kinds={"fastapi"},
    description="The wine-api service (`wine-api`, outside Dagster): scores the wines sent to "
    "it with the champion that wine_quality_champion decided (P(good) and the 90 % interval "
    "too) and logs them for the drift reports; a new champion is served within a second.",
)

drift_job = dg.define_asset_job(
    "wine_drift_report_job",
    selection=dg.AssetSelection.assets(wine_drift_report),
    description="Compare logged predictions with the training data (Eurybia): the positions "
    "in the run's wine/drift_positions tag, or every row of the partition's hour.",
    tags=lane_tags(BACKGROUND),
)


def monitoring_resources() -> dict:
    """Prediction log (PREDICTION_LOG_DSN), drift thresholds, the sensor's trigger and where
    the report links point (WINE_API_URL)."""
    return {
        "prediction_log": prediction_log_resource(),
        "drift_thresholds": drift_thresholds(),
        "drift_sensor_settings": drift_sensor_settings(),
        "wine_api": wine_api_resource(),
    }


defs = dg.Definitions(
    assets=[wine_drift_report, wine_quality_api],
    asset_checks=drift_checks,
    jobs=[drift_job],
    sensors=[build_drift_sensor(drift_job)],
    resources=monitoring_resources(),
)
