"""The sensor on the readings store: new readings → one snapshot + predictions run.

Its cursor is the highest update position (``seq``) it has observed in the store, never a
clock. Each tick that finds ``max_seq() > cursor`` adds a snapshot partition named after that
position and requests one run for it with the same run key, so a change is neither skipped
(the next snapshot starts where this cursor stops) nor scored twice (Dagster drops a repeated
run key, e.g. after a daemon restart that replays the tick).
"""

import dagster as dg

from platform_core.model_store import ModelStoreResource
from platform_core.run_tags import SCORING, run_tags
from wine_assets.quality.snapshot import MODEL_NAME, snapshot_key, snapshot_partitions
from wine_assets.readings.resource import ReadingsStoreResource

SENSOR_TAGS = run_tags("sensor", SCORING)


def build_readings_sensor(job) -> dg.SensorDefinition:
    """The sensor targeting ``job`` (the partitioned snapshot + predictions job)."""

    @dg.sensor(
        name="barrel_readings_sensor",
        job=job,
        minimum_interval_seconds=2,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Score every barrel whose reading changed: one snapshot run per new "
        "update position seen in the readings store.",
    )
    def barrel_readings_sensor(
        context: dg.SensorEvaluationContext,
        readings_store: ReadingsStoreResource,
        model_store: ModelStoreResource,
    ) -> dg.SensorResult | dg.SkipReason:
        cursor = int(context.cursor or 0)
        with readings_store.open() as store:
            latest = store.max_seq()
        if latest <= cursor:
            return dg.SkipReason(f"no change since seq {cursor}")
        if model_store.registry(MODEL_NAME).champion() is None:
            # Keep the cursor: once a champion exists, these changes are still scored.
            return dg.SkipReason(
                f"{MODEL_NAME} has no champion yet; {latest - cursor} changes wait"
            )
        key = snapshot_key(latest)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, partition_key=key, tags=SENSOR_TAGS)],
            dynamic_partitions_requests=[snapshot_partitions.build_add_request([key])],
            cursor=str(latest),
        )

    return barrel_readings_sensor
