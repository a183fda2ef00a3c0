"""The ``beer`` code location: Punk API ingestion, cleaned table, IBU model and predictions."""

import dagster as dg

from beer_assets.ibu.assets import (
    candidate_gate,
    ibu_model_candidate,
    ibu_model_champion,
    ibu_predictions,
)
from beer_assets.ingest.assets import punkapi_raw_beers, validated_beers
from beer_assets.ingest.checks import ingest_checks
from beer_assets.punkapi.resource import PunkApiResource
from platform_core.alerts import alert_sensors, alert_webhook_resource
from platform_core.automation import automation_sensor
from platform_core.resources import shared_resources
from platform_core.run_tags import BACKGROUND, lane_tags, run_tags
from platform_core.settings import default_punk_api_url, int_setting, setting

ingest_selection = dg.AssetSelection.assets(punkapi_raw_beers, validated_beers)

# The original beer pipelines polled GET /beers/random every five minutes; here it is one job
# that lands the response, refreshes the cleaned table and re-scores with the champion. Off by
# default.
punkapi_poll_job = dg.define_asset_job(
    "punkapi_random_poll",
    selection=ingest_selection | dg.AssetSelection.assets(ibu_predictions),
    config={"ops": {"punkapi_raw_beers": {"config": {"mode": "random", "count": 1}}}},
    description="Land one random beer, refresh the cleaned table and predictions.",
    tags=lane_tags(BACKGROUND),
)
punkapi_crawl_job = dg.define_asset_job(
    "punkapi_full_crawl",
    selection=dg.AssetSelection.groups("beer_ingest", "beer_ibu"),
    description="Crawl every page, clean, retrain, promote and predict.",
    # One crawl at a time (the background lane): two would register the same model version.
    tags=lane_tags(BACKGROUND),
)
punkapi_poll_schedule = dg.ScheduleDefinition(
    job=punkapi_poll_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    tags=run_tags("schedule", BACKGROUND),
)

defs = dg.Definitions(
    assets=[
        punkapi_raw_beers,
        validated_beers,
        ibu_model_candidate,
        ibu_model_champion,
        ibu_predictions,
    ],
    asset_checks=[*ingest_checks, candidate_gate],
    jobs=[punkapi_poll_job, punkapi_crawl_job],
    schedules=[punkapi_poll_schedule],
    sensors=[
        automation_sensor("beer"),
        *alert_sensors("beer", [punkapi_poll_job, punkapi_crawl_job], freshness=False),
    ],
    resources={
        **shared_resources(),
        "alert_webhook": alert_webhook_resource(),
        "punk_api": PunkApiResource(
            base_url=setting("PUNK_API_URL", default_punk_api_url()),
            max_requests_per_hour=int_setting("PUNK_API_MAX_REQUESTS_PER_HOUR", 3600),
        ),
    },
    # Steps are small and import heavy libraries: one process beats one per step on 2 cores.
    executor=dg.in_process_executor,
)
