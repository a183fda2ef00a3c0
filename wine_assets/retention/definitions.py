"""The retention part of the ``wine`` location: the daily archives, their job and schedule.

Merged into ``wine_assets.definitions``; the readings store, prediction log and storage
resources come from the other parts, this one adds ``retention`` (the ``*_RETENTION_DAYS``).
"""

import dagster as dg

from platform_core.run_tags import BACKGROUND, lane_tags, run_tags
from wine_assets.retention.assets import (
    archive_partitions,
    barrel_predictions_archive,
    barrel_readings_archive,
    prediction_log_archive,
    retention_resource,
)

retention_job = dg.define_asset_job(
    "wine_retention",
    selection=dg.AssetSelection.assets(
        barrel_predictions_archive, barrel_readings_archive, prediction_log_archive
    ),
    partitions_def=archive_partitions,
    description="Archive a closed UTC day of readings, barrel predictions and logged "
    "predictions to parquet, "
    "check the files, then prune the hot stores past their retention.",
    tags=lane_tags(BACKGROUND),
)

retention_schedule = dg.build_schedule_from_partitioned_job(
    retention_job,
    name="wine_retention_daily",
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags=run_tags("schedule", BACKGROUND),
    description="Daily at 00:30 UTC: archive the previous day, then prune past retention.",
)

defs = dg.Definitions(
    assets=[barrel_predictions_archive, barrel_readings_archive, prediction_log_archive],
    jobs=[retention_job],
    schedules=[retention_schedule],
    resources={"retention": retention_resource()},
)
