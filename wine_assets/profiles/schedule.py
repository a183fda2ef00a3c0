"""The readings source's clock: every day, the day before, with nobody dropping files.

With ``PROFILES_SOURCE=readings`` nothing arrives in the drop location, so no sensor can tell
when a day is complete; the day is complete when it is over. Shortly after midnight UTC (the
partitions' timezone) the schedule requests the previous day's partition of the four profile
assets, once (the run key is the day). With the drop source it skips: the drop sensor covers
that. Default STOPPED: turning it on is a deployment decision, like choosing the source.
"""

from datetime import UTC, timedelta

import dagster as dg

from platform_core.run_tags import BACKGROUND, run_tags
from wine_assets.profiles.resources import SensorProfilesSettings

SCHEDULE_TAGS = run_tags("schedule", BACKGROUND)


def build_readings_schedule(job) -> dg.ScheduleDefinition:
    """The daily schedule targeting ``job`` (the four daily-partitioned profile assets).

    ``job`` is what ``dg.define_asset_job`` returns; its class is not exported by Dagster
    (only ``dagster._core``), so it stays unannotated rather than tie us to a private path.
    """

    @dg.schedule(
        name="sensor_profiles_daily",
        job=job,
        # 00:30, not 00:00: readings of the day's last hour that the gateway sends late are in.
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="PROFILES_SOURCE=readings: the previous day's temperatures, features, "
        "model and assignments from the readings store's history.",
    )
    def sensor_profiles_daily(
        context: dg.ScheduleEvaluationContext, sensor_profiles: SensorProfilesSettings
    ) -> dg.RunRequest | dg.SkipReason:
        source = sensor_profiles.source_name()
        if source != "readings":
            return dg.SkipReason(
                f"PROFILES_SOURCE={source}: the drop sensor starts runs for dropped files"
            )
        now = context.scheduled_execution_time.astimezone(UTC)
        day = (now.date() - timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=day, partition_key=day, tags=SCHEDULE_TAGS)

    return sensor_profiles_daily
