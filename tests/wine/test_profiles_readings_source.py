"""PROFILES_SOURCE=readings: the readings store's history → hourly rows → the profile assets.

The store stamps ``updated_at`` itself (``utc_now`` in each backend's module, at ``put``);
``seed`` sets that clock per batch, so readings land at known times through the real write path.
"""

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from platform_core.storage import PlatformStorage
from tests.wine.conftest import reading
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.definitions import defs
from wine_assets.profiles import cluster_predictions
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.jobs import profiles_job
from wine_assets.profiles.partitions import ASSIGNMENTS, FEATURES, TEMPERATURES, read_days
from wine_assets.profiles.resources import SensorProfilesSettings
from wine_assets.profiles.sensor import build_drop_sensor
from wine_assets.readings.dynamodb_store import DAY_GSI_NAME, GSI_NAME, DynamoDbReadingsStore
from wine_assets.readings.schema import parse_reading
from wine_assets.readings.sqlite_store import SqliteReadingsStore
from wine_assets.readings.store import ReadingsStore, open_store

DAYS = ["2023-02-15", "2023-02-16"]
BARRELS = [f"barrel-{b:02d}" for b in range(1, 7)]
#: barrel-06 sends nothing in these hours of the first day: no row, counted as missing.
SILENT_HOURS = {3, 4}

Batch = tuple[str, list[dict]]


def stamp(moment: datetime) -> str:
    """A time written the way the store writes ``updated_at``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def seed(store: ReadingsStore, monkeypatch: pytest.MonkeyPatch, batches: list[Batch]) -> None:
    """``put`` each batch with the store's clock reading the batch's time."""
    module = sys.modules[type(store).__module__]
    for at, readings in batches:
        monkeypatch.setattr(module, "utc_now", lambda at=at: at)
        store.put(readings)


def temperature(b: int, d: int, h: int, minute: int) -> float:
    """Barrel b's reading on day d, hour h: level by barrel, odd barrels warm through the day,
    the :40 reading 1 °C above the :10 one (so the hour's mean is the :10 value + 0.5)."""
    return 8.0 + 3 * b + 0.25 * h * (b % 2) + d + (1.0 if minute == 40 else 0.0)


def two_days() -> list[Batch]:
    """Two readings an hour per barrel over both days, plus readings just outside them and a
    superseded one (barrel-01 twice in a batch: both are history, both count)."""
    batches: list[Batch] = [
        (stamp(datetime(2023, 2, 14, 23, 59, 59, 999999, UTC)), [reading(BARRELS[0], **HOT)])
    ]
    for d in range(2):
        for h in range(24):
            for minute in (10, 40):
                at = datetime(2023, 2, 15 + d, h, minute, tzinfo=UTC)
                batch = [
                    reading(barrel, temperature_c=temperature(b, d, h, minute))
                    for b, barrel in enumerate(BARRELS, start=1)
                    if not (barrel == BARRELS[-1] and d == 0 and h in SILENT_HOURS)
                ]
                if (d, h, minute) == (0, 0, 10):
                    batch.insert(0, reading(BARRELS[0], temperature_c=temperature(1, 0, 0, 10) + 3))
                batches.append((stamp(at), batch))
    batches.append((stamp(datetime(2023, 2, 17, tzinfo=UTC)), [reading(BARRELS[0], **HOT)]))
    return batches


HOT = {"temperature_c": 39.0}  # outside the window: would show in any mean it leaked into


def expected_hourly() -> pd.DataFrame:
    """By hand: the :10/:40 pair averages to the :10 value + 0.5; barrel-01's first hour also
    has the superseded reading (x, x + 3, x + 1 → x + 4/3)."""
    rows = []
    for b, barrel in enumerate(BARRELS, start=1):
        for d in range(2):
            for h in range(24):
                if barrel == BARRELS[-1] and d == 0 and h in SILENT_HOURS:
                    continue
                mean = temperature(b, d, h, 10) + 0.5
                if (b, d, h) == (1, 0, 0):
                    mean = temperature(b, d, h, 10) + 4 / 3
                rows.append((barrel, datetime(2023, 2, 15 + d, h), mean))
    return pd.DataFrame(rows, columns=["sensor_id", "timestamp", "temperature"])


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """A SQLite store holding ``two_days``; its URL and how many readings fall in the days."""
    path = tmp_path / "readings.db"
    store = SqliteReadingsStore(path)
    store.create()
    batches = two_days()
    seed(store, monkeypatch, batches)
    store.close()
    yield f"sqlite:///{path}", sum(len(b) for _, b in batches[1:-1])


def test_readings_become_hourly_means_and_text_ids_reach_postgres(seeded, tmp_path, postgres_dsn):
    url, in_window = seeded
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(
        storage, tmp_path / "no-drop", dsn=postgres_dsn, source="readings", readings_url=url
    )
    with dg.instance_for_test() as instance:
        result = materialize_days(resources, instance, DAYS[0], DAYS[-1])
    assert result.success
    meta = result.asset_materializations_for_node("sensor_temperatures")[0].metadata
    assert meta["source"].value == "readings"
    assert meta["store_readings_used"].value == in_window
    assert "files_used" not in meta

    temps = read_days(storage, TEMPERATURES, DAYS).sort_values(["sensor_id", "timestamp"])
    expected = expected_hourly().sort_values(["sensor_id", "timestamp"])
    assert temps["sensor_id"].astype(str).tolist() == expected["sensor_id"].tolist()
    assert temps["timestamp"].tolist() == expected["timestamp"].tolist()
    assert temps["temperature"].to_numpy() == pytest.approx(expected["temperature"].to_numpy())

    features = read_days(storage, FEATURES, DAYS).set_index(["sensor_id", "day"])
    assert set(features.index.get_level_values(0)) == set(BARRELS)
    silent = features.loc[(BARRELS[-1], DAYS[0])]
    assert (silent["readings"], silent["share_missing"]) == (22, 2 / 24)
    assert features["enough_readings"].all()

    assignments = read_days(storage, ASSIGNMENTS, DAYS)
    assert sorted(assignments["sensor_id"]) == sorted(BARRELS * 2)
    assert assignments["profile"].notna().all()
    stored = cluster_predictions.read_days(postgres_dsn, date(2023, 2, 15), date(2023, 2, 16))
    assert sorted(stored["sensor_id"]) == sorted(BARRELS * 2)
    assert set(stored["run_id"]) == {result.run_id}


def test_an_empty_window_fails_naming_the_store(seeded, tmp_path):
    url, _ = seeded
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(storage, tmp_path, source="readings", readings_url=url)
    with dg.instance_for_test() as instance:
        result = materialize_days(
            resources, instance, "2023-03-01", "2023-03-01", raise_on_error=False
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "no readings for 2023-03-01..2023-03-01 in the readings store" in message


def window_batches() -> list[Batch]:
    """Readings around the day 2023-02-16: before, on both edges, inside, after."""
    times = [
        datetime(2023, 2, 15, 22, 30, tzinfo=UTC),
        datetime(2023, 2, 15, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2023, 2, 16, tzinfo=UTC),
        datetime(2023, 2, 16, 0, 30, tzinfo=UTC),
        datetime(2023, 2, 16, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2023, 2, 17, tzinfo=UTC),
    ]
    return [
        (stamp(t), [reading(f"barrel-{b}", temperature_c=10.0 + i + b / 10) for b in (2, 1)])
        for i, t in enumerate(times)
    ]


def test_temperature_history_is_the_same_on_sqlite_and_dynamodb(
    sqlite_url, dynamodb_url, monkeypatch
):
    inside = [
        (barrel["barrel_id"], at, barrel["temperature_c"])
        for at, batch in window_batches()[2:5]
        for barrel in batch
    ]
    got = {}
    for url in (sqlite_url, dynamodb_url):
        with open_store(url) as store:
            store.create()
            seed(store, monkeypatch, window_batches())
            frame = store.temperature_history("2023-02-16T00:00:00", "2023-02-17T00:00:00")
            # Other ways to say the same window: an offset, and datetimes.
            shifted = store.temperature_history(
                "2023-02-16T01:00:00+01:00", "2023-02-16T19:00:00-05:00"
            )
            naive = store.temperature_history(datetime(2023, 2, 16), datetime(2023, 2, 17))
        assert list(frame.columns) == ["barrel_id", "updated_at", "temperature_c"]
        assert list(frame.itertuples(index=False, name=None)) == inside, url
        pd.testing.assert_frame_equal(shifted, frame)
        pd.testing.assert_frame_equal(naive, frame)
        got[url] = frame
    pd.testing.assert_frame_equal(got[sqlite_url], got[dynamodb_url])


def test_the_updated_at_index_serves_the_window_and_old_files_get_it(tmp_path):
    path = tmp_path / "old.db"
    with SqliteReadingsStore(path) as store:
        store.create()
        store._conn.execute("DROP INDEX reading_history_updated_at")  # a file made before it
    with open_store(f"sqlite:///{path}") as store:
        store.create()
        assert isinstance(store, SqliteReadingsStore)
        plan = " ".join(
            row[-1]
            for row in store._conn.execute(
                "EXPLAIN QUERY PLAN SELECT barrel_id, updated_at, temperature_c "
                "FROM reading_history WHERE updated_at >= ? AND updated_at < ? "
                "ORDER BY updated_at, seq",
                ("a", "b"),
            )
        )
    assert "USING INDEX reading_history_updated_at" in plan
    assert "TEMP B-TREE" not in plan  # the index's order is the answer's order


def schedule_tick(source: str, at: datetime, drop_dir: Path):
    schedule = defs.resolve_schedule_def("sensor_profiles_daily")
    settings = SensorProfilesSettings(drop_dir=str(drop_dir), source=source)
    with dg.build_schedule_context(
        scheduled_execution_time=at,
        resources={"sensor_profiles": settings},
        repository_def=defs.get_repository_def(),
    ) as context:
        return schedule.evaluate_tick(context)


def test_the_daily_schedule_runs_yesterday_for_the_readings_source_only(tmp_path, seeded):
    schedule = defs.resolve_schedule_def("sensor_profiles_daily")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert (schedule.job_name, schedule.cron_schedule) == ("sensor_profiles", "30 0 * * *")
    at = datetime(2023, 2, 17, 0, 30, tzinfo=UTC)
    [request] = schedule_tick("readings", at, tmp_path).run_requests
    assert (request.partition_key, request.run_key) == (DAYS[-1], DAYS[-1])
    later = schedule_tick("readings", at + timedelta(days=1), tmp_path).run_requests
    assert [r.partition_key for r in later] == ["2023-02-17"]

    skipped = schedule_tick("drop", at, tmp_path)
    assert not skipped.run_requests and "PROFILES_SOURCE=drop" in skipped.skip_message
    with pytest.raises(dg.DagsterError) as failed:  # a tick error, not a silent skip
        schedule_tick("kafka", at, tmp_path)
    assert "PROFILES_SOURCE: expected one of" in str(failed.value.__cause__)

    # The request it makes is a runnable one-day run of the four assets on the store.
    url, _ = seeded
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(storage, tmp_path, k=2, source="readings", readings_url=url)
    with dg.instance_for_test() as instance:
        run = dg.materialize(
            profile_assets,
            resources=resources,
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
        )
        assert run.success
        assert instance.get_materialized_partitions(ASSIGNMENTS) == {DAYS[-1]}


def test_the_drop_sensor_stands_aside_for_the_readings_source(tmp_path):
    sensor = build_drop_sensor(profiles_job)
    settings = SensorProfilesSettings(drop_dir=str(tmp_path), source="readings")
    storage = PlatformStorage.local(str(tmp_path / "storage"))  # its S3 connection: unused
    resources = {"sensor_profiles": settings, "storage": storage}
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, resources=resources) as ctx,
    ):
        result = sensor(ctx)
    assert isinstance(result, dg.SkipReason)
    assert "PROFILES_SOURCE=readings" in result.skip_message


# -- DynamoDB: the by_day index --------------------------------------------------------------


def record_requests(store: DynamoDbReadingsStore) -> tuple[list[tuple[str, str | None]], list]:
    """From now on, each request the store's client sends (operation, IndexName) and each
    Query's ScannedCount: the items DynamoDB examined (what a read is charged for)."""
    sent: list[tuple[str, str | None]] = []
    scanned: list[int] = []

    def before(params: dict, model, **_) -> None:
        sent.append((model.name, params.get("IndexName")))

    def after(parsed: dict, model, **_) -> None:
        if model.name == "Query":
            scanned.append(parsed["ScannedCount"])

    store._client.meta.events.register("before-parameter-build.dynamodb", before)
    store._client.meta.events.register("after-call.dynamodb", after)
    return sent, scanned


def edge_batches() -> list[Batch]:
    """Readings over four UTC days: on both sides of each midnight, inside, and one stamp
    holding three readings (barrel-1 twice: ties are ordered by seq)."""
    times = []
    for day in range(1, 5):
        times += [
            datetime(2023, 3, day, tzinfo=UTC),
            datetime(2023, 3, day, 5, 15, tzinfo=UTC),
            datetime(2023, 3, day, 23, 59, 59, 999999, tzinfo=UTC),
        ]
    batches = [
        (stamp(t), [reading(f"barrel-{b}", temperature_c=5.0 + i + b / 10) for b in (3, 1)])
        for i, t in enumerate(times)
    ]
    tie = stamp(datetime(2023, 3, 2, 12, tzinfo=UTC))
    batches.append((tie, [reading("barrel-1", temperature_c=20.0), reading("barrel-2")]))
    batches.append((tie, [reading("barrel-1", temperature_c=21.0)]))
    return batches


EDGE_WINDOWS = [
    ("2023-02-28T00:00:00", "2023-03-06T00:00:00"),  # everything
    ("2023-03-02T00:00:00", "2023-03-04T00:00:00"),  # two whole days, midnight to midnight
    # Starts on a reading (kept), ends on a reading (left out), across three days.
    ("2023-03-01T23:59:59.999999+00:00", "2023-03-03T23:59:59.999999+00:00"),
    ("2023-03-02T05:15:00", "2023-03-02T12:00:00.000001"),  # inside one day, incl. the tie
    ("2023-03-02T01:00:00+02:00", "2023-03-03T01:00:00-01:00"),  # offsets
    ("2023-03-02T12:00:00", "2023-03-02T12:00:00"),  # empty
    ("2023-01-01T00:00:00", "2023-02-01T00:00:00"),  # before every reading
]


def test_dynamodb_windows_over_several_days_equal_sqlite(sqlite_url, dynamodb_url, monkeypatch):
    frames = {}
    for url in (sqlite_url, dynamodb_url):
        with open_store(url) as store:
            store.create()
            if isinstance(store, DynamoDbReadingsStore):
                store._page_items = 2  # several pages per day
            seed(store, monkeypatch, edge_batches())
            frames[url] = [store.temperature_history(lo, hi) for lo, hi in EDGE_WINDOWS]
    for (lo, hi), sqlite, dynamodb in zip(
        EDGE_WINDOWS, frames[sqlite_url], frames[dynamodb_url], strict=True
    ):
        pd.testing.assert_frame_equal(dynamodb, sqlite, obj=f"[{lo}, {hi})")
    everything, _, edges, tie, *_ = frames[dynamodb_url]
    assert len(everything) == 4 * 3 * 2 + 3
    assert edges["updated_at"].iloc[0] == "2023-03-01T23:59:59.999999+00:00"
    assert edges["updated_at"].iloc[-1] < "2023-03-03T23:59:59.999999+00:00"
    assert list(tie["temperature_c"])[-3:] == [20.0, 14.0, 21.0]  # one stamp, seq order


def test_dynamodb_a_window_examines_only_its_own_items(dynamodb_url):
    """Five days of readings every 30 min: an hour's window examines that hour's readings
    (and, ending on a stamp, that stamp's); the filtered read it replaced examined every
    reading ever written."""
    barrels = [parse_reading(reading(f"barrel-{b}")) for b in range(5)]
    start = datetime(2023, 3, 1, tzinfo=UTC)
    with open_store(dynamodb_url) as store:
        assert isinstance(store, DynamoDbReadingsStore)
        store.create()
        stamps = [stamp(start + timedelta(minutes=30 * i)) for i in range(5 * 48)]
        for at in stamps:  # the history write of put(), without the current items
            store._append_history(barrels, store._allocate(len(barrels)), at)
        total = len(stamps) * len(barrels)
        sent, scanned = record_requests(store)

        hour = store.temperature_history("2023-03-04T10:00:00", "2023-03-04T11:00:00")
        assert len(hour) == 2 * len(barrels)
        assert sent == [("Query", DAY_GSI_NAME)]
        assert sum(scanned) == len(hour) + len(barrels)  # + the readings stamped 11:00

        sent.clear()
        scanned.clear()
        inside = store.temperature_history("2023-03-04T10:00:00", "2023-03-04T10:45:00")
        assert len(inside) == sum(scanned) == 2 * len(barrels)

        sent.clear()
        scanned.clear()
        days = store.temperature_history("2023-03-02T12:00:00", "2023-03-04T12:00:00")
        assert len(days) == 2 * 48 * len(barrels)
        assert sent == [("Query", DAY_GSI_NAME)] * 3  # three UTC days touched
        assert sum(scanned) == len(days) + len(barrels)

        sent.clear()
        scanned.clear()
        lo, hi = "2023-03-04T10:00:00.000000+00:00", "2023-03-04T11:00:00.000000+00:00"
        assert len(store._filtered_rows(lo, hi)) == len(hour)
        assert sum(scanned) == total  # the old read: all history for one hour


def old_tables(client, table: str) -> None:
    """The three tables as ``create()`` made them before the by_day index."""
    client.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": t}
            for n, t in (("barrel_id", "S"), ("shard", "S"), ("seq", "N"))
        ],
        KeySchema=[{"AttributeName": "barrel_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": GSI_NAME,
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=f"{table}-sequence",
        AttributeDefinitions=[{"AttributeName": "sequence_name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "sequence_name", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=f"{table}-history",
        AttributeDefinitions=[
            {"AttributeName": "shard", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "shard", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_dynamodb_create_upgrades_a_table_made_before_the_day_index(
    sqlite_url, dynamodb_url, moto_endpoint, monkeypatch, caplog
):
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    batches = edge_batches()
    with open_store(sqlite_url) as reference:
        reference.create()
        seed(reference, monkeypatch, batches)
        expected = [reference.temperature_history(lo, hi) for lo, hi in EDGE_WINDOWS]

    with open_store(dynamodb_url) as old:
        assert isinstance(old, DynamoDbReadingsStore)
        old_tables(client, old.table)
        seed(old, monkeypatch, batches[:-3])
        history = old.history_table
    # What the previous version wrote: history items without day.
    for item in client.scan(TableName=history)["Items"]:
        client.update_item(
            TableName=history, Key={"shard": item["shard"], "seq": item["seq"]},
            UpdateExpression="REMOVE #d", ExpressionAttributeNames={"#d": "day"},
        )  # fmt: skip
    assert not any("day" in i for i in client.scan(TableName=history)["Items"])

    with open_store(dynamodb_url) as before_create, caplog.at_level("WARNING"):
        # A reader that has not run the upgrade falls back to the full read: nothing is lost.
        frame = before_create.temperature_history(*EDGE_WINDOWS[0])
        later = sum(len(b) for _, b in batches[-3:])
        assert len(frame) == len(expected[0]) - later and "without day" in caplog.text

    with open_store(dynamodb_url) as store:
        assert isinstance(store, DynamoDbReadingsStore)
        store.create()
        indexes = client.describe_table(TableName=history)["Table"]["GlobalSecondaryIndexes"]
        assert [i["IndexName"] for i in indexes] == [DAY_GSI_NAME]
        items = client.scan(TableName=history)["Items"]
        assert [i["day"]["S"] for i in items] == [i["updated_at"]["S"][:10] for i in items]
        seed(store, monkeypatch, batches[-3:])  # written by this version
        sent, _ = record_requests(store)
        for (lo, hi), want in zip(EDGE_WINDOWS, expected, strict=True):
            pd.testing.assert_frame_equal(store.temperature_history(lo, hi), want)
        assert {op for op, _ in sent} == {"Query"} and {i for _, i in sent} == {DAY_GSI_NAME}

        sent.clear()
        store.create()  # idempotent: no index change, no second backfill
        # Reads only: no index change, no TTL change (UpdateTimeToLive), no second backfill.
        assert {op for op, _ in sent} <= {"CreateTable", "DescribeTable", "DescribeTimeToLive"}
        assert store.backfill_history_days() == 0  # nothing left since the mark
    with open_store(dynamodb_url) as again:
        again.create()
        pd.testing.assert_frame_equal(again.temperature_history(*EDGE_WINDOWS[0]), expected[0])
