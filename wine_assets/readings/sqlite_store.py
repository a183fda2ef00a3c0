"""SQLite backend of the readings store (laptop, CI, single-host deployments).

One file shared by several processes (the simulator and Dagster runs), so:

- WAL mode: readers (the sensor) never block the writer and vice versa;
- every write runs in ``BEGIN IMMEDIATE``, which takes the write lock *before* reading the
  sequence counter, so two processes can never read the same counter value; the counter lives
  in ``meta`` (not ``MAX(seq)``) so seqs are never reused, even if rows were deleted by hand;
- allocation and write commit together, so readings become visible in seq order and a cursor
  never skips a slower writer's reading (unlike DynamoDB, see ``dynamodb_store``);
- ``busy_timeout`` (30 s) makes a writer wait for the lock instead of failing.

Predictions live in their own narrow table (``predictions``, keyed by barrel, a foreign key to
``readings``): a batch upserts small rows instead of rewriting every wide reading row, and the
foreign key makes an unknown barrel fail the write. Schema 1 kept them as columns of
``readings``; ``create`` moves them over once (see ``_migrate``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wine_assets.readings.schema import NUMERIC_FIELDS, Prediction, Reading
from wine_assets.readings.store import (
    HISTORY_COLUMNS,
    PredictionColumns,
    ReadingsStore,
    _check_cursor,
    _chunks,
    _day_window,
    _history_frame,
    _temperature_frame,
    _time_window,
    utc_now,
    validate_batch,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCHEMA_VERSION", "SqliteReadingsStore"]

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0

_READING_COLUMNS = ("barrel_id", "wine_type", *NUMERIC_FIELDS, "seq", "updated_at")
_PREDICTION_COLUMNS = (
    "barrel_id",
    "predicted_quality",
    "model_version",
    "reading_seq",
    "scored_at",
)

_DDL = [
    "CREATE TABLE IF NOT EXISTS readings (\n"
    "  barrel_id TEXT PRIMARY KEY,\n"
    "  wine_type TEXT NOT NULL CHECK (wine_type IN ('red', 'white')),\n"
    + "".join(f"  {name} REAL NOT NULL,\n" for name in NUMERIC_FIELDS)
    + "  seq INTEGER NOT NULL,\n"
    "  updated_at TEXT NOT NULL\n"
    ")",
    # UNIQUE: the database itself refuses a reused seq; the index serves changed_since/max_seq.
    "CREATE UNIQUE INDEX IF NOT EXISTS readings_seq ON readings (seq)",
    # Append-only: every reading ever written, superseded ones included (seq is the key).
    "CREATE TABLE IF NOT EXISTS reading_history (\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  barrel_id TEXT NOT NULL,\n"
    "  wine_type TEXT NOT NULL,\n"
    + "".join(f"  {name} REAL NOT NULL,\n" for name in NUMERIC_FIELDS)
    + "  updated_at TEXT NOT NULL\n"
    ")",
    # The latest prediction per barrel. WITHOUT ROWID: one b-tree keyed by barrel_id.
    "CREATE TABLE IF NOT EXISTS predictions (\n"
    "  barrel_id TEXT PRIMARY KEY REFERENCES readings (barrel_id),\n"
    "  predicted_quality REAL NOT NULL,\n"
    "  model_version INTEGER NOT NULL,\n"
    "  reading_seq INTEGER NOT NULL,\n"
    "  scored_at TEXT NOT NULL\n"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0)",
    f"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION})",
    # temperature_history's time window (IF NOT EXISTS: files made before it get it too).
    "CREATE INDEX IF NOT EXISTS reading_history_updated_at ON reading_history (updated_at)",
]

_UPSERT = (
    f"INSERT INTO readings ({', '.join(_READING_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _READING_COLUMNS)}) "
    "ON CONFLICT (barrel_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _READING_COLUMNS[1:])
    # Never go backwards (cannot happen with in-transaction allocation; kept as a guard).
    + " WHERE excluded.seq > readings.seq"
)
_INSERT_HISTORY = (
    f"INSERT INTO reading_history ({', '.join(_READING_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _READING_COLUMNS)})"
)
_SELECT_READING = f"SELECT {', '.join(_READING_COLUMNS)} FROM readings"
_SELECT_PREDICTION = f"SELECT {', '.join(_PREDICTION_COLUMNS)} FROM predictions"
_UPSERT_PREDICTION = (
    f"INSERT INTO predictions ({', '.join(_PREDICTION_COLUMNS)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (barrel_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PREDICTION_COLUMNS[1:])
    # A newer reading's score is never replaced by an older one's; the same reading re-scored
    # (a new model) is.
    + " WHERE excluded.reading_seq >= predictions.reading_seq"
)


class SqliteReadingsStore(ReadingsStore):
    """Readings in one SQLite file (or ``:memory:``); safe for several writing processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) so the write lock
        # is taken before the counter is read. One connection per store, shared by threads.
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Off by default in SQLite; predictions.barrel_id must name a stored barrel.
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._schema_checked = False
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")

    def __repr__(self) -> str:
        return f"SqliteReadingsStore({self.path!r})"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def create(self) -> None:
        with self._write() as conn:
            for statement in _DDL:
                conn.execute(statement)
            _migrate(conn)
        self._schema_checked = True

    def _ensure_schema(self) -> None:
        """Create/migrate on first use of the predictions table: a reader that opens a
        schema-1 file without ``create()`` (the prediction service does) still works."""
        if self._schema_checked:
            return
        found = self._query("SELECT 1 FROM sqlite_master WHERE name = 'predictions'")
        if not found:
            self.create()
        self._schema_checked = True

    def put(self, readings: Sequence[Reading | Mapping[str, Any]]) -> list[int]:
        parsed = validate_batch(readings)
        if not parsed:
            return []
        now = utc_now()
        with self._write() as conn:
            (last,) = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            seqs = list(range(last + 1, last + 1 + len(parsed)))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (seqs[-1],))
            rows = [
                (r.barrel_id, r.wine_type, *(getattr(r, n) for n in NUMERIC_FIELDS), s, now)
                for r, s in zip(parsed, seqs, strict=True)
            ]
            conn.executemany(_INSERT_HISTORY, rows)
            conn.executemany(_UPSERT, rows)
        return seqs

    def get(self, barrel_id: str) -> Reading | None:
        self._ensure_schema()  # a store with no tables yet holds no barrel (None, not an error)
        rows = self._query(f"{_SELECT_READING} WHERE barrel_id = ?", (barrel_id,))
        return _reading(rows[0]) if rows else None

    def all(self) -> list[Reading]:
        return [_reading(row) for row in self._query(f"{_SELECT_READING} ORDER BY barrel_id")]

    def changed_since(self, seq: int, limit: int | None = None) -> list[Reading]:
        _check_cursor(seq, limit)
        rows = self._query(
            f"{_SELECT_READING} WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, -1 if limit is None else limit),
        )
        return [_reading(row) for row in rows]

    def history_frame(self, after: int, upto: int) -> pd.DataFrame:
        """One range read on the history table's primary key."""
        _check_cursor(after, None)
        _check_cursor(upto, None)
        rows = self._query(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM reading_history "
            "WHERE seq > ? AND seq <= ? ORDER BY seq",
            (after, upto),
        )
        return _history_frame(rows)

    def max_seq(self) -> int:
        (value,) = self._query("SELECT COALESCE(MAX(seq), 0) FROM readings")[0]
        return int(value)

    def _write_predictions(self, columns: PredictionColumns) -> int:
        self._ensure_schema()
        with self._write() as conn:
            before = conn.total_changes
            self._upsert_predictions(conn, columns)
            return conn.total_changes - before

    def _upsert_predictions(self, conn: sqlite3.Connection, columns: PredictionColumns) -> None:
        """One statement for the rows (a million narrow upserts take ~2 s); an unknown barrel
        fails the foreign key and is named (the caller's transaction then rolls back)."""
        try:
            conn.executemany(_UPSERT_PREDICTION, columns.rows())
        except sqlite3.IntegrityError as exc:
            missing = self._unknown_barrels(conn, set(columns.barrel_id))
            if missing:
                raise KeyError(f"no reading for barrels {missing[:20]}; nothing written") from exc
            raise

    @staticmethod
    def _unknown_barrels(conn: sqlite3.Connection, barrel_ids: set[str]) -> list[str]:
        ids = sorted(barrel_ids)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                row[0]
                for row in conn.execute(
                    f"SELECT barrel_id FROM readings WHERE barrel_id IN ({marks})", chunk
                )
            )
        return [b for b in ids if b not in known]

    def get_prediction(self, barrel_id: str) -> Prediction | None:
        self._ensure_schema()
        rows = self._query(f"{_SELECT_PREDICTION} WHERE barrel_id = ?", (barrel_id,))
        return _prediction(rows[0]) if rows else None

    def predictions(self) -> list[Prediction]:
        self._ensure_schema()
        return [_prediction(row) for row in self._query(f"{_SELECT_PREDICTION} ORDER BY barrel_id")]

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM readings")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def temperature_history(self, start: str | datetime, end: str | datetime) -> pd.DataFrame:
        """One range read on the ``reading_history_updated_at`` index (``create`` adds it to
        files made before it existed)."""
        rows = self._query(
            "SELECT barrel_id, updated_at, temperature_c FROM reading_history "
            "WHERE updated_at >= ? AND updated_at < ? ORDER BY updated_at, seq",
            _time_window(start, end),
        )
        return _temperature_frame(rows)

    def history_day(self, day: date) -> pd.DataFrame:
        """One range read on the ``updated_at`` index."""
        rows = self._query(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM reading_history "
            "WHERE updated_at >= ? AND updated_at < ? ORDER BY seq",
            _day_window(day),
        )
        return _history_frame(rows)

    def oldest_history_day(self) -> date | None:
        (oldest,) = self._query("SELECT MIN(updated_at) FROM reading_history")[0]
        return datetime.fromisoformat(oldest).astimezone(UTC).date() if oldest else None

    def delete_history(self, seq_ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        """One short write transaction per batch, so writers wait at most one batch."""
        deleted = 0
        for group in _chunks(sorted(seq_ranges), batch_size):
            with self._write() as conn:
                for lo, hi in group:
                    cursor = conn.execute(
                        "DELETE FROM reading_history WHERE seq >= ? AND seq <= ?", (lo, hi)
                    )
                    deleted += cursor.rowcount
        return deleted


def _reading(row: Sequence[Any]) -> Reading:
    return Reading(**dict(zip(_READING_COLUMNS, row, strict=True)))


def _prediction(row: Sequence[Any]) -> Prediction:
    return Prediction(**dict(zip(_PREDICTION_COLUMNS, row, strict=True)))


def _migrate(conn: sqlite3.Connection) -> None:
    """Schema 1 → 2 inside ``create``'s transaction: copy each barrel's prediction from the
    ``readings`` columns into ``predictions``, then drop those columns (one copy of each
    prediction; a file is migrated once, by whichever process opens it first)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(readings)")}
    if "predicted_quality" in columns:
        conn.execute(
            f"INSERT OR IGNORE INTO predictions ({', '.join(_PREDICTION_COLUMNS)}) "
            f"SELECT {', '.join(_PREDICTION_COLUMNS)} FROM readings "
            "WHERE predicted_quality IS NOT NULL"
        )
        for column in _PREDICTION_COLUMNS[1:]:  # schema 1's names for them
            conn.execute(f"ALTER TABLE readings DROP COLUMN {column}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
