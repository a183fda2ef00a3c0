"""The scoring ledger: what the barrel scorer did with every reading, and where it stands.

One row per reading seq, whatever became of it: ``scored`` (the champion's quality, P(good) and
the 90 % interval, the model version), ``quarantined`` (its reason; not scored) or ``lost`` (a
seq the counter handed out whose reading never appeared, given up after a while). The ledger is
what makes the scorer exactly-once and auditable:

* a row is keyed by seq, so a replay after a crash adds nothing (SQLite keeps the first
  row, DynamoDB rewrites the same item);
* ``commit`` stores the rows, the newest score per barrel back in the readings store, and the
  scorer's position (``cursor``: every seq up to it is in the ledger) together. On SQLite that
  is one transaction in the readings file; on DynamoDB (no transaction this size) the rows
  and write-backs are idempotent and the position is written only after them, so a crash
  between them is repaired by doing the batch again;
* each row carries the reading's UTC ``day`` (its ``updated_at`` date), so a day's
  predictions, quarantines and the check that every write of the day is accounted for are
  one indexed read (the daily history assets, ``history.py``).

Layout: SQLite ``scoring_log`` (+ the ``scorer_cursor`` key of the readings file's ``meta``);
DynamoDB ``<table>-scores`` (HASH ``day``, RANGE ``seq``) + the ``scorer-cursor`` item of
``<table>-sequence``.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from wine_assets.readings.store import ReadingsStore

__all__ = ["OUTCOMES", "LedgerRow", "Rows", "ScoreLedger", "frame", "open_ledger"]

OUTCOMES = ("scored", "quarantined", "lost")
#: Concurrent DynamoDB requests of one commit (DynamoDB calls are latency-bound).
WORKERS = 32
CURSOR_KEY = "scorer_cursor"


@dataclass(frozen=True)
class LedgerRow:
    """What became of one reading (``seq``)."""

    seq: int
    barrel_id: str
    wine_type: str
    day: str
    reading_updated_at: str
    outcome: str
    scored_at: str
    quarantine_reason: str | None = None
    predicted_quality: float | None = None
    p_good: float | None = None
    quality_low_90: float | None = None
    quality_high_90: float | None = None
    model_version: int | None = None


COLUMNS = tuple(f.name for f in fields(LedgerRow))
_FLOATS = ("predicted_quality", "p_good", "quality_low_90", "quality_high_90")
#: A barrel's score written back to the store, in the store's prediction order.
_WRITE_BACK = ("barrel_id", "predicted_quality", "model_version", "seq", "scored_at")


#: What ``commit`` takes: a frame of ``COLUMNS`` (the scorer's), or a few rows.
Rows = pd.DataFrame | Mapping[str, Any] | Sequence[LedgerRow] | Sequence[Mapping[str, Any]]


def frame(rows: Rows) -> pd.DataFrame:
    """Ledger rows as a typed frame (``COLUMNS``), ordered by seq: from a frame or a mapping
    of columns (a missing optional column is all missing), or from rows (``LedgerRow`` or
    mappings). NaN and None both mean no value."""
    if isinstance(rows, pd.DataFrame | Mapping):
        df = pd.DataFrame({c: rows.get(c) for c in COLUMNS})
    else:
        records = [asdict(r) if isinstance(r, LedgerRow) else r for r in rows]
        df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df = df.astype(
        {
            "seq": "int64",
            **{c: "float64" for c in _FLOATS},
            "model_version": "Int64",
            **{c: "string" for c in COLUMNS if c not in ("seq", "model_version", *_FLOATS)},
        }
    )
    if df["seq"].is_monotonic_increasing:
        return df.reset_index(drop=True)
    return df.sort_values("seq", ignore_index=True)


def _values(df: pd.DataFrame, columns: Sequence[str]) -> list[list[Any]]:
    """The columns as lists of plain Python values, None for a missing one (what sqlite3
    and the DynamoDB items take; numpy scalars and NaN are neither)."""
    return [df[c].to_numpy(dtype=object, na_value=None).tolist() for c in columns]


def _newest_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """Per barrel, its scored row with the highest seq (``rows`` ordered by seq)."""
    scored = rows[rows["outcome"] == "scored"]
    return scored.drop_duplicates("barrel_id", keep="last")


class ScoreLedger(ABC):
    """The scorer's ledger beside a readings store (``open_ledger``)."""

    def __init__(self, store: ReadingsStore) -> None:
        self.store = store

    @abstractmethod
    def create(self) -> None:
        """Create the ledger's table (idempotent)."""

    @abstractmethod
    def cursor(self) -> int:
        """Highest seq below which every seq is in the ledger; 0 at first."""

    @abstractmethod
    def commit(self, rows: Rows, cursor: int) -> int:
        """Record ``rows`` (``frame``'s columns; seqs already recorded are left as they are),
        write each barrel's newest score back to the store, and move the cursor up to
        ``cursor`` (never down). The number of rows newly recorded."""

    @abstractmethod
    def day(self, day: str) -> pd.DataFrame:
        """Every row of one UTC day (``YYYY-MM-DD``), ordered by seq (``frame``'s columns)."""

    @abstractmethod
    def rows(self, after: int, upto: int) -> pd.DataFrame:
        """Every row with ``after < seq <= upto`` (tests and benchmarks)."""

    @abstractmethod
    def has_day(self, day: str) -> bool:
        """Whether the ledger holds a row of ``day`` (one indexed read of one row)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the ledger opened itself."""

    # -- retention (wine_assets.retention archives a day, then prunes it) ---------------

    @abstractmethod
    def oldest_day(self) -> date | None:
        """The oldest UTC day that may still hold rows; None when there are none."""

    @abstractmethod
    def delete_seqs(self, day: str, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        """Delete the day's rows with a seq in one of the inclusive ``(lo, hi)`` ranges,
        ``batch_size`` seqs per transaction/request; the number of seqs deleted. Only the
        retention code calls this, with ranges it has archived."""


class SqliteScoreLedger(ScoreLedger):
    """``scoring_log`` in the readings file; ``commit`` is one transaction with the
    prediction write-back and the cursor."""

    def __init__(self, store: ReadingsStore, path: str) -> None:
        super().__init__(store)
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 30000")
        # A catch-up commits pages of many thousand rows: room for their pages in memory
        # (SQLite's 2 MB default spills them to the WAL mid-transaction, then reads them
        # back), and WAL's NORMAL sync (a commit survives a killed process; a power cut
        # may undo the last ones, ledger, write-back and cursor together, which the scorer
        # then does again).
        self._conn.execute("PRAGMA cache_size = -65536")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._lock = threading.Lock()

    def create(self) -> None:
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS scoring_log (\n"
                "  seq INTEGER PRIMARY KEY, barrel_id TEXT NOT NULL, wine_type TEXT NOT NULL,\n"
                "  day TEXT NOT NULL, reading_updated_at TEXT NOT NULL,\n"
                "  outcome TEXT NOT NULL CHECK (outcome IN ('scored','quarantined','lost')),\n"
                "  scored_at TEXT NOT NULL, quarantine_reason TEXT, predicted_quality REAL,\n"
                "  p_good REAL, quality_low_90 REAL, quality_high_90 REAL, model_version INTEGER\n"
                ")"
            )
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS scoring_log_day ON scoring_log (day, seq)"
            )

    def cursor(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)
            ).fetchone()
        return int(row[0]) if row else 0

    def commit(self, rows: Rows, cursor: int) -> int:
        from wine_assets.readings.sqlite_store import _UPSERT_PREDICTION

        rows = frame(rows)
        marks = ", ".join("?" for _ in COLUMNS)
        values = _values(rows, COLUMNS)
        newest = _values(_newest_scores(rows), _WRITE_BACK)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(
                    f"INSERT OR IGNORE INTO scoring_log ({', '.join(COLUMNS)}) VALUES ({marks})",
                    zip(*values, strict=True),
                )
                added = conn.total_changes - before
                conn.executemany(_UPSERT_PREDICTION, zip(*newest, strict=True))
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                    "SET value = MAX(value, excluded.value)",
                    (CURSOR_KEY, cursor),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return added

    def _select(self, where: str, params: Sequence[Any]) -> pd.DataFrame:
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM scoring_log WHERE {where} ORDER BY seq",
                params,
            )
            rows = [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
        return frame(rows)

    def day(self, day: str) -> pd.DataFrame:
        return self._select("day = ?", (day,))

    def rows(self, after: int, upto: int) -> pd.DataFrame:
        return self._select("seq > ? AND seq <= ?", (after, upto))

    def has_day(self, day: str) -> bool:
        with self._lock:
            found = self._conn.execute(
                "SELECT 1 FROM scoring_log WHERE day = ? LIMIT 1", (day,)
            ).fetchone()
        return found is not None

    def oldest_day(self) -> date | None:
        with self._lock:
            (oldest,) = self._conn.execute("SELECT MIN(day) FROM scoring_log").fetchone()
        return date.fromisoformat(oldest) if oldest else None

    def delete_seqs(self, day: str, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        from wine_assets.readings.store import _chunks

        deleted = 0
        for group in _chunks(sorted(ranges), batch_size):
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for lo, hi in group:
                        deleted += self._conn.execute(
                            "DELETE FROM scoring_log WHERE day = ? AND seq >= ? AND seq <= ?",
                            (day, lo, hi),
                        ).rowcount
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
        return deleted

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class DynamoDbScoreLedger(ScoreLedger):
    """``<table>-scores`` (HASH day, RANGE seq): a replayed row rewrites its own item, never
    adds one; write-backs are conditional on ``reading_seq``; the cursor item only moves up."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._client = store._client  # the store's client: one connection pool
        self.table = f"{store.table}-scores"
        self.cursor_table = store.sequence_table

    def create(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "day", "AttributeType": "S"},
                    {"AttributeName": "seq", "AttributeType": "N"},
                ],
                KeySchema=[
                    {"AttributeName": "day", "KeyType": "HASH"},
                    {"AttributeName": "seq", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self._client.get_waiter("table_exists").wait(TableName=self.table)
        self.store._enable_ttl(self.table)

    def cursor(self) -> int:
        item = self._client.get_item(
            TableName=self.cursor_table,
            Key={"sequence_name": {"S": CURSOR_KEY}},
            ConsistentRead=True,
        ).get("Item")
        return int(item["upto"]["N"]) if item else 0

    def _item(self, values: Sequence[Any]) -> dict[str, Any]:
        """A ledger item from one row's ``COLUMNS`` values (None: no attribute)."""
        from wine_assets.readings.dynamodb_store import TTL_ATTRIBUTE

        item: dict[str, Any] = {}
        for name, value in zip(COLUMNS, values, strict=True):
            if value is None:
                continue
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            item[name] = {"N": repr(value)} if is_number else {"S": str(value)}
        # Expires with the reading's history item (see dynamodb_store's TTL).
        item[TTL_ATTRIBUTE] = {"N": str(self.store.expires_at(item["reading_updated_at"]["S"]))}
        return {"PutRequest": {"Item": item}}

    def commit(self, rows: Rows, cursor: int) -> int:
        """The write-backs and the ledger rows are independent idempotent requests, sent
        together (DynamoDB calls are latency-bound), the write-backs first (what a reader of
        the store waits for); the cursor moves only once all of them are done. A ledger item
        is keyed by its day and seq: writing it again after a crash rewrites that one item,
        never adds one."""
        from botocore.exceptions import ClientError

        from wine_assets.readings import dynamodb_store
        from wine_assets.readings.store import validate_prediction_columns

        rows = frame(rows)
        newest = _newest_scores(rows)
        for version, part in newest.groupby("model_version"):
            validate_prediction_columns(  # the store's own checks, before any write
                part["barrel_id"],
                part["predicted_quality"],
                part["seq"],
                int(version),
                part["scored_at"],
            )
        items = [self._item(values) for values in zip(*_values(rows, COLUMNS), strict=True)]
        scores = list(zip(*_values(newest, _WRITE_BACK), strict=True))
        if items:
            step = dynamodb_store.BATCH_ITEMS
            batches = [items[i : i + step] for i in range(0, len(items), step)]
            with ThreadPoolExecutor(min(WORKERS, len(batches) + len(scores))) as pool:
                writes = [pool.submit(self.store.write_prediction, *score) for score in scores]
                puts = [
                    pool.submit(dynamodb_store.batch_write, self._client, self.table, b)
                    for b in batches
                ]
                for future in writes + puts:
                    future.result()
        try:
            self._client.update_item(
                TableName=self.cursor_table,
                Key={"sequence_name": {"S": CURSOR_KEY}},
                UpdateExpression="SET upto = :c",
                ConditionExpression="attribute_not_exists(upto) OR upto < :c",
                ExpressionAttributeValues={":c": {"N": str(int(cursor))}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        return len(rows)

    def _query(self, **kwargs: Any) -> pd.DataFrame:
        pages = self._client.get_paginator("query").paginate(
            TableName=self.table, ConsistentRead=True, **kwargs
        )
        rows = []
        for page in pages:
            for item in page["Items"]:
                rows.append(
                    {
                        k: (float(v["N"]) if "N" in v else v["S"])
                        for k, v in item.items()
                        if k in COLUMNS
                    }
                )
        return frame(rows)

    def day(self, day: str) -> pd.DataFrame:
        return self._query(
            KeyConditionExpression="#d = :d",
            ExpressionAttributeNames={"#d": "day"},
            ExpressionAttributeValues={":d": {"S": day}},
        )

    def rows(self, after: int, upto: int) -> pd.DataFrame:
        """A Scan filtered on seq (tests and benchmarks only: the ledger is read by day)."""
        pages = self._client.get_paginator("scan").paginate(
            TableName=self.table,
            ConsistentRead=True,
            FilterExpression="seq > :a AND seq <= :u",
            ExpressionAttributeValues={":a": {"N": str(after)}, ":u": {"N": str(upto)}},
        )
        rows = [
            {k: (float(v["N"]) if "N" in v else v["S"]) for k, v in item.items() if k in COLUMNS}
            for page in pages
            for item in page["Items"]
        ]
        return frame(rows)

    def has_day(self, day: str) -> bool:
        response = self._client.query(
            TableName=self.table,
            KeyConditionExpression="#d = :d",
            ExpressionAttributeNames={"#d": "day"},
            ExpressionAttributeValues={":d": {"S": day}},
            Limit=1,
        )
        return bool(response["Items"])

    def oldest_day(self) -> date | None:
        """The table is keyed by day, so there is no cheap minimum: the days between the
        oldest a TTL can leave (its retention plus the grace) and today are probed, oldest
        first (one Limit-1 Query each)."""
        from wine_assets.readings.dynamodb_store import TTL_GRACE_DAYS

        today = datetime.now(UTC).date()
        span = self.store.history_retention_days + TTL_GRACE_DAYS + 2
        for back in range(span, -1, -1):
            day = today - timedelta(days=back)
            if self.has_day(day.isoformat()):
                return day
        return None

    def delete_seqs(self, day: str, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        from wine_assets.readings import dynamodb_store
        from wine_assets.readings.store import _chunks

        deleted = 0
        for group in _chunks(sorted(ranges), batch_size):
            keys = [
                {"DeleteRequest": {"Key": {"day": {"S": day}, "seq": {"N": str(seq)}}}}
                for lo, hi in group
                for seq in range(lo, hi + 1)
            ]
            dynamodb_store.batch_write(self._client, self.table, keys)
            deleted += len(keys)
        return deleted

    def close(self) -> None:
        """The client belongs to the store (closed with it)."""


def open_ledger(store: ReadingsStore) -> ScoreLedger:
    """The ledger beside ``store`` (created if missing)."""
    from wine_assets.readings.dynamodb_store import DynamoDbReadingsStore
    from wine_assets.readings.sqlite_store import SqliteReadingsStore

    if isinstance(store, SqliteReadingsStore):
        if store.path == ":memory:":
            raise ValueError("the scoring ledger needs a readings file, not sqlite:///:memory:")
        ledger: ScoreLedger = SqliteScoreLedger(store, store.path)
    elif isinstance(store, DynamoDbReadingsStore):
        ledger = DynamoDbScoreLedger(store)
    else:
        raise TypeError(f"no scoring ledger for {type(store).__name__}")
    ledger.create()
    return ledger
