"""The beer location's declarative-automation sensor and its failure alerts."""

from beer_assets.ingest.jobs import punkapi_crawl_job, punkapi_poll_job
from platform_core.alerts import alert_sensors
from platform_core.automation import automation_sensor

beer_automation = automation_sensor("beer")
beer_alerts = alert_sensors("beer", [punkapi_poll_job, punkapi_crawl_job], freshness=False)
