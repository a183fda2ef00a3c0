"""The drop-location sensor: new files → runs for exactly the days they cover, once.

The cursor is the set of files observed so far (name → size and modification time, on S3 also
the ETag), never the clock: a tick lists the folder or S3 prefix, reads only the timestamps of
files it has not seen (or that were rewritten), and requests one run per contiguous range of
the days they cover (a run over a range is a single-run backfill). The run key names the files
and the range, so a replayed tick cannot start the same work twice. Files are never renamed or
deleted.
"""

import hashlib
import json

import dagster as dg

from platform_core.run_tags import BACKGROUND, run_tags
from platform_core.storage import PlatformStorage
from wine_assets.profiles.drop import DropFileError, file_days, list_drop_files
from wine_assets.profiles.partitions import daily_partitions
from wine_assets.profiles.resources import SensorProfilesSettings

SENSOR_TAGS = run_tags("sensor", BACKGROUND)


def contiguous_ranges(days: list[str], all_keys: list[str]) -> list[tuple[str, str]]:
    """Group ``days`` into runs of consecutive partition keys: ``[(first, last), …]``."""
    position = {k: i for i, k in enumerate(all_keys)}
    ordered = sorted(days, key=position.__getitem__)
    ranges: list[tuple[str, str]] = []
    for day in ordered:
        if ranges and position[day] == position[ranges[-1][1]] + 1:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def range_tags(first: str, last: str) -> dict[str, str]:
    """The run tags of one run over the partitions ``first``..``last``. Dagster 1.13's
    ``RunRequest`` takes no range argument; its run tags of a range (as in dagster-io/dagster
    discussion 11653) are read back by the public ``RunRequest.partition_key_range``."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def run_request(first: str, last: str, files_digest: str) -> dg.RunRequest:
    key = f"{first}..{last}@{files_digest}"
    if first == last:
        return dg.RunRequest(run_key=key, partition_key=first, tags=SENSOR_TAGS)
    return dg.RunRequest(run_key=key, tags=SENSOR_TAGS | range_tags(first, last))


def build_drop_sensor(job) -> dg.SensorDefinition:
    """The sensor targeting ``job`` (the four daily-partitioned profile assets)."""

    @dg.sensor(
        name="sensor_temperature_drop_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="New or rewritten files in PROFILES_DROP_DIR → one run per range of days "
        "they cover (temperatures, features, model, assignments).",
    )
    def sensor_temperature_drop_sensor(
        context: dg.SensorEvaluationContext,
        sensor_profiles: SensorProfilesSettings,
        storage: PlatformStorage,
    ) -> dg.SensorResult | dg.SkipReason:
        source = sensor_profiles.source_name()
        if source != "drop":
            return dg.SkipReason(f"PROFILES_SOURCE={source}: the daily schedule starts runs")
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        try:
            files = list_drop_files(sensor_profiles.drop_location(storage.s3))
        except DropFileError as exc:
            return dg.SkipReason(str(exc))
        new = [f for f in files if seen.get(f.name) != f.signature]
        if not new:
            return dg.SkipReason(f"no new files among {len(files)} in {sensor_profiles.drop_dir}")
        days: set[str] = set()
        for f in new:
            try:
                days.update(file_days(f))
            except DropFileError as exc:
                # Marked as seen: a bad file is reported once, and again when it is rewritten.
                context.log.error(str(exc))
        keys = daily_partitions.get_partition_keys()
        valid = days & set(keys)
        if days - valid:
            context.log.warning(f"days outside the partitions ignored: {sorted(days - valid)}")
        digest = hashlib.sha256(
            "\n".join(f"{f.name}:{f.signature}" for f in new).encode()
        ).hexdigest()[:12]
        cursor = json.dumps(seen | {f.name: f.signature for f in new}, sort_keys=True)
        requests = [run_request(a, b, digest) for a, b in contiguous_ranges(sorted(valid), keys)]
        if not requests:
            return dg.SensorResult(
                skip_reason=f"{len(new)} new files cover no partition day", cursor=cursor
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return sensor_temperature_drop_sensor
