"""The daily retention job (archive a closed day, then prune) and its schedule."""

import dagster as dg

from platform_core.run_tags import BACKGROUND, lane_tags, run_tags
from wine_assets.retention.assets import (
    archive_partitions,
    barrel_predictions_archive,
    barrel_readings_archive,
    prediction_log_archive,
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
