"""The local Dagster instance's SQLite storage, with batched materialization writes.

A single-run backfill over N days logs one materialization per asset and day. With
``DAGSTER_EVENT_BATCH_SIZE`` set, Dagster hands them to the event log in batches; PostgreSQL
(production) writes a batch in one insert, but Dagster's SQLite event log stores them one by
one, each with a fresh engine, connection and commit on the run's file and again on the index
file (~15 ms an event: 5-8 s of bookkeeping for a 90-day, four-asset profile backfill).

``BatchedSqliteStorage`` is Dagster's SQLite storage (same files and layout under
``base_dir``, so an existing ``.dagster_home`` keeps working) whose event log writes such a
batch as Dagster's PostgreSQL event log does: one insert into the run's file, then one index
transaction (events, their tags, the asset's latest-event row). If the index step fails, the
batch's rows are deleted from the run's file before the error reaches Dagster, which then stores
the events one by one, each once. Anything else goes through Dagster's own code unchanged.
Configured in ``dagster.yaml`` as ``storage: custom:``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p

__all__ = ["BatchedSqliteEventLogStorage", "BatchedSqliteStorage"]


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log; a batch of one run's materializations is written at once."""

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        kinds = {e.dagster_event_type for e in events}
        runs = {e.run_id for e in events}
        if kinds != {DagsterEventType.ASSET_MATERIALIZATION} or len(runs) != 1:
            return super().store_event_batch(events)  # one by one, as Dagster does
        run_id = events[0].run_id
        # Dagster's fallback stores each event in the run's file and the index, so the batch
        # must leave neither file written if it fails. The run's file first, in one transaction
        # (all or nothing), noting the ids its insert produced.
        insert = self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
        with self.run_connection(run_id) as conn:
            run_ids = [row.id for row in conn.execute(insert)]
        # Then the cross-run index, also in one transaction. If it fails, take the batch back out
        # of the run's file before re-raising, else the fallback would store it there twice.
        try:
            with self.index_transaction() as conn:
                ids = [
                    int(conn.execute(self.prepare_insert_event(e)).inserted_primary_key[0])
                    for e in events
                ]
                self._store_asset_event_tags(conn, events, ids)
                # Per asset, the latest-event row ends as the last event's (what N single
                # writes would leave).
                last = {e.dagster_event.asset_key: (e, i) for e, i in zip(events, ids, strict=True)}
                for event, event_id in last.values():
                    self._store_asset_event(conn, event, event_id)
        except Exception:
            table = SqlEventLogStorageTable
            with self.run_connection(run_id) as conn:
                conn.execute(table.delete().where(table.c.id.in_(run_ids)))
            raise


class BatchedSqliteStorage(DagsterSqliteStorage):
    """``storage: sqlite:`` with ``BatchedSqliteEventLogStorage`` as its event log.

    ``dagster.yaml``::

        storage:
          custom:
            module: platform_core.instance_storage
            class: BatchedSqliteStorage
            config:
              base_dir:
                env: DAGSTER_HOME
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # Dagster's __init__, with the event log swapped (same directories).
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = BatchedSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "BatchedSqliteStorage":
        mkdir_p(config_value["base_dir"])
        return cls(config_value["base_dir"], inst_data=inst_data)
