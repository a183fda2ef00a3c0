"""The sensor that runs the barrel history's day runs: at most hourly, never per reading.

Scoring happens outside Dagster runs (``wine-scorer``); this sensor only asks for the runs that
write a day's history tables and run their checks (``barrel_snapshot``, one partition a day):

* today's partition once per UTC hour in which the scorer has recorded something today (run
  key ``<day>@<hour>``), so the day's checks run as it goes;
* the day before, once (run key ``<day>@close``), as soon as the scorer has moved into the new
  day, or at 01:00 at the latest (a scorer still behind then shows as unaccounted writes).

So the scoring path starts at most 25 runs a day, whatever the write rate; Dagster drops a
repeated run key, so a daemon restart that replays a tick starts nothing twice.
"""

import json
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from platform_core.run_tags import SCORING, run_tags
from wine_assets.readings.resource import ReadingsStoreResource

SENSOR_TAGS = run_tags("sensor", SCORING)


def day_requests(
    now: datetime, cursor: dict[str, str], has_day
) -> tuple[list[dg.RunRequest], dict[str, str]]:
    """The runs due at ``now`` given the sensor's cursor and ``has_day(day)`` (whether the
    ledger holds a row of that day); the new cursor."""
    today = now.date().isoformat()
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    hour = f"{today}@{now.hour:02d}"
    requests, cursor = [], dict(cursor)
    has_today = has_day(today)
    if cursor.get("closed") != yesterday and (has_today or now.hour >= 1):
        if has_day(yesterday):
            requests.append(
                dg.RunRequest(
                    run_key=f"{yesterday}@close", partition_key=yesterday, tags=SENSOR_TAGS
                )
            )
        cursor["closed"] = yesterday
    if cursor.get("hour") != hour and has_today:
        requests.append(dg.RunRequest(run_key=hour, partition_key=today, tags=SENSOR_TAGS))
        cursor["hour"] = hour
    return requests, cursor


def build_history_sensor(job: Any) -> dg.SensorDefinition:
    """The sensor targeting ``job`` (the daily history job)."""

    @dg.sensor(
        name="barrel_history_sensor",
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes and checks the barrel history of the day: today at most hourly, "
        "yesterday once when it closes (scoring itself is wine-scorer's, outside runs).",
    )
    def barrel_history_sensor(
        context: dg.SensorEvaluationContext, readings_store: ReadingsStoreResource
    ) -> dg.SensorResult | dg.SkipReason:
        from wine_assets.quality.ledger import open_ledger

        cursor = json.loads(context.cursor) if context.cursor else {}
        with readings_store.open() as store, closing(open_ledger(store)) as ledger:
            requests, cursor = day_requests(datetime.now(UTC), cursor, ledger.has_day)
        if not requests:
            return dg.SkipReason("no day to write: the scorer recorded nothing new this hour")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return barrel_history_sensor
