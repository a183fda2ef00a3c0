"""Retention with nothing lost: archive a closed UTC day to parquet, verify, then prune.

Three hot tables grow without end: the readings store's history (every reading, keyed by
``seq``), the barrel predictions (the scorer's ledger: what became of every reading, keyed by
``seq``) and the prediction log (every answered prediction, keyed by ``position``). Each is a
:class:`HotTable` here. For a day:

1. ``archive_day`` reads the day's hot rows, merges them with the day's archive file if one
   exists (rows already pruned from the hot table stay; a key is kept once), writes
   ``archive/<table>/day=YYYY-MM-DD/<table>.parquet`` in one atomic write (local: temporary
   file + rename; S3: one PUT) and re-reads it: the row count, the key range and every hot key
   must be there, no key twice. Nothing is written when the file already holds every hot row.
2. ``prune_day`` runs ``archive_day`` first, then deletes from the hot table only the keys the
   verified archive holds, in batches. A crash anywhere (before, during or after the deletes)
   leaves each row in the hot table, the archive or both; running it again finishes the job
   without writing a row twice.

``retain`` prunes every day older than the retention (``READINGS_RETENTION_DAYS`` for readings
and barrel predictions, ``PREDICTION_LOG_RETENTION_DAYS``); the current reading of each barrel
is not in the history table and is never pruned, nor is the prediction log's newest row (its
position is the cursor the drift sensor resumes from), nor a reading the scorer has not yet
passed (``readings_table(scored_upto=…)``: an outage of the scorer longer than the retention
delays the prune instead of dropping readings it still has to score). ``logged_window``
reads an hour of the prediction log from the hot table and the archive together, so drift
reports of pruned hours still see every row.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from platform_core.storage import PlatformStorage
from wine_assets.monitoring.prediction_log import PredictionLog
from wine_assets.quality.ledger import ScoreLedger
from wine_assets.readings.store import ReadingsStore, key_ranges

ARCHIVE_PREFIX = "archive"
#: Keys per delete transaction/request group.
DEFAULT_BATCH_SIZE = 5_000


class ArchiveMismatchError(RuntimeError):
    """The archive file read back does not hold what was written: nothing is pruned."""


@dataclass(frozen=True)
class HotTable:
    """A table of the hot store as retention sees it: rows of a UTC day keyed by an
    increasing integer, the oldest day, and deletion of archived key ranges."""

    name: str
    key: str
    read_day: Callable[[date], pd.DataFrame]
    oldest_day: Callable[[], date | None]
    #: ``delete(day, ranges, batch_size)``: the number of rows deleted.
    delete: Callable[[date, Sequence[tuple[int, int]], int], int]


def readings_table(store: ReadingsStore, scored_upto: int | None = None) -> HotTable:
    """The readings store's append-only history (``seq``); with ``scored_upto`` (the
    scorer's cursor) no reading above it is deleted."""

    def delete(day: date, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        if scored_upto is not None:
            ranges = [(lo, min(hi, scored_upto)) for lo, hi in ranges if lo <= scored_upto]
        return store.delete_history(ranges, batch_size) if ranges else 0

    return HotTable("readings", "seq", store.history_day, store.oldest_history_day, delete)


def barrel_predictions_table(ledger: ScoreLedger) -> HotTable:
    """The scorer's ledger (``seq``): each reading's prediction, quarantine or loss."""

    def delete(day: date, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        return ledger.delete_seqs(day.isoformat(), ranges, batch_size)

    return HotTable(
        "barrel_predictions",
        "seq",
        lambda day: ledger.day(day.isoformat()),
        ledger.oldest_day,
        delete,
    )


def prediction_log_table(log: PredictionLog) -> HotTable:
    """The prediction log (``position``), rows as ``PredictionLog.window`` returns them."""

    def read_day(day: date) -> pd.DataFrame:
        start = day_start(day)
        return log.window(start, start + timedelta(days=1))

    def delete(day: date, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        return log.delete_positions(ranges, batch_size)

    return HotTable("prediction_log", "position", read_day, log.oldest_day, delete)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def archive_key(table: str, day: date) -> str:
    """Where a day of ``table`` is archived under the platform storage root."""
    return f"{ARCHIVE_PREFIX}/{table}/day={day.isoformat()}/{table}.parquet"


def read_archive(storage: PlatformStorage, table: str, day: date) -> pd.DataFrame | None:
    """The archived rows of the day, or None when the day has no archive."""
    key = archive_key(table, day)
    return storage.read_parquet(key) if storage.exists(key) else None


@dataclass(frozen=True)
class Archived:
    """A day's archive after ``archive_day``: what it holds and what this call changed."""

    table: str
    day: date
    key: str
    uri: str
    rows: int
    size_bytes: int
    key_min: int | None
    key_max: int | None
    hot_rows: int
    written: bool  # False: the existing file already held every hot row
    keys: frozenset[int] = field(repr=False)

    @property
    def key_range(self) -> str:
        """``min-max`` of the keys held, empty when the day has no rows."""
        return f"{self.key_min}-{self.key_max}" if self.rows else ""


def _keys(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame[key].astype("int64")


def verify(
    storage: PlatformStorage, table: HotTable, day: date, hot: pd.DataFrame, expected: int
) -> Archived:
    """Re-read the day's archive: ``expected`` rows, each key once, every hot key present;
    raises ``ArchiveMismatchError`` naming what is wrong."""
    key = archive_key(table.name, day)
    if not storage.exists(key):
        raise ArchiveMismatchError(f"{storage.uri(key)}: no archive of {day}")
    data = storage.read_bytes(key)
    archived = pd.read_parquet(io.BytesIO(data))
    keys = _keys(archived, table.key)
    problems = []
    if len(archived) != expected:
        problems.append(f"{len(archived)} rows, expected {expected}")
    if keys.duplicated().any():
        problems.append(f"{int(keys.duplicated().sum())} {table.key}s twice")
    held = frozenset(keys.tolist())
    missing = sorted(set(_keys(hot, table.key).tolist()) - held)
    if missing:
        problems.append(f"{len(missing)} hot rows missing ({table.key} {missing[:5]}…)")
    if problems:
        raise ArchiveMismatchError(f"{storage.uri(key)}: " + "; ".join(problems))
    return Archived(
        table=table.name,
        day=day,
        key=key,
        uri=storage.uri(key),
        rows=len(archived),
        size_bytes=len(data),
        key_min=int(keys.min()) if len(keys) else None,
        key_max=int(keys.max()) if len(keys) else None,
        hot_rows=len(hot),
        written=False,
        keys=held,
    )


def archive_day(
    storage: PlatformStorage, table: HotTable, day: date, *, today: date | None = None
) -> Archived:
    """Archive the closed UTC ``day`` of ``table`` (merged with its existing archive) and
    verify the file; the verified archive. ``today`` (default: the UTC date) bounds which
    days are closed."""
    if day >= (today or datetime.now(UTC).date()):
        raise ValueError(f"{day} is not a closed UTC day yet: archive days before today")
    hot = table.read_day(day)
    existing = read_archive(storage, table.name, day)
    if existing is not None:
        held = set(_keys(existing, table.key).tolist())
        if set(_keys(hot, table.key).tolist()) <= held and len(held) == len(existing):
            return verify(storage, table, day, hot, len(existing))
        parts = [existing, hot] if len(hot) else [existing]
        merged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else existing
    else:
        merged = hot
    merged = merged.drop_duplicates(subset=[table.key], keep="first")
    merged = merged.sort_values(table.key, ignore_index=True)
    storage.write_parquet(archive_key(table.name, day), merged)
    result = verify(storage, table, day, hot, len(merged))
    return Archived(**{**result.__dict__, "written": True})


@dataclass(frozen=True)
class Pruned:
    """One day pruned: its verified archive and the hot rows deleted."""

    archived: Archived
    deleted: int


def prune_day(
    storage: PlatformStorage,
    table: HotTable,
    day: date,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    today: date | None = None,
) -> Pruned:
    """Archive and verify the day, then delete from the hot table the keys the archive
    holds (and only those), ``batch_size`` at a time."""
    archived = archive_day(storage, table, day, today=today)
    deleted = table.delete(day, key_ranges(archived.keys), batch_size) if archived.keys else 0
    return Pruned(archived, deleted)


def days_to_prune(table: HotTable, retention_days: int, today: date) -> Iterator[date]:
    """The days with hot rows older than the retention: before ``today - retention_days``."""
    if retention_days < 1:
        raise ValueError(f"retention_days: expected 1 or more, got {retention_days}")
    oldest = table.oldest_day()
    cutoff = today - timedelta(days=retention_days)
    day = oldest
    while day is not None and day < cutoff:
        yield day
        day += timedelta(days=1)


def retain(
    storage: PlatformStorage,
    table: HotTable,
    retention_days: int,
    *,
    today: date | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Pruned]:
    """Prune every day of ``table`` older than ``retention_days`` (each archived and
    verified first), oldest first."""
    today = today or datetime.now(UTC).date()
    return [
        prune_day(storage, table, day, batch_size, today=today)
        for day in days_to_prune(table, retention_days, today)
    ]


def logged_window(
    log: PredictionLog,
    storage: PlatformStorage,
    start: datetime,
    end: datetime,
    positions: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """``PredictionLog.window`` over the hot log and the archive of the days it touches
    (rows pruned from the log are read from the archive; a row in both counts once)."""
    hot = log.window(start, end, positions)
    after, upto = positions if positions is not None else (-1, 2**62)
    parts = [hot]
    day = start.astimezone(UTC).date()
    while day_start(day) < end:
        archived = read_archive(storage, "prediction_log", day)
        if archived is not None and len(archived):
            logged = pd.to_datetime(archived["logged_at"], utc=True)
            keep = (
                (logged >= start)
                & (logged < end)
                & (archived["position"] > after)
                & (archived["position"] <= upto)
            )
            parts.append(archived[keep])
        day += timedelta(days=1)
    parts = [p for p in parts if len(p)]
    if len(parts) <= 1:
        return parts[0].reset_index(drop=True) if parts else hot
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.drop_duplicates(subset=["position"], keep="first")
    return frame.sort_values("position", ignore_index=True)
