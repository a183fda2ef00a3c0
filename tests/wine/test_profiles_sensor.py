"""The drop-location sensor on a real instance: a new file → exactly its days, once."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_core.storage import PlatformStorage
from tests.wine.profiles_support import profile_resources
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.jobs import profiles_job
from wine_assets.profiles.partitions import ASSIGNMENTS, FEATURES, MODEL, TEMPERATURES
from wine_assets.profiles.sensor import build_drop_sensor

SENSOR = build_drop_sensor(profiles_job)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def system_e_csv(path: Path, first_hour: str, hours: int, sensors=(101, 102, 103, 104)) -> None:
    """System E's layout: ``sensor_id,timestamp,temperature`` with ``YYYY-MM-DD HH`` hours."""
    stamps = pd.date_range(first_hour, periods=hours, freq="h")
    rows = [
        (s, t.strftime("%Y-%m-%d %H"), 10 + 3 * i + (h % 5))
        for i, s in enumerate(sensors)
        for h, t in enumerate(stamps)
    ]
    pd.DataFrame(rows, columns=["sensor_id", "timestamp", "temperature"]).to_csv(path, index=False)


def evaluate(instance: dg.DagsterInstance, cursor: str | None, resources: dict):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = SENSOR(ctx)
    return result


@pytest.fixture
def setup(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    return drop, profile_resources(storage, drop, k=2)


def requested(result) -> list[tuple]:
    return [
        (r.partition_key, r.tags.get(RANGE_START), r.tags.get(RANGE_END), r.run_key)
        for r in result.run_requests
    ]


def test_a_new_file_requests_exactly_the_days_it_covers_once(setup):
    drop, resources = setup
    job = dg.Definitions(
        assets=profile_assets, jobs=[profiles_job], resources=resources
    ).resolve_job_def("sensor_profiles")
    with dg.instance_for_test() as instance:
        empty = evaluate(instance, None, resources)
        assert isinstance(empty, dg.SkipReason)

        # 06:00 on the 15th to 05:00 on the 17th: three days, partly covered.
        system_e_csv(drop / "week7.csv", "2023-02-15 06:00", 48)
        first = evaluate(instance, None, resources)
        [(key, start, end, run_key)] = requested(first)
        assert (key, start, end) == (None, "2023-02-15", "2023-02-17")
        stat = (drop / "week7.csv").stat()  # the cursor is the file's size and mtime, no clock
        assert json.loads(first.cursor) == {"week7.csv": f"{stat.st_size}-{stat.st_mtime_ns}"}
        assert evaluate(instance, None, resources).run_requests[0].run_key == run_key  # replay

        [request] = first.run_requests
        assert request.partition_key_range == dg.PartitionKeyRange("2023-02-15", "2023-02-17")
        run = job.execute_in_process(instance=instance, tags=request.tags)
        assert run.success
        days = {"2023-02-15", "2023-02-16", "2023-02-17"}
        for asset in (TEMPERATURES, FEATURES, MODEL, ASSIGNMENTS):
            assert instance.get_materialized_partitions(asset) == days
        assert len(instance.get_runs()) == 1  # one run for the range, not one per day

        again = evaluate(instance, first.cursor, resources)
        assert isinstance(again, dg.SkipReason)

        # A second file with two separate days: one request each, the first file not again.
        system_e_csv(drop / "later.csv", "2023-02-20 00:00", 24)
        with_22nd = pd.read_csv(drop / "later.csv")
        with_22nd["timestamp"] = with_22nd["timestamp"].str.replace("2023-02-20", "2023-02-22")
        pd.concat([pd.read_csv(drop / "later.csv"), with_22nd]).to_csv(
            drop / "later.csv", index=False
        )
        second = evaluate(instance, first.cursor, resources)
        assert [r[:3] for r in requested(second)] == [
            ("2023-02-20", None, None),
            ("2023-02-22", None, None),
        ]
        assert set(json.loads(second.cursor)) == {"week7.csv", "later.csv"}
        assert isinstance(evaluate(instance, second.cursor, resources), dg.SkipReason)
        assert sorted(p.name for p in drop.iterdir()) == ["later.csv", "week7.csv"]  # untouched


def test_a_rewritten_file_is_read_again_and_a_bad_one_reported_once(setup, caplog):
    drop, resources = setup
    with dg.instance_for_test() as instance:
        system_e_csv(drop / "a.csv", "2023-02-15 00:00", 24)
        first = evaluate(instance, None, resources)
        system_e_csv(drop / "a.csv", "2023-02-15 00:00", 48)  # appended a day in place
        rewritten = evaluate(instance, first.cursor, resources)
        [(_, start, end, _)] = requested(rewritten)
        assert (start, end) == ("2023-02-15", "2023-02-16")

        (drop / "broken.csv").write_text("sensor_id,timestamp,temperature\n1,noon,3\n")
        bad = evaluate(instance, rewritten.cursor, resources)
        assert bad.run_requests == []
        assert "broken.csv" in json.loads(bad.cursor)  # reported, then not re-read each tick
        assert isinstance(evaluate(instance, bad.cursor, resources), dg.SkipReason)
