"""The beer jobs: a five-minute random poll (off by default) and the full crawl."""

import dagster as dg

from beer_assets.ibu.assets import ibu_predictions
from beer_assets.ingest.assets import punkapi_raw_beers, validated_beers
from platform_core.run_tags import BACKGROUND, lane_tags, run_tags

# The original beer pipelines polled GET /beers/random every five minutes; here it is one job
# that lands the response, refreshes the cleaned table and re-scores with the champion.
punkapi_poll_job = dg.define_asset_job(
    "punkapi_random_poll",
    selection=dg.AssetSelection.assets(punkapi_raw_beers, validated_beers, ibu_predictions),
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
