"""The wine location's automation sensor, alerts (failed scoring, drift, profile,
housekeeping and retention runs; failed blocking checks; stale assets) and the daily
deletion of old successful runs of the high-frequency jobs."""

from platform_core.alerts import alert_sensors
from platform_core.automation import automation_sensor
from platform_core.housekeeping import housekeeping_job, housekeeping_schedule
from wine_assets.monitoring.jobs import drift_job
from wine_assets.profiles.jobs import profiles_job
from wine_assets.quality.jobs import snapshot_job
from wine_assets.retention.jobs import retention_job

__all__ = ["housekeeping_job", "housekeeping_schedule"]

wine_automation = automation_sensor("wine")
wine_alerts = alert_sensors(
    "wine",
    [snapshot_job, drift_job, profiles_job, housekeeping_job, retention_job],
    freshness=True,
)
