"""The readings store: the current reading (and latest prediction) of every barrel.

Two backends implement one interface: SQLite for a laptop/CI (``sqlite:///abs/path.db``) and
DynamoDB for production (``dynamodb://TABLE?region=…&endpoint=…``). Every write stamps a
store-wide, strictly increasing ``seq`` so a Dagster sensor can keep a single integer cursor
and ask for ``changed_since(cursor)`` instead of rescanning every barrel.

Validation happens before any write: one bad reading rejects the whole batch, so a
misbehaving sensor gateway cannot half-write a tick.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from wine_assets.features import QUALITY_SCALE
from wine_assets.readings.schema import (
    NUMERIC_FIELDS,
    InvalidReadingError,
    Prediction,
    Reading,
    parse_reading,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HISTORY_COLUMNS",
    "PredictionColumns",
    "ReadingsStore",
    "key_ranges",
    "open_store",
    "utc_now",
    "validate_batch",
    "validate_prediction_columns",
    "validate_predictions",
]

#: The columns of ``history_day`` (and of a readings archive file), in order.
HISTORY_COLUMNS: tuple[str, ...] = ("seq", "barrel_id", "wine_type", *NUMERIC_FIELDS, "updated_at")

_BARREL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def utc_now() -> str:
    """The store's timestamp format: ISO 8601, UTC, microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def validate_batch(readings: Sequence[Reading | Mapping[str, Any]]) -> list[Reading]:
    """Parse every reading; raise one error naming each bad reading's index, barrel and field."""
    if isinstance(readings, Mapping | Reading):
        # A single reading passed where a batch is expected would iterate over its keys.
        raise TypeError("put() takes a sequence of readings, not a single reading")
    readings = list(readings)
    parsed: list[Reading] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(readings):
        try:
            parsed.append(parse_reading(item))
        except InvalidReadingError as exc:
            barrel = item.barrel_id if isinstance(item, Reading) else None
            if isinstance(item, Mapping):
                barrel = item.get("barrel_id")
            for error in exc.errors:
                errors.append(
                    {
                        **error,
                        "index": index,
                        "barrel_id": barrel if isinstance(barrel, str) else None,
                    }
                )
    if errors:
        bad = len({e["index"] for e in errors})
        raise InvalidReadingError(
            errors, f"{bad} of {len(readings)} readings invalid, nothing written"
        )
    return parsed


#: Error order within one prediction: the order of ``Prediction``'s fields.
_PREDICTION_FIELDS = ("barrel_id", "predicted_quality", "model_version", "reading_seq", "scored_at")
_NON_NEGATIVE = "expected a non-negative integer, got {!r}"


@dataclass(frozen=True)
class PredictionColumns:
    """A validated batch of predictions, one list per field (what a backend writes)."""

    barrel_id: list[str]
    predicted_quality: list[float]
    model_version: list[int]
    reading_seq: list[int]
    scored_at: list[str]

    def __len__(self) -> int:
        return len(self.barrel_id)

    @classmethod
    def concat(cls, parts: Sequence[PredictionColumns]) -> PredictionColumns:
        """The parts as one batch, in order."""
        return cls(
            *(
                [value for part in parts for value in getattr(part, name)]
                for name in _PREDICTION_FIELDS
            )
        )

    def rows(self) -> Iterator[tuple[str, float, int, int, str]]:
        """``(barrel_id, predicted_quality, model_version, reading_seq, scored_at)`` per row."""
        return zip(
            self.barrel_id,
            self.predicted_quality,
            self.model_version,
            self.reading_seq,
            self.scored_at,
            strict=True,
        )


def _column(values: npt.ArrayLike) -> np.ndarray:
    """An array with a dtype (checked as a whole) or, for a list or one value, an object
    array (checked element by element: np.asarray would turn [5.5, True] into floats)."""
    if hasattr(values, "dtype") and np.ndim(values) == 1:
        return np.asarray(values)
    return np.atleast_1d(np.asarray(values, dtype=object))


def _bad_barrel_ids(values: npt.ArrayLike) -> tuple[list[Any], np.ndarray]:
    """The ids as a list and a mask of the invalid ones. A column of strings is matched by
    Arrow's regex engine (``re.fullmatch`` per id costs ~0.3 s per million rows); anything
    else is checked id by id."""
    if isinstance(values, str):
        raise TypeError("barrel_id: expected one id per prediction, got a single string")
    ids = values.tolist() if hasattr(values, "tolist") else list(values)  # type: ignore[union-attr]
    try:
        # No copy for pandas' Arrow-backed strings; ``ids`` when values was an iterator.
        strings = pa.array(values if hasattr(values, "dtype") else ids)
    except (pa.ArrowException, TypeError, ValueError):  # mixed types
        strings = pa.nulls(0)
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        bad = [not isinstance(b, str) or not _BARREL_ID.fullmatch(b) for b in ids]
        return ids, np.asarray(bad, dtype=bool)
    valid = pc.match_substring_regex(strings, f"^{_BARREL_ID.pattern}$").fill_null(False)
    return ids, ~valid.to_numpy(zero_copy_only=False)


def _all_of(values: Iterable[object], kinds: tuple[type, ...]) -> bool:
    """Whether every element is one of ``kinds`` (never a bool), judged by the few distinct
    types rather than element by element."""
    types = set(map(type, values))
    return all(issubclass(t, kinds) and not issubclass(t, bool) for t in types)


def _bad_quality(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qualities as float64 (NaN where not a number) and a mask of the invalid ones."""
    if values.dtype.kind in "iuf":
        quality = values.astype(np.float64, copy=False)
    elif _all_of(values, (int, float)):
        quality = values.astype(np.float64)
    else:
        numbers = [isinstance(q, int | float) and not isinstance(q, bool) for q in values]
        quality = np.where(numbers, values, np.nan).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~((quality >= QUALITY_SCALE[0]) & (quality <= QUALITY_SCALE[1]))  # NaN fails
    return quality, bad


def _bad_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integers as int64 (0 where not one) and a mask of the invalid ones."""
    if values.dtype.kind in "iu" or _all_of(values, (int, np.integer)):
        counts = values.astype(np.int64)
        return counts, counts < 0
    ints = [isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values]
    counts = np.where(ints, values, 0).astype(np.int64)
    return counts, ~np.asarray(ints, dtype=bool) | (counts < 0)


def _bad_stamps(values: np.ndarray) -> np.ndarray:
    """A mask of the values that are not a non-empty string."""
    if _all_of(values, (str,)):
        return np.asarray(values == "", dtype=bool)
    return np.asarray([not isinstance(t, str) or not t for t in values], dtype=bool)


def _prediction_column_errors(
    barrel_id: npt.ArrayLike,
    predicted_quality: npt.ArrayLike,
    reading_seq: npt.ArrayLike,
    model_version: npt.ArrayLike | int,
    scored_at: npt.ArrayLike | str,
) -> tuple[PredictionColumns, list[dict[str, Any]]]:
    """The batch as columns and one error (field, message, index, barrel_id) per bad value,
    in row order then field order. The checks run on whole arrays; a single
    ``model_version``/``scored_at`` is checked once and stands for every row."""
    ids, bad_ids = _bad_barrel_ids(barrel_id)
    n = len(ids)
    quality_raw, seq_raw = _column(predicted_quality), _column(reading_seq)
    if not len(quality_raw) == len(seq_raw) == n:
        raise ValueError(
            f"prediction columns differ in length: barrel_id {n}, "
            f"predicted_quality {len(quality_raw)}, reading_seq {len(seq_raw)}"
        )
    single = {
        name: isinstance(value, str) or not hasattr(value, "__len__")
        for name, value in (("model_version", model_version), ("scored_at", scored_at))
    }
    version_raw, stamps_raw = _column(model_version), _column(scored_at)
    for name, values in (("model_version", version_raw), ("scored_at", stamps_raw)):
        if not single[name] and len(values) != n:
            raise ValueError(f"{name}: expected one value or {n}, got {len(values)}")
    quality, bad_quality = _bad_quality(quality_raw)
    version, bad_version = _bad_counts(version_raw)
    seq, bad_seq = _bad_counts(seq_raw)
    checks = {
        "barrel_id": (bad_ids, ids, "not a valid barrel id: {!r}"),
        "predicted_quality": (
            bad_quality,
            quality_raw,
            "expected a finite number within the quality scale "
            f"[{QUALITY_SCALE[0]:g}, {QUALITY_SCALE[1]:g}], got {{!r}}",
        ),
        "model_version": (bad_version, version_raw, _NON_NEGATIVE),
        "reading_seq": (bad_seq, seq_raw, _NON_NEGATIVE),
        "scored_at": (
            _bad_stamps(stamps_raw),
            stamps_raw,
            "expected an ISO timestamp string, got {!r}",
        ),
    }
    errors = [
        {
            "field": field,
            "message": message.format(_plain(values[index % len(values)])),
            "index": int(index),
            "barrel_id": ids[index] if isinstance(ids[index], str) else None,
        }
        for field, (bad, values, message) in checks.items()
        for index in np.flatnonzero(np.broadcast_to(bad, n))
    ]
    errors.sort(key=lambda e: (e["index"], _PREDICTION_FIELDS.index(e["field"])))
    columns = PredictionColumns(
        barrel_id=ids,
        predicted_quality=quality.tolist(),
        model_version=version.tolist() * (n if single["model_version"] else 1),
        reading_seq=seq.tolist(),
        scored_at=stamps_raw.tolist() * (n if single["scored_at"] else 1),
    )
    return columns, errors


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read ``nan``, not
    ``np.float64(nan)``."""
    return value.item() if isinstance(value, np.generic) else value


def validate_prediction_columns(
    barrel_id: npt.ArrayLike,
    predicted_quality: npt.ArrayLike,
    reading_seq: npt.ArrayLike,
    model_version: npt.ArrayLike | int,
    scored_at: npt.ArrayLike | str,
) -> PredictionColumns:
    """Check a batch given as columns (``model_version``/``scored_at`` may be one value for
    all rows); all-or-nothing like readings: one error names every bad row and field."""
    columns, errors = _prediction_column_errors(
        barrel_id, predicted_quality, reading_seq, model_version, scored_at
    )
    if errors:
        raise InvalidReadingError(errors, "invalid predictions, nothing written")
    return columns


def validate_predictions(preds: Sequence[Prediction]) -> PredictionColumns:
    """``validate_prediction_columns`` for ``Prediction`` objects (the same rule)."""
    preds = list(preds)
    if _all_of(preds, (Prediction,)):
        keep, errors = list(range(len(preds))), []
    else:
        keep = [i for i, p in enumerate(preds) if isinstance(p, Prediction)]
        errors = [
            {
                "field": "(prediction)",
                "message": f"expected a Prediction, got {type(p).__name__}",
                "index": i,
                "barrel_id": None,
            }
            for i, p in enumerate(preds)
            if not isinstance(p, Prediction)
        ]
    kept = [preds[i] for i in keep]
    fields = {name: list(map(attrgetter(name), kept)) for name in _PREDICTION_FIELDS}
    columns, column_errors = _prediction_column_errors(**fields)
    errors += [error | {"index": keep[error["index"]]} for error in column_errors]
    if errors:
        errors.sort(key=lambda e: e["index"])
        raise InvalidReadingError(errors, "invalid predictions, nothing written")
    return columns


class ReadingsStore(ABC):
    """Current reading per barrel, an append-only history of every reading, and a
    store-wide write sequence (``seq``).

    Guarantees on both backends: ``put`` validates the whole batch before writing; every
    written reading gets a new ``seq`` greater than any seq handed out before (across barrels,
    batches and processes); a reading never replaces one with a higher ``seq``; writing a
    prediction leaves the reading and its ``seq`` untouched.
    """

    @abstractmethod
    def create(self) -> None:
        """Create tables/indexes if missing (idempotent)."""

    @abstractmethod
    def put(self, readings: Sequence[Reading | Mapping[str, Any]]) -> list[int]:
        """Validate, then write each reading with a new seq; the seqs in input order."""

    @abstractmethod
    def get(self, barrel_id: str) -> Reading | None:
        """The barrel's current reading, or None."""

    @abstractmethod
    def all(self) -> list[Reading]:
        """Every current reading, ordered by barrel_id."""

    @abstractmethod
    def changed_since(self, seq: int, limit: int | None = None) -> list[Reading]:
        """Current readings with ``seq`` above the cursor, ordered by seq (index, no scan)."""

    @abstractmethod
    def history_frame(self, after: int, upto: int) -> pd.DataFrame:
        """Every reading written with ``after < seq <= upto`` (and seq handed out by
        ``reserved_seq``), superseded ones included, as ``HISTORY_COLUMNS`` ordered by seq:
        the append-only log that lets a late consumer score every change, not only the ones
        still current when it looks. Columns, so a consumer catching up reads a page of
        readings without an object per reading."""

    def history(self, after: int, upto: int) -> list[Reading]:
        """``history_frame`` as ``Reading`` objects (a few readings: checks and tests)."""
        return [Reading(**row) for row in self.history_frame(after, upto).to_dict("records")]

    @abstractmethod
    def max_seq(self) -> int:
        """Highest seq of a stored reading (the cursor to resume after); 0 when empty."""

    def reserved_seq(self) -> int:
        """Highest seq handed out to a writer: ``max_seq`` where a batch's seqs and readings
        are written in one transaction; ahead of it while a DynamoDB writer is still
        writing its batch."""
        return self.max_seq()

    def write_predictions(self, preds: Sequence[Prediction]) -> int:
        """``write_prediction_columns`` for ``Prediction`` objects (same checks and rules)."""
        return self._write_predictions(validate_predictions(preds))

    def write_prediction_columns(
        self,
        barrel_id: npt.ArrayLike,
        predicted_quality: npt.ArrayLike,
        reading_seq: npt.ArrayLike,
        *,
        model_version: npt.ArrayLike | int,
        scored_at: npt.ArrayLike | str,
    ) -> int:
        """Store one prediction per row next to its barrel's reading; the number written.

        Columns (arrays, Series or lists), so a million scores need no per-row objects;
        ``model_version``/``scored_at`` may be one value for every row. Raises
        ``InvalidReadingError`` naming each bad row's index, barrel and field, and
        ``KeyError`` when a barrel has no reading; either way nothing is written. A prediction
        for an older reading than the stored prediction's (``reading_seq`` lower) is skipped,
        so a slow run cannot overwrite a newer score; within a batch the later row wins.
        """
        columns = validate_prediction_columns(
            barrel_id, predicted_quality, reading_seq, model_version, scored_at
        )
        return self._write_predictions(columns)

    @abstractmethod
    def _write_predictions(self, columns: PredictionColumns) -> int:
        """Write an already validated batch (see ``write_prediction_columns``)."""

    @abstractmethod
    def get_prediction(self, barrel_id: str) -> Prediction | None:
        """The barrel's latest prediction, or None."""

    @abstractmethod
    def predictions(self) -> list[Prediction]:
        """Every stored prediction, ordered by barrel_id."""

    @abstractmethod
    def count(self) -> int:
        """Number of barrels with a reading."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> ReadingsStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- retention (wine_assets.retention archives a day, then prunes it) ---------------

    def history_day(self, day: date) -> pd.DataFrame:
        """Every history row written on the UTC ``day``, superseded ones included, as
        ``HISTORY_COLUMNS`` ordered by seq: what the archive keeps of that day."""
        raise NotImplementedError(f"{type(self).__name__} has no history retention")

    def oldest_history_day(self) -> date | None:
        """The UTC day of the oldest history row still in the store; None when empty."""
        raise NotImplementedError(f"{type(self).__name__} has no history retention")

    def delete_history(self, seq_ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        """Delete the history rows with a seq in one of the inclusive ``(lo, hi)`` ranges, at
        most ``batch_size`` seqs per transaction/request; the number deleted. The current
        reading of each barrel (``get``/``all``) lives apart from the history and is never
        touched. Only the retention code calls this, with ranges it has archived."""
        raise NotImplementedError(f"{type(self).__name__} has no history retention")

    @abstractmethod
    def temperature_history(self, start: str | datetime, end: str | datetime) -> pd.DataFrame:
        """Every reading written with ``start <= updated_at < end`` (a bound without an offset
        is UTC), superseded ones included, as columns ``barrel_id``, ``updated_at`` (the
        stored ISO text) and ``temperature_c``, ordered by ``updated_at`` then seq: the
        barrels' temperature record, which the sensor-profile assets turn into hourly rows."""


def _check_cursor(seq: int, limit: int | None) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError(f"seq must be an int, got {seq!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")


def open_store(url: str) -> ReadingsStore:
    """A store from its URL.

    - ``sqlite:///abs/path.db`` (parent folder created) or ``sqlite:///:memory:``;
    - ``dynamodb://TABLE?region=us-east-1&endpoint=http://127.0.0.1:PORT`` — region falls back
      to ``AWS_REGION``/``AWS_DEFAULT_REGION`` then ``us-east-1``; without ``endpoint`` boto3's
      own resolution applies (``AWS_ENDPOINT_URL`` or AWS); credentials come from the usual
      AWS environment/config chain, never from the URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from wine_assets.readings.sqlite_store import SqliteReadingsStore

        if parts.netloc or parts.query or not url.startswith("sqlite:///"):
            raise ValueError(
                f"expected sqlite:///ABSOLUTE/PATH.db or sqlite:///:memory:, got {url!r}"
            )
        path = url[len("sqlite://") :]
        if path == "/:memory:":
            return SqliteReadingsStore(":memory:")
        return SqliteReadingsStore(path)
    if scheme == "dynamodb":
        from wine_assets.readings.dynamodb_store import DynamoDbReadingsStore

        table = parts.netloc
        if not table or parts.path not in ("", "/"):
            raise ValueError(f"expected dynamodb://TABLE?region=…&endpoint=…, got {url!r}")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"region", "endpoint"})
        if unknown:
            raise ValueError(f"{url!r}: unknown parameters {unknown} (allowed: region, endpoint)")
        region = (
            query.get("region", [None])[0]
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        endpoint = query.get("endpoint", [None])[0] or None
        return DynamoDbReadingsStore(table, region=region, endpoint_url=endpoint)
    raise ValueError(
        f"unsupported readings store URL {url!r}: expected sqlite:///ABSOLUTE/PATH.db, "
        "sqlite:///:memory: or dynamodb://TABLE?region=…&endpoint=…"
    )


def _time_window(start: str | datetime, end: str | datetime) -> tuple[str, str]:
    """``[start, end)`` written as the store writes ``updated_at`` (``utc_now``'s format), so
    comparing the texts compares the times on both backends."""

    def stamp(value: str | datetime) -> str:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="microseconds")

    lo, hi = stamp(start), stamp(end)
    if hi < lo:
        raise ValueError(f"time window ends before it starts: [{start}, {end})")
    return lo, hi


def _temperature_frame(rows: Sequence[tuple[str, str, float]]) -> pd.DataFrame:
    """``temperature_history``'s columns from (barrel_id, updated_at, temperature_c) rows."""
    import pandas as pd

    barrel_id, updated_at, temperature_c = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "barrel_id": pd.array(barrel_id, dtype="string"),
            "updated_at": pd.array(updated_at, dtype="string"),
            "temperature_c": pd.array(temperature_c, dtype="float64"),
        }
    )


def _history_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``history_frame``'s (and ``history_day``'s) frame from rows in ``HISTORY_COLUMNS``
    order, typed even when empty, ordered by seq. One object array cut into typed columns:
    a frame from a list of row tuples infers every value's type again."""
    import pandas as pd

    table = np.array(rows, dtype=object).reshape(len(rows), len(HISTORY_COLUMNS))
    data: dict[str, Any] = {}
    for name, values in zip(HISTORY_COLUMNS, table.T, strict=True):
        if name == "seq":
            data[name] = np.array(values, dtype=np.int64)
        elif name in NUMERIC_FIELDS:
            data[name] = np.array(values, dtype=np.float64)
        else:  # (pd.array(values, dtype="string") checks each value again: slower)
            data[name] = pd.Series(values, dtype=object).astype("string")
    frame = pd.DataFrame(data)
    if frame["seq"].is_monotonic_increasing:
        return frame
    return frame.sort_values("seq", ignore_index=True)


def _day_window(day: date) -> tuple[str, str]:
    """``[day, day + 1)`` in the store's ``updated_at`` format."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return _time_window(start, start + timedelta(days=1))


def key_ranges(keys: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted keys as maximal inclusive runs of consecutive integers: every key inside a
    range is one of ``keys``, so deleting the ranges deletes nothing else."""
    ranges: list[tuple[int, int]] = []
    for k in sorted(keys):
        if ranges and k == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], k)
        else:
            ranges.append((k, k))
    return ranges


def _chunks(ranges: Sequence[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    """The inclusive ranges cut into groups covering at most ``size`` values each."""
    if size < 1:
        raise ValueError(f"batch_size: expected 1 or more, got {size}")
    group: list[tuple[int, int]] = []
    room = size
    for lo, hi in ranges:
        while lo <= hi:
            take = min(hi - lo + 1, room)
            group.append((lo, lo + take - 1))
            lo += take
            room -= take
            if room == 0:
                yield group
                group, room = [], size
    if group:
        yield group
