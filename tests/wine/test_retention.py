"""Retention loses nothing: every reading and logged prediction is in the hot store or the
archive (once) across a prune and across a SIGKILL in the middle of one.

Readings and barrel predictions (the scorer's ledger) run on SQLite and DynamoDB (moto's
server), the prediction log on SQLite and PostgreSQL; the archive on a local folder (and S3 for
the Dagster assets).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_core.storage import PlatformStorage
from tests.conftest import REPO_ROOT, s3_storage
from tests.wine.conftest import reading
from wine_assets.features import FEATURES
from wine_assets.monitoring.prediction_log import (
    LoggedPrediction,
    PredictionLog,
    PredictionLogResource,
    open_log,
)
from wine_assets.quality.ledger import LedgerRow, open_ledger
from wine_assets.readings.dynamodb_store import TTL_ATTRIBUTE, TTL_GRACE_DAYS
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.store import ReadingsStore, open_store
from wine_assets.retention import archive as retention
from wine_assets.retention.archive import (
    ArchiveMismatchError,
    archive_key,
    barrel_predictions_table,
    logged_window,
    prediction_log_table,
    read_archive,
    readings_table,
    retain,
)
from wine_assets.retention.assets import (
    CHECK,
    RetentionSettings,
    barrel_predictions_archive,
    barrel_readings_archive,
    prediction_log_archive,
)

TODAY = datetime.now(UTC).date()
#: Four closed days and today; a retention of 2 days prunes the first two.
DAYS = [TODAY - timedelta(days=n) for n in (4, 3, 2, 1, 0)]
RETENTION = 2
PRUNED_DAYS = DAYS[:2]
BARRELS = ("barrel-a", "barrel-b", "barrel-c")


def noon(day: date, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, 12, minute, tzinfo=UTC)


def fill_readings(store: ReadingsStore, monkeypatch: pytest.MonkeyPatch) -> dict[int, date]:
    """Three readings per barrel on each day (stamped that day): every seq with its day."""
    module = sys.modules[type(store).__module__]
    written: dict[int, date] = {}
    for day in DAYS:
        for minute in range(3):
            stamp = noon(day, minute).isoformat(timespec="microseconds")
            with monkeypatch.context() as m:
                m.setattr(module, "utc_now", lambda stamp=stamp: stamp)
                seqs = store.put(
                    [reading(b, alcohol=9.0 + minute / 10 + i) for i, b in enumerate(BARRELS)]
                )
            written.update(dict.fromkeys(seqs, day))
    return written


def fill_ledger(store: ReadingsStore, upto: int | None = None) -> dict[int, date]:
    """The scorer's ledger holding a prediction for every reading (up to ``upto``), with its
    position moved there: every seq with its day."""
    history = store.history(0, upto if upto is not None else store.max_seq())
    rows = [
        LedgerRow(
            seq=r.seq,
            barrel_id=r.barrel_id,
            wine_type=r.wine_type,
            day=r.updated_at[:10],
            reading_updated_at=r.updated_at,
            outcome="scored",
            scored_at=r.updated_at,
            predicted_quality=5.5,
            p_good=0.25,
            quality_low_90=4.5,
            quality_high_90=6.5,
            model_version=1,
        )
        for r in history
    ]
    ledger = open_ledger(store)
    try:
        ledger.commit(rows, cursor=rows[-1].seq)
    finally:
        ledger.close()
    return {r.seq: date.fromisoformat(r.day) for r in rows}


def fill_log(log: PredictionLog) -> dict[int, date]:
    """Four logged predictions a day: every position with its day."""
    log.create()
    for day in DAYS:
        log.write(
            [
                LoggedPrediction(
                    request_id=f"req-{day}",
                    item=i,
                    endpoint="batch",
                    barrel_id=None,
                    wine_type="red",
                    features=tuple(7.0 + i for _ in FEATURES),
                    predicted_quality=5.5,
                    good=False,
                    model_version=1,
                    logged_at=noon(day, i),
                )
                for i in range(4)
            ]
        )
    rows = log.window(noon(DAYS[0]) - timedelta(days=1), noon(TODAY) + timedelta(days=1))
    return {int(p): t.date() for p, t in zip(rows["position"], rows["logged_at"], strict=True)}


def hot_keys(table: retention.HotTable) -> list[int]:
    return [int(k) for day in DAYS for k in table.read_day(day)[table.key]]


def archived_keys(storage: PlatformStorage, table: str) -> list[int]:
    """Every key in every archive file of ``table`` (duplicates kept: they would be a bug)."""
    key = "position" if table == "prediction_log" else "seq"
    frames = [read_archive(storage, table, day) for day in DAYS]
    return [int(k) for f in frames if f is not None for k in f[key]]


def assert_nothing_lost(
    storage: PlatformStorage, table: retention.HotTable, written: dict[int, date]
) -> None:
    """Each written key is in the hot table or the archive; the archive holds none twice."""
    archived = archived_keys(storage, table.name)
    assert len(archived) == len(set(archived)), "a row archived twice"
    assert set(hot_keys(table)) | set(archived) == set(written)


def assert_pruned(
    storage: PlatformStorage, table: retention.HotTable, written: dict[int, date]
) -> None:
    """The end state of a prune: old days only in the archive, recent days only hot."""
    assert_nothing_lost(storage, table, written)
    for day in DAYS:
        keys = {k for k, d in written.items() if d == day}
        hot = {int(k) for k in table.read_day(day)[table.key]}
        if day in PRUNED_DAYS:
            assert not hot, f"{day} not pruned"
            assert set(archived_keys_of(storage, table, day)) == keys
        else:
            assert hot == keys, f"{day} lost hot rows"
    assert table.oldest_day() == DAYS[2]


def archived_keys_of(storage: PlatformStorage, table: retention.HotTable, day: date) -> list[int]:
    frame = read_archive(storage, table.name, day)
    return [] if frame is None else [int(k) for k in frame[table.key]]


# -- the readings store ---------------------------------------------------------------------


def test_prune_moves_old_days_to_the_archive_and_keeps_current_readings(
    store: ReadingsStore, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = fill_readings(store, monkeypatch)
    current = store.all()
    table = readings_table(store)
    pruned = retain(local_storage, table, RETENTION, today=TODAY, batch_size=4)
    assert [p.archived.day for p in pruned] == PRUNED_DAYS
    assert [p.deleted for p in pruned] == [9, 9]
    assert_pruned(local_storage, table, written)
    assert store.all() == current  # the current reading of each barrel is never pruned
    # The archive holds whole readings, as the history had them.
    day = read_archive(local_storage, "readings", PRUNED_DAYS[0])
    assert day is not None
    first = min(k for k, d in written.items() if d == PRUNED_DAYS[0])
    assert day.iloc[0]["barrel_id"] == "barrel-a"
    assert day.iloc[0]["updated_at"] == noon(PRUNED_DAYS[0]).isoformat(timespec="microseconds")
    assert int(day.iloc[0]["seq"]) == first
    # Running it again changes nothing.
    again = retain(local_storage, table, RETENTION, today=TODAY)
    assert again == []
    assert_pruned(local_storage, table, written)


@pytest.mark.parametrize("kill_at", ["before_delete", "mid_delete"])
@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_readings_survive_a_prune_killed_midway(
    backend: str,
    kill_at: str,
    request: pytest.FixtureRequest,
    local_storage: PlatformStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    with open_store(url) as store:
        store.create()
        written = fill_readings(store, monkeypatch)
        table = readings_table(store)
        killed_in_prune(url, "readings", local_storage, kill_at)
        assert_nothing_lost(local_storage, table, written)
        assert archived_keys_of(local_storage, table, PRUNED_DAYS[0])  # the kill came after it
        if kill_at == "mid_delete":  # one batch of 3 deleted before the kill
            assert len(hot_keys(table)) == len(written) - 3
        retain(local_storage, table, RETENTION, today=TODAY, batch_size=4)
        assert_pruned(local_storage, table, written)


def killed_in_prune(url: str, kind: str, storage: PlatformStorage, kill_at: str) -> None:
    """Run the prune in a subprocess that SIGKILLs itself at ``kill_at``."""
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.wine.retention_crash", kind, url, storage.root,
            TODAY.isoformat(), str(RETENTION), kill_at,
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_readings_the_scorer_has_not_passed_are_not_pruned(
    store: ReadingsStore, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scorer stopped in the middle of the first day: the rest of the history stays hot
    (archived all the same) until it is scored."""
    written = fill_readings(store, monkeypatch)
    first_day = sorted(k for k, d in written.items() if d == DAYS[0])
    scored_upto = first_day[4]
    table = readings_table(store, scored_upto=scored_upto)
    retain(local_storage, table, RETENTION, today=TODAY)
    assert_nothing_lost(local_storage, table, written)
    assert sorted(hot_keys(table)) == [k for k in sorted(written) if k > scored_upto]
    assert set(archived_keys(local_storage, "readings")) == {
        k for k, d in written.items() if d in PRUNED_DAYS
    }


# -- barrel predictions (the scorer's ledger) -----------------------------------------------


@pytest.mark.parametrize("kill_at", [None, "before_delete", "mid_delete"])
@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_barrel_predictions_survive_a_prune_and_a_kill_midway(
    backend: str,
    kill_at: str | None,
    request: pytest.FixtureRequest,
    local_storage: PlatformStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    with open_store(url) as store:
        store.create()
        fill_readings(store, monkeypatch)
        written = fill_ledger(store)
        ledger = open_ledger(store)
        table = barrel_predictions_table(ledger)
        if kill_at:
            killed_in_prune(url, "barrel_predictions", local_storage, kill_at)
            assert_nothing_lost(local_storage, table, written)
        retain(local_storage, table, RETENTION, today=TODAY, batch_size=4)
        assert_pruned(local_storage, table, written)
        archived = read_archive(local_storage, "barrel_predictions", PRUNED_DAYS[0])
        assert archived is not None and set(archived["outcome"]) == {"scored"}
        ledger.close()


def test_late_rows_are_merged_into_the_archive_once(
    sqlite_url: str, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day archived, then a row of that day found in the hot store (a writer stamped it
    before midnight, committed after): archiving again adds it, keeping the rest once."""
    with open_store(sqlite_url) as store:
        store.create()
        written = fill_readings(store, monkeypatch)
        table = readings_table(store)
        day = DAYS[0]
        first = retention.archive_day(local_storage, table, day, today=TODAY)
        assert first.written and first.rows == 9
        assert not retention.archive_day(local_storage, table, day, today=TODAY).written
        retention.prune_day(local_storage, table, day, today=TODAY)
        stamp = noon(day, 59).isoformat(timespec="microseconds")
        with monkeypatch.context() as m:
            m.setattr(sys.modules[type(store).__module__], "utc_now", lambda: stamp)
            (late,) = store.put([reading("barrel-late")])
        again = retention.archive_day(local_storage, table, day, today=TODAY)
        assert again.written and again.rows == 10 and again.key_max == late
        assert_nothing_lost(local_storage, table, {**written, late: day})


def test_a_bad_archive_write_prunes_nothing(
    sqlite_url: str, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file read back must hold every row: one lost on the way stops the prune."""
    with open_store(sqlite_url) as store:
        store.create()
        written = fill_readings(store, monkeypatch)
        table = readings_table(store)
        real = PlatformStorage.write_parquet

        def lossy(self: PlatformStorage, key: str, df: pd.DataFrame) -> object:
            return real(self, key, df.iloc[1:])

        monkeypatch.setattr(PlatformStorage, "write_parquet", lossy)
        with pytest.raises(ArchiveMismatchError, match="8 rows, expected 9"):
            retain(local_storage, table, RETENTION, today=TODAY)
        assert sorted(hot_keys(table)) == sorted(written)


def test_open_days_are_never_archived(store: ReadingsStore, local_storage: PlatformStorage) -> None:
    with pytest.raises(ValueError, match="not a closed UTC day"):
        retention.archive_day(local_storage, readings_table(store), TODAY)


def test_dynamodb_history_items_expire_after_the_retention(
    dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READINGS_RETENTION_DAYS", "5")
    with open_store(dynamodb_url) as store:
        store.create()
        store.create()  # enabling TTL again is a no-op, not an error
        (seq,) = store.put([reading()])
        client = store._client  # the raw items: TTL is an attribute the API never returns
        ttl = client.describe_time_to_live(TableName=store.history_table)
        assert ttl["TimeToLiveDescription"] == {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": TTL_ATTRIBUTE,
        }
        item = client.get_item(
            TableName=store.history_table, Key={"shard": {"S": "all"}, "seq": {"N": str(seq)}}
        )["Item"]
        day_end = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC)
        expected = day_end + timedelta(days=5 + TTL_GRACE_DAYS)
        assert int(item[TTL_ATTRIBUTE]["N"]) == int(expected.timestamp())
        current = client.get_item(TableName=store.table, Key={"barrel_id": {"S": "barrel-0001"}})
        assert TTL_ATTRIBUTE not in current["Item"]  # the current reading never expires
        # The reading's prediction in the scorer's ledger expires with it.
        fill_ledger(store)
        ledger = open_ledger(store)
        ttl = client.describe_time_to_live(TableName=ledger.table)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == TTL_ATTRIBUTE
        scored = client.get_item(
            TableName=ledger.table,
            Key={"day": {"S": TODAY.isoformat()}, "seq": {"N": str(seq)}},
        )["Item"]
        assert scored[TTL_ATTRIBUTE] == item[TTL_ATTRIBUTE]


def test_retention_setting_is_checked(monkeypatch: pytest.MonkeyPatch, dynamodb_url: str) -> None:
    monkeypatch.setenv("READINGS_RETENTION_DAYS", "a week")
    with pytest.raises(ValueError, match="READINGS_RETENTION_DAYS='a week'"):
        open_store(dynamodb_url)


# -- the prediction log ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def log_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture
def log(log_dsn: str) -> Iterator[PredictionLog]:
    with open_log(log_dsn) as opened:
        yield opened


@pytest.mark.parametrize("kill_at", [None, "before_delete", "mid_delete"])
def test_logged_predictions_survive_a_prune_and_a_kill_midway(
    log_dsn: str, log: PredictionLog, local_storage: PlatformStorage, kill_at: str | None
) -> None:
    written = fill_log(log)
    table = prediction_log_table(log)
    if kill_at:
        killed_in_prune(log_dsn, "prediction_log", local_storage, kill_at)
        assert_nothing_lost(local_storage, table, written)
    retain(local_storage, table, RETENTION, today=TODAY, batch_size=3)
    assert_pruned(local_storage, table, written)
    assert log.max_position() == max(written)


def test_the_newest_logged_row_is_kept(log: PredictionLog, local_storage: PlatformStorage) -> None:
    """Everything is past retention; the newest row stays (the log's position resumes there)."""
    written = fill_log(log)
    retain(local_storage, prediction_log_table(log), 1, today=TODAY + timedelta(days=5))
    assert log.count() == 1 and log.max_position() == max(written)
    assert_nothing_lost(local_storage, prediction_log_table(log), written)


def test_drift_window_reads_pruned_hours_from_the_archive(
    log: PredictionLog, local_storage: PlatformStorage
) -> None:
    fill_log(log)
    start = noon(PRUNED_DAYS[0])
    before = log.window(start, start + timedelta(hours=1))
    retain(local_storage, prediction_log_table(log), RETENTION, today=TODAY)
    assert log.window(start, start + timedelta(hours=1)).empty
    after = logged_window(log, local_storage, start, start + timedelta(hours=1))
    pd.testing.assert_frame_equal(after, before, check_dtype=False)
    first, last = int(before["position"].iloc[1]), int(before["position"].iloc[2])
    part = logged_window(log, local_storage, start, start + timedelta(hours=1), (first - 1, last))
    assert part["position"].tolist() == [first, last]


# -- the Dagster assets ---------------------------------------------------------------------


def test_archive_assets_archive_check_and_prune(
    sqlite_url: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's partition of each archive asset on S3 storage: the file, its metadata, the
    blocking check, and the prune of the days past retention."""
    storage = s3_storage(moto_endpoint)
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with open_store(sqlite_url) as store, open_log(log_dsn) as log:
        store.create()
        readings = fill_readings(store, monkeypatch)
        predictions = fill_ledger(store)
        logged = fill_log(log)
    resources = {
        "storage": storage,
        "readings_store": ReadingsStoreResource(url=sqlite_url),
        "prediction_log": PredictionLogResource(dsn=log_dsn),
        "retention": RetentionSettings(readings_days=RETENTION, prediction_log_days=RETENTION),
    }
    day = DAYS[3]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [barrel_predictions_archive, barrel_readings_archive, prediction_log_archive],
            partition_key=day.isoformat(),
            resources=resources,
            instance=instance,
        )
    assert result.success
    checks = {e.asset_key.path[0]: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(
        ["barrel_predictions_archive", "barrel_readings_archive", "prediction_log_archive"], True
    )
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {CHECK}
    by_asset = {
        m.materialization.asset_key.path[0]: m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    meta = by_asset["barrel_readings_archive"]
    seqs = sorted(k for k, d in readings.items() if d == day)
    assert meta["rows"].value == 9
    assert meta["seq_range"].value == f"{seqs[0]}-{seqs[-1]}"
    assert meta["path"].value == storage.uri(archive_key("readings", day))
    assert meta["bytes"].value == len(storage.read_bytes(archive_key("readings", day)))
    assert meta["pruned_days"].value == [d.isoformat() for d in PRUNED_DAYS]
    assert meta["pruned_rows"].value == 18
    assert by_asset["barrel_predictions_archive"]["rows"].value == 9
    assert by_asset["barrel_predictions_archive"]["pruned_rows"].value == 18
    assert by_asset["prediction_log_archive"]["rows"].value == 4
    assert by_asset["prediction_log_archive"]["pruned_rows"].value == 8
    with open_store(sqlite_url) as store, open_log(log_dsn) as log:
        assert_pruned(storage, readings_table(store), readings)
        assert_pruned(storage, prediction_log_table(log), logged)
        ledger = open_ledger(store)
        assert_pruned(storage, barrel_predictions_table(ledger), predictions)
        ledger.close()


def test_a_failed_archive_check_blocks_the_prune(
    sqlite_url: str, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(sqlite_url) as store:
        store.create()
        written = fill_readings(store, monkeypatch)
        fill_ledger(store)  # every reading scored: only the failed check keeps them hot
    real = PlatformStorage.write_parquet
    monkeypatch.setattr(
        PlatformStorage, "write_parquet", lambda self, key, df: real(self, key, df.iloc[:-1])
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [barrel_readings_archive],
            partition_key=DAYS[3].isoformat(),
            resources={
                "storage": local_storage,
                "readings_store": ReadingsStoreResource(url=sqlite_url),
                "retention": RetentionSettings(readings_days=RETENTION),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    with open_store(sqlite_url) as store:
        assert sorted(hot_keys(readings_table(store))) == sorted(written)


def test_a_failed_retention_run_is_alerted(tmp_path: Path, local_storage: PlatformStorage) -> None:
    """A retention run that fails (the readings file is not a database) posts a run-failure
    alert: a stopped archive must be heard of before the DynamoDB TTL backstop fires."""
    from tests.core.test_alerts import RUN_FAILURES, Receiver, Ticker, hook
    from wine_assets.retention.jobs import retention_job

    broken = tmp_path / "readings.db"
    broken.write_text("not a database")
    location = dg.Definitions(
        assets=[barrel_predictions_archive, barrel_readings_archive, prediction_log_archive],
        jobs=[retention_job],
        resources={
            "storage": local_storage,
            "readings_store": ReadingsStoreResource(url=f"sqlite:///{broken}"),
            "prediction_log": PredictionLogResource(dsn=f"sqlite:///{tmp_path / 'log.db'}"),
            "retention": RetentionSettings(),
        },
    )
    receiver = Receiver()
    try:
        with dg.instance_for_test() as instance:
            ticker = Ticker(instance, hook(receiver.url))
            ticker.tick(RUN_FAILURES)  # the first tick only sets the cursor
            result = location.resolve_job_def("wine_retention").execute_in_process(
                instance=instance, partition_key=DAYS[3].isoformat(), raise_on_error=False
            )
            assert not result.success
            ticker.tick(RUN_FAILURES)
    finally:
        receiver.close()
    (body,) = receiver.bodies
    assert body["alert"]["job"] == "wine_retention"
    assert body["alert"]["run_id"] == result.run_id


def test_a_drift_report_of_a_pruned_hour_reads_the_archive(
    log: PredictionLog, log_dsn: str, tmp_path: Path
) -> None:
    """The drift report asset, run for an hour whose rows were pruned from the log, reports
    every row of it (min_rows set high: the report counts the rows without comparing)."""
    from tests.wine.test_monitoring_drift import ASSETS, REPORT
    from tests.wine.test_monitoring_drift import resources as drift_resources
    from wine_assets.features import read_uci
    from wine_assets.monitoring.assets import drift_partitions
    from wine_assets.monitoring.reports import hour_key

    storage = PlatformStorage.local(str(tmp_path / "storage"))
    storage.write_parquet("tables/wine_training_data.parquet", read_uci())
    fill_log(log)
    retain(storage, prediction_log_table(log), RETENTION, today=TODAY)
    key = hour_key(noon(PRUNED_DAYS[0]))
    config = {"ops": {"wine_drift_report": {"config": {"min_rows": 1_000_000}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(drift_partitions.name, [key])
        result = dg.materialize(
            ASSETS,
            selection=REPORT,
            partition_key=key,
            resources=drift_resources(storage, log_dsn),
            instance=instance,
            run_config=config,
        )
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["rows"].value == 4


def test_a_scored_reading_missing_from_the_history_fails_the_check(
    sqlite_url: str, local_storage: PlatformStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scorer's ledger says which readings the day had: one it scored but the history
    lost (deleted by hand here) fails the readings archive's check, and nothing is pruned."""
    import sqlite3

    with open_store(sqlite_url) as store:
        store.create()
        written = fill_readings(store, monkeypatch)
        fill_ledger(store)
    gone = min(k for k, d in written.items() if d == DAYS[3])
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM reading_history WHERE seq = ?", (gone,))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [barrel_readings_archive],
            partition_key=DAYS[3].isoformat(),
            resources={
                "storage": local_storage,
                "readings_store": ReadingsStoreResource(url=sqlite_url),
                "retention": RetentionSettings(readings_days=RETENTION),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert f"[{gone}]" in evaluation.metadata["problem"].value
    with open_store(sqlite_url) as store:
        assert sorted(hot_keys(readings_table(store))) == sorted(set(written) - {gone})
