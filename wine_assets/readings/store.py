"""The readings store: the current reading (and latest prediction) of every barrel.

Two backends implement one interface: SQLite for a laptop/CI (``sqlite:///abs/path.db``) and
DynamoDB for production (``dynamodb://TABLE?region=…&endpoint=…``). Every write stamps a
store-wide, strictly increasing ``seq`` so a Dagster sensor can keep a single integer cursor
and ask for ``changed_since(cursor)`` instead of rescanning every barrel.

Validation happens before any write: one bad reading rejects the whole batch, so a
misbehaving sensor gateway cannot half-write a tick.
"""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from wine_assets.readings.schema import InvalidReadingError, Prediction, Reading, parse_reading

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReadingsStore", "open_store", "utc_now", "validate_batch", "validate_predictions"]

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


def _prediction_errors(pred: object) -> list[tuple[str, str]]:
    """(field, message) for each problem of one prediction."""
    if not isinstance(pred, Prediction):
        return [("(prediction)", f"expected a Prediction, got {type(pred).__name__}")]
    errors = []
    if not isinstance(pred.barrel_id, str) or not _BARREL_ID.fullmatch(pred.barrel_id):
        errors.append(("barrel_id", f"not a valid barrel id: {pred.barrel_id!r}"))
    q = pred.predicted_quality
    if isinstance(q, bool) or not isinstance(q, int | float) or not math.isfinite(q):
        errors.append(("predicted_quality", f"expected a finite number, got {q!r}"))
    for name in ("model_version", "reading_seq"):
        value = getattr(pred, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append((name, f"expected a non-negative integer, got {value!r}"))
    if not isinstance(pred.scored_at, str) or not pred.scored_at:
        errors.append(("scored_at", f"expected an ISO timestamp string, got {pred.scored_at!r}"))
    return errors


def validate_predictions(preds: Sequence[Prediction]) -> list[Prediction]:
    """Type and range checks on predictions, all-or-nothing like readings."""
    preds = list(preds)
    errors = [
        {
            "field": field,
            "message": message,
            "index": index,
            "barrel_id": getattr(pred, "barrel_id", None),
        }
        for index, pred in enumerate(preds)
        for field, message in _prediction_errors(pred)
    ]
    if errors:
        raise InvalidReadingError(errors, "invalid predictions, nothing written")
    return preds


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
    def history(self, after: int, upto: int) -> list[Reading]:
        """Every reading written with ``after < seq <= upto``, superseded ones included,
        ordered by seq: the append-only log that lets a late consumer score every change,
        not only the ones still current when it looks."""

    @abstractmethod
    def max_seq(self) -> int:
        """Highest seq of a stored reading (the cursor to resume after); 0 when empty."""

    @abstractmethod
    def write_predictions(self, preds: Sequence[Prediction]) -> int:
        """Store predictions next to their barrels' readings; the number written.

        Raises KeyError (writing nothing) when a barrel has no reading. A prediction for an
        older reading than the stored prediction's (``reading_seq`` lower) is skipped, so a
        slow run cannot overwrite a newer score.
        """

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
