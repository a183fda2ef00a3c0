"""The prediction log: every answered prediction, kept before its answer is sent.

The original service pushed predictions through Kafka into PostgreSQL; here the service writes them
straight to the database in the request's own transaction, so "answered" implies "logged".
Two backends share one table layout: PostgreSQL (``postgresql://…``, production, the
``PREDICTION_LOG_DSN`` setting) and SQLite (``sqlite:///path.db``, the embedded default).

``position`` is an increasing row id: the drift sensor's cursor. With several service
processes, PostgreSQL hands out ids at insert time and commits can land out of order by a few
milliseconds, so the sensor only moves its cursor over rows logged before a settling delay
(``since(position, before=...)``): a row still committing then has a lower ``logged_at``
than the delay and is counted on the next tick instead of being skipped.
"""

import contextlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
from pydantic import Field

from wine_assets.features import FEATURES

TABLE = "prediction_log"
#: Columns in storage order (``position`` is assigned by the database).
COLUMNS: tuple[str, ...] = (
    "request_id",
    "item",
    "endpoint",
    "barrel_id",
    "wine_type",
    *FEATURES,
    "predicted_quality",
    "good",
    "model_version",
    "logged_at",
)


_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class LogUnavailableError(RuntimeError):
    """The log could not be written: the request must fail, nothing is answered."""


@dataclass(frozen=True)
class LoggedPrediction:
    """One answered prediction: inputs, output, model version, time and request id."""

    request_id: str
    item: int  # index of the wine within its request (0 for /predict)
    endpoint: str  # "predict", "batch" or "barrel"
    barrel_id: str | None
    wine_type: str
    features: tuple[float, ...]  # in FEATURES order
    predicted_quality: float
    good: bool
    model_version: int
    logged_at: datetime  # UTC

    def row(self) -> tuple:
        return (
            self.request_id,
            self.item,
            self.endpoint,
            self.barrel_id,
            self.wine_type,
            *self.features,
            self.predicted_quality,
            self.good,
            self.model_version,
            self.logged_at,
        )


@dataclass(frozen=True)
class NewRows:
    """Rows after a cursor: how many, the highest position, and their time span."""

    count: int
    max_position: int
    oldest: datetime | None
    newest: datetime | None


def _iso(ts: datetime) -> str:
    """SQLite keeps timestamps as fixed-width UTC text, so text order is time order."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class PredictionLog(ABC):
    """Append-only log of predictions; ``write`` commits before it returns."""

    @abstractmethod
    def create(self) -> None:
        """Create the table and indexes if missing (idempotent)."""

    @abstractmethod
    def write(self, rows: Sequence[LoggedPrediction]) -> None:
        """Insert ``rows`` in one committed transaction or raise LogUnavailableError."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence) -> list[tuple]:
        """Run a read-only query with ``?`` placeholders."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def max_position(self) -> int:
        """The highest position written so far (0 when empty): the sensor's cursor."""
        return int(self._query(f"SELECT COALESCE(MAX(position), 0) FROM {TABLE}", [])[0][0])

    def count(self) -> int:
        return int(self._query(f"SELECT COUNT(*) FROM {TABLE}", [])[0][0])

    def since(self, position: int, before: datetime | None = None) -> NewRows:
        """What was logged after ``position`` (the sensor's cursor), only rows logged before
        ``before`` when given."""
        n, top, oldest, newest = self._query(
            f"SELECT COUNT(*), COALESCE(MAX(position), 0), MIN(logged_at), MAX(logged_at) "
            f"FROM {TABLE} WHERE position > ? AND logged_at < ?",
            [position, self._ts(before or _FAR_FUTURE)],
        )[0]
        return NewRows(int(n), int(top), _as_datetime(oldest), _as_datetime(newest))

    def hours_since(self, position: int, upto: int) -> list[datetime]:
        """The UTC hours holding rows in ``(position, upto]``: the report windows to refresh."""
        rows = self._query(
            f"SELECT DISTINCT {self._hour_expr} FROM {TABLE} "
            "WHERE position > ? AND position <= ? ORDER BY 1",
            [position, upto],
        )
        return [_as_hour(value) for (value,) in rows]

    #: SQL truncating ``logged_at`` to its UTC hour (backend-specific).
    _hour_expr = ""

    def window(
        self, start: datetime, end: datetime, positions: tuple[int, int] | None = None
    ) -> pd.DataFrame:
        """Every row logged in ``[start, end)``, ordered by position; with ``positions =
        (after, upto)`` only those in ``(after, upto]`` (the rows new since a report)."""
        after, upto = positions if positions is not None else (-1, 2**62)
        rows = self._query(
            f"SELECT position, {', '.join(COLUMNS)} FROM {TABLE} "
            "WHERE logged_at >= ? AND logged_at < ? AND position > ? AND position <= ? "
            "ORDER BY position",
            [self._ts(start), self._ts(end), after, upto],
        )
        frame = pd.DataFrame(rows, columns=["position", *COLUMNS])
        frame[list(FEATURES)] = frame[list(FEATURES)].astype("float64")
        frame["predicted_quality"] = frame["predicted_quality"].astype("float64")
        frame["good"] = frame["good"].astype(bool)
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
        return frame

    def _ts(self, ts: datetime) -> object:
        return ts

    # -- retention (wine_assets.retention archives a day, then prunes it) ---------------

    def _execute(self, sql: str, params: Sequence) -> int:
        """Run one write statement (``?`` placeholders) in its own committed transaction;
        the rows it changed."""
        raise NotImplementedError(f"{type(self).__name__} has no retention")

    def oldest_day(self) -> date | None:
        """The UTC day of the oldest logged row; None when the log is empty."""
        (oldest,) = self._query(f"SELECT MIN(logged_at) FROM {TABLE}", [])[0]
        moment = _as_datetime(oldest)
        return moment.astimezone(UTC).date() if moment else None

    def delete_positions(self, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        """Delete the rows with a position in one of the inclusive ``(lo, hi)`` ranges, at
        most ``batch_size`` positions per transaction, never the newest row (its position
        is where ``max_position`` resumes); the number deleted. Only the retention code
        calls this, with ranges it has archived."""
        from wine_assets.readings.store import _chunks

        deleted = 0
        for group in _chunks(sorted(ranges), batch_size):
            where = " OR ".join("(position >= ? AND position <= ?)" for _ in group)
            deleted += self._execute(
                f"DELETE FROM {TABLE} WHERE ({where}) "
                f"AND position < (SELECT MAX(position) FROM {TABLE})",
                [bound for pair in group for bound in pair],
            )
        return deleted

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_hour(value: object) -> datetime:
    """An hour from either backend: a naive UTC timestamp or ``YYYY-MM-DDTHH`` text."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.strptime(str(value), "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


_SQLITE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n"
    "  position INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  request_id TEXT NOT NULL,\n  item INTEGER NOT NULL,\n  endpoint TEXT NOT NULL,\n"
    "  barrel_id TEXT,\n  wine_type TEXT NOT NULL,\n"
    + "".join(f"  {f} REAL NOT NULL,\n" for f in FEATURES)
    + "  predicted_quality REAL NOT NULL,\n  good INTEGER NOT NULL,\n"
    "  model_version INTEGER NOT NULL,\n  logged_at TEXT NOT NULL,\n"
    "  UNIQUE (request_id, item)\n)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {TABLE} (logged_at)",
)


class SqlitePredictionLog(PredictionLog):
    """Embedded default: one file, WAL so the sensor reads while the service writes."""

    _hour_expr = "substr(logged_at, 1, 13)"  # fixed-width UTC text (see _iso)

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        self._lock = threading.Lock()
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def create(self) -> None:
        with self._lock, self._conn:
            for statement in _SQLITE_DDL:
                self._conn.execute(statement)

    def write(self, rows: Sequence[LoggedPrediction]) -> None:
        marks = ", ".join("?" * len(COLUMNS))
        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})"
        data = [(*r.row()[:-1], _iso(r.logged_at)) for r in rows]
        try:
            with self._lock, self._conn:  # commits, or rolls back on error
                self._conn.executemany(sql, data)
        except sqlite3.Error as exc:
            raise LogUnavailableError(f"prediction log write failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, list(params)).fetchall()

    def _ts(self, ts: datetime) -> object:
        return _iso(ts)

    def _execute(self, sql: str, params: Sequence) -> int:
        with self._lock, self._conn:  # commits, or rolls back on error
            return self._conn.execute(sql, list(params)).rowcount

    def close(self) -> None:
        self._conn.close()


_PG_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n"
    "  position BIGSERIAL PRIMARY KEY,\n"
    "  request_id TEXT NOT NULL,\n  item INTEGER NOT NULL,\n  endpoint TEXT NOT NULL,\n"
    "  barrel_id TEXT,\n  wine_type TEXT NOT NULL,\n"
    + "".join(f"  {f} DOUBLE PRECISION NOT NULL,\n" for f in FEATURES)
    + "  predicted_quality DOUBLE PRECISION NOT NULL,\n  good BOOLEAN NOT NULL,\n"
    "  model_version INTEGER NOT NULL,\n  logged_at TIMESTAMPTZ NOT NULL,\n"
    "  UNIQUE (request_id, item)\n)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_logged_at ON {TABLE} (logged_at)",
)


class PostgresPredictionLog(PredictionLog):
    """Production backend. One connection, reopened after a failure (server restart)."""

    _hour_expr = "date_trunc('hour', logged_at AT TIME ZONE 'UTC')"

    def __init__(self, dsn: str, connect_timeout_s: int = 5) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout_s
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self):
        import psycopg2

        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._dsn, connect_timeout=self._timeout)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                self._conn.close()
        self._conn = None

    def create(self) -> None:
        with self._lock:
            conn = self._connection()
            with conn, conn.cursor() as cur:
                for statement in _PG_DDL:
                    cur.execute(statement)

    @contextmanager
    def _cursor(self) -> Iterator:
        """A cursor in one transaction (``with conn`` commits or rolls back), under the lock; a
        connection that raised is dropped, and the next call opens a new one."""
        import psycopg2

        with self._lock:
            try:
                conn = self._connection()
                with conn, conn.cursor() as cur:
                    yield cur
            except psycopg2.Error:
                self._drop()
                raise

    def write(self, rows: Sequence[LoggedPrediction]) -> None:
        import psycopg2
        from psycopg2.extras import execute_values

        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES %s"
        try:
            with self._cursor() as cur:
                execute_values(cur, sql, [r.row() for r in rows], page_size=1000)
        except psycopg2.Error as exc:
            raise LogUnavailableError(f"prediction log write failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence) -> list[tuple]:
        with self._cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return cur.fetchall()

    def _execute(self, sql: str, params: Sequence) -> int:
        with self._cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._drop()


def open_log(dsn: str) -> PredictionLog:
    """``sqlite:///abs/path.db`` / ``sqlite:///:memory:`` or ``postgresql://user:pw@host/db``."""
    scheme = urlsplit(dsn).scheme.lower()
    if scheme == "sqlite":
        if not dsn.startswith("sqlite:///"):
            raise ValueError(f"expected sqlite:///ABSOLUTE/PATH.db, got {dsn!r}")
        path = dsn[len("sqlite://") :]
        return SqlitePredictionLog(":memory:" if path == "/:memory:" else path)
    if scheme in {"postgresql", "postgres"}:
        return PostgresPredictionLog(dsn)
    raise ValueError(f"unsupported prediction log DSN {dsn!r}: sqlite:///… or postgresql://…")


class PredictionLogResource(dg.ConfigurableResource):
    """PREDICTION_LOG_DSN: ``postgresql://…`` in production, ``sqlite:///…`` embedded."""

    dsn: str = Field(description="Where every answered prediction is kept.")

    @contextmanager
    def open(self) -> Iterator[PredictionLog]:
        log = open_log(self.dsn)
        try:
            log.create()
            yield log
        finally:
            log.close()
