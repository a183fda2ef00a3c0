"""The resources of the ``wine`` location: the shared ones and each domain's own."""

from platform_core.alerts import alert_webhook_resource
from platform_core.housekeeping import run_retention_resource
from platform_core.resources import shared_resources
from platform_core.settings import default_readings_store_url, setting
from wine_assets.monitoring.resources import (
    drift_sensor_settings,
    prediction_log_resource,
    wine_api_resource,
)
from wine_assets.monitoring.thresholds import drift_thresholds
from wine_assets.profiles.resources import profiles_settings
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.retention.assets import retention_resource


def resources() -> dict:
    """Storage, IO manager and model store; the readings store (WINE_READINGS_STORE); the
    prediction log (PREDICTION_LOG_DSN), drift thresholds and trigger, where report links
    point (WINE_API_URL); profile settings; retention days; alerts and run retention."""
    return {
        **shared_resources(),
        "readings_store": ReadingsStoreResource(
            url=setting("WINE_READINGS_STORE", default_readings_store_url())
        ),
        "prediction_log": prediction_log_resource(),
        "drift_thresholds": drift_thresholds(),
        "drift_sensor_settings": drift_sensor_settings(),
        "wine_api": wine_api_resource(),
        "sensor_profiles": profiles_settings(),
        "retention": retention_resource(),
        "alert_webhook": alert_webhook_resource(),
        "run_retention": run_retention_resource(),
    }
