"""The drift sensor: new rows in the prediction log → a drift report over exactly those rows.

Its cursor is the highest log position it has reported, never a clock. A tick requests a
report over the rows after the cursor when

* the burst is over: at least ``min_rows`` are new and none came for ``quiet_s`` (a
  ``wine-send-batch`` of 500 rows is reported ``quiet_s`` to ``quiet_s`` + one tick after
  its last row);
* or traffic never pauses but ``max_rows`` are new;
* or the oldest new row has waited ``max_wait_s`` (a trickle still gets its report).

In the last two cases rows younger than ``settle_s`` wait for a later tick (see
``prediction_log``). One run per UTC hour holding the rows (an hour's partition is added the
first time it gets rows), tagged ``wine/drift_positions = first-last`` (cursor + 1 .. the
highest position taken): its report compares those rows only, so a later batch, even in the
same hour, gets a report of its own. Run key ``<hour>@<first>-<last>``: a replayed tick is
dropped by Dagster, and no two ticks cover the same position.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from platform_core.model_store import ModelStoreResource
from platform_core.run_tags import BACKGROUND, run_tags
from wine_assets.monitoring.assets import POSITIONS_TAG, Positions, drift_partitions
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.monitoring.reports import hour_key
from wine_assets.monitoring.resources import DriftSensorSettings
from wine_assets.quality import MODEL_NAME

SENSOR_TAGS = run_tags("sensor", BACKGROUND)
#: Seconds between the sensor's ticks (the daemon's loop adds up to ~5 s).
TICK_S = 15


def build_drift_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="wine_drift_sensor",
        job=job,
        minimum_interval_seconds=TICK_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Request a drift report over the prediction-log rows new since the last "
        "one, once a burst is over (DRIFT_REPORT_MIN_ROWS rows, none new for "
        "DRIFT_REPORT_QUIET_S), DRIFT_REPORT_MAX_ROWS are new, or the oldest has waited "
        "DRIFT_REPORT_MAX_WAIT_S.",
    )
    def wine_drift_sensor(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        drift_sensor_settings: DriftSensorSettings,
        model_store: ModelStoreResource,
    ) -> dg.SensorResult | dg.SkipReason:
        cursor = int(context.cursor or 0)
        s = drift_sensor_settings
        now = datetime.now(UTC)
        with prediction_log.open() as log:
            new = log.since(cursor)
            if new.count == 0:
                return dg.SkipReason(f"no new predictions after position {cursor}")
            quiet = (now - new.newest).total_seconds()
            if quiet >= max(s.quiet_s, s.settle_s) and new.count >= s.min_rows:
                upto, why = new.max_position, f"burst over (no new row for {quiet:.0f}s)"
            else:  # rows still committing wait for the next tick
                settled = log.since(cursor, before=now - timedelta(seconds=s.settle_s))
                waited = (now - settled.oldest).total_seconds() if settled.count else 0.0
                if settled.count and settled.count >= s.max_rows:
                    upto, why = settled.max_position, f"{settled.count} rows >= max_rows"
                elif settled.count and waited >= s.max_wait_s:
                    upto, why = settled.max_position, f"oldest row waited {waited:.0f}s"
                else:
                    return dg.SkipReason(
                        f"{new.count} new rows after position {cursor}, last one {quiet:.0f}s "
                        f"ago, oldest {waited:.0f}s ago: waiting for a pause of {s.quiet_s}s "
                        f"with >= {s.min_rows} rows, {s.max_rows} rows, or {s.max_wait_s}s"
                    )
            if model_store.registry(MODEL_NAME).champion() is None:
                return dg.SkipReason(f"{MODEL_NAME} has no champion: the rows wait (cursor kept)")
            hours = log.hours_since(cursor, upto)
        positions = Positions(cursor + 1, upto)
        keys = [hour_key(hour) for hour in hours]
        added = [
            k for k in keys if not context.instance.has_dynamic_partition(drift_partitions.name, k)
        ]
        context.log.info(f"positions {positions.label} in {len(keys)} hour(s): {why}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{key}@{positions.label}",
                    partition_key=key,
                    tags={**SENSOR_TAGS, POSITIONS_TAG: positions.label},
                )
                for key in keys
            ],
            dynamic_partitions_requests=[drift_partitions.build_add_request(added)]
            if added
            else None,
            cursor=str(upto),
        )

    return wine_drift_sensor
