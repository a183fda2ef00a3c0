"""The drift sensor: new rows in the prediction log → drift reports for their windows.

Its cursor is the highest log position it has acted on, never a clock. A tick requests a
report when at least ``min_rows`` rows are new, or when the oldest new row has waited
``max_wait_s`` (a quiet hour still gets its report); rows younger than ``settle_s`` wait for
a later tick (see ``prediction_log``). One run per hourly window that holds new
rows (only those: a backlog spanning days requests the hours that hold rows), run key
``<window>@<position>``: a replayed tick is dropped by Dagster, a window that
receives more rows later is reported again.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from platform_core.model_store import ModelStoreResource
from platform_core.run_tags import BACKGROUND, run_tags
from wine_assets.monitoring.assets import drift_partitions
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.monitoring.resources import DriftSensorSettings
from wine_assets.quality.snapshot import MODEL_NAME

SENSOR_TAGS = run_tags("sensor", BACKGROUND)


def build_drift_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="wine_drift_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Request a drift report for the windows holding new prediction-log rows "
        "once DRIFT_REPORT_MIN_ROWS are new or the oldest has waited DRIFT_REPORT_MAX_WAIT_S.",
    )
    def wine_drift_sensor(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        drift_sensor_settings: DriftSensorSettings,
        model_store: ModelStoreResource,
    ) -> dg.SensorResult | dg.SkipReason:
        cursor = int(context.cursor or 0)
        settings = drift_sensor_settings
        now = datetime.now(UTC)
        with prediction_log.open() as log:  # rows still committing wait for the next tick
            new = log.since(cursor, before=now - timedelta(seconds=settings.settle_s))
            if new.count == 0:
                return dg.SkipReason(f"no new predictions after position {cursor}")
            waited = (now - new.oldest).total_seconds()
            if new.count < settings.min_rows and waited < settings.max_wait_s:
                return dg.SkipReason(
                    f"{new.count} new rows (< {settings.min_rows}), oldest waited {waited:.0f}s "
                    f"(< {settings.max_wait_s}s)"
                )
            if model_store.registry(MODEL_NAME).champion() is None:
                return dg.SkipReason(f"{MODEL_NAME} has no champion: the rows wait (cursor kept)")
            hours = log.hours_since(cursor, new.max_position)
        first = drift_partitions.start.timestamp()
        keys = [
            drift_partitions.get_partition_key_for_timestamp(hour.timestamp())
            for hour in hours
            if hour.timestamp() >= first  # rows older than the partitions are not reported
        ]
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{key}@{new.max_position}", partition_key=key, tags=SENSOR_TAGS
                )
                for key in keys
            ],
            cursor=str(new.max_position),
        )

    return wine_drift_sensor
