"""The local instance's storage: Dagster's SQLite storage whose event log writes a batch of
materializations at once must leave exactly what Dagster's own SQLite storage leaves."""

import sqlite3
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from platform_core.instance_storage import BatchedSqliteEventLogStorage
from platform_core.settings import init_dagster_home

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-08")
RANGE = {ASSET_PARTITION_RANGE_START_TAG: "2024-01-01", ASSET_PARTITION_RANGE_END_TAG: "2024-01-07"}
BATCHED = {
    "custom": {
        "module": "platform_core.instance_storage",
        "class": "BatchedSqliteStorage",
        "config": {"base_dir": ""},
    }
}


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily_a(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[daily_a])
def daily_b() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"plot": dg.MetadataValue.md("x" * 100)})


def instance_at(home: Path, batched: bool):
    home.mkdir(parents=True, exist_ok=True)
    storage = {"custom": {**BATCHED["custom"], "config": {"base_dir": str(home)}}}
    return dg.instance_for_test(
        temp_dir=str(home), overrides={"storage": storage} if batched else None
    )


def what_is_stored(instance: dg.DagsterInstance, run_id: str) -> dict:
    """Everything a reader of asset history sees, without ids and times."""
    out: dict = {"run_events": Counter(r.event_log_entry.dagster_event_type for r in
                                       instance.get_records_for_run(run_id).records)}  # fmt: skip
    for asset in (daily_a, daily_b):
        records = instance.fetch_materializations(asset.key, limit=100, ascending=True).records
        entry = instance.get_asset_records([asset.key])[0].asset_entry
        out[asset.key.to_user_string()] = {
            "partitions": [r.partition_key for r in records],
            "metadata": [r.asset_materialization.metadata for r in records],
            "materialized": sorted(instance.get_materialized_partitions(asset.key)),
            "last": entry.last_materialization_record.partition_key,
            # The data version derives from the run id: compare which tags each event has.
            "tag_keys": sorted(
                tuple(sorted(tags))
                for tags in instance.event_log_storage.get_event_tags_for_asset(asset.key)
            ),
        }
    return out


def count_single_events(monkeypatch) -> Counter:
    """Per event type, the events the batched storage is handed one by one (store_event)."""
    single: Counter = Counter()
    store_event = BatchedSqliteEventLogStorage.store_event

    def counted(self, event):
        single[event.dagster_event_type] += 1
        return store_event(self, event)

    monkeypatch.setattr(BatchedSqliteEventLogStorage, "store_event", counted)
    return single


def materialize_on_both(tmp_path: Path) -> tuple[dict, dict, Counter]:
    """The same 7-day range run on Dagster's SQLite storage and on the batched one: what each
    stores, and how often each (asset, day) materialization is in the batched run's events."""
    seen = []
    for batched in (False, True):
        with instance_at(tmp_path / str(batched), batched) as instance:
            result = dg.materialize([daily_a, daily_b], instance=instance, tags=RANGE)
            assert result.success
            seen.append(what_is_stored(instance, result.run_id))
            logs = instance.all_logs(
                result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            )
    stored = Counter(
        (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition) for e in logs
    )
    return seen[0], seen[1], stored


def test_the_projects_instance_uses_the_batched_event_log(tmp_path, monkeypatch):
    home = init_dagster_home(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert Path(instance.event_log_storage._base_dir) == home / "history" / "runs"


#: Per asset: batches of 3, 3 and 1 (Dagster stores a batch of one as a single event), or one of 7.
@pytest.mark.parametrize(("batch_size", "singles"), [("3", 2), ("100", 0)])
def test_batched_writes_store_what_dagsters_sqlite_storage_stores(
    tmp_path, monkeypatch, batch_size, singles
):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    single = count_single_events(monkeypatch)
    plain, mine, _ = materialize_on_both(tmp_path)
    assert mine == plain
    assert plain["daily_b"]["partitions"] == [f"2024-01-0{d}" for d in range(1, 8)]
    assert plain["daily_b"]["last"] == "2024-01-07"
    # The batched storage stored no materialization on its own but batches of one.
    assert single[dg.DagsterEventType.ASSET_MATERIALIZATION] == singles


def test_a_home_made_by_dagsters_sqlite_storage_keeps_its_history(tmp_path):
    home = tmp_path / "home"
    with instance_at(home, batched=False) as instance:
        first = dg.materialize([daily_a], instance=instance, tags=RANGE).run_id
    with instance_at(home, batched=True) as instance:
        assert instance.get_run_by_id(first) is not None
        assert len(instance.fetch_materializations(daily_a.key, limit=100).records) == 7
        dg.materialize([daily_a], instance=instance, partition_key="2024-01-03")
        assert len(instance.fetch_materializations(daily_a.key, limit=100).records) == 8


#: Where the index step of the first batch fails: on opening it ("database is locked" on
#: index.db), or inside its transaction after the events went in.
@pytest.mark.parametrize("step", ["index_transaction", "_store_asset_event_tags"])
def test_a_batch_whose_index_step_fails_is_stored_once_by_dagsters_fallback(
    tmp_path, monkeypatch, step
):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100")
    failed: list[int] = []
    store_event_batch = BatchedSqliteEventLogStorage.store_event_batch

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    def failing_once(self, events):
        kinds = {e.dagster_event_type for e in events}
        if failed or kinds != {dg.DagsterEventType.ASSET_MATERIALIZATION}:
            return store_event_batch(self, events)
        failed.append(len(events))
        setattr(self, step, broken)  # for the first batch of materializations only
        try:
            return store_event_batch(self, events)
        finally:
            delattr(self, step)

    monkeypatch.setattr(BatchedSqliteEventLogStorage, "store_event_batch", failing_once)
    single = count_single_events(monkeypatch)
    plain, mine, stored = materialize_on_both(tmp_path)
    # The first batch of materializations (daily_a's 7) failed; Dagster's fallback stored them
    # one by one.
    assert failed == [7]
    assert single[dg.DagsterEventType.ASSET_MATERIALIZATION] == 7
    # Each materialization once in the run's events and in the index, as with Dagster's storage.
    days = [f"2024-01-0{d}" for d in range(1, 8)]
    assert stored == Counter((a, day) for a in ("daily_a", "daily_b") for day in days)
    assert mine == plain
    assert plain["run_events"][dg.DagsterEventType.ASSET_MATERIALIZATION] == 14
