"""The current reading of a barrel sensor, its validation, and the model's prediction.

A barrel's sensor reports the 11 UCI physico-chemical features plus the wine's temperature.
Validation is strict and reports *every* problem of a reading at once (``"ph: 7.5 is outside
the physical bounds [2.0, 5.0]"``), so a sensor integrator fixes a payload in one round trip.

Numbers must be numbers. The old system kept DynamoDB values as strings; accepting ``"7.4"``
here would keep that format alive and hide upstream bugs (``"7,4"`` from a comma locale,
``"NaN"`` or ``"1e400"`` all parse as floats), so numeric strings are rejected with a message
that says so. ``int``/``float``/``Decimal`` (what boto3 returns) and numpy scalars are accepted;
``bool`` is not, although ``True`` is an ``int``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Literal

from wine_assets.features import FEATURES, WINE_TYPES

__all__ = [
    "NUMERIC_FIELDS",
    "PHYSICAL_BOUNDS",
    "READING_FIELDS",
    "InvalidReadingError",
    "Prediction",
    "Reading",
    "parse_reading",
]

WineType = Literal["red", "white"]

#: Physical plausibility limits (inclusive) per numeric field. They are deliberately *wider*
#: than the UCI ranges: they reject sensor faults and unit mix-ups (mg vs g, °F vs °C), not
#: unusual wines. Unusual-but-possible values are the drift checks' job, downstream.
#: The comment gives the UCI range (red and white together) and why the limit is where it is.
PHYSICAL_BOUNDS: dict[str, tuple[float, float]] = {
    # UCI 3.8–15.9 g/dm³; tartaric acidity of must/wine stays well below 30.
    "fixed_acidity": (0.0, 30.0),
    # UCI 0.08–1.58 g/dm³; legal limits are ~1.2, spoiled wine a few g; the corrupted test
    # batch adds 3 (up to ~4.6), which must still be storable to be detected downstream.
    "volatile_acidity": (0.0, 10.0),
    # UCI 0–1.66 g/dm³; corrupted batch adds 5 (up to ~6.7).
    "citric_acid": (0.0, 10.0),
    # UCI 0.6–65.8 g/dm³; sweet wines (Tokaji Eszencia, ice wine) reach 150–450.
    "residual_sugar": (0.0, 500.0),
    # UCI 0.009–0.611 g/dm³.
    "chlorides": (0.0, 2.0),
    # UCI 1–289 mg/dm³ (free) and 6–440 mg/dm³ (total); EU limits are 150–400 total.
    "free_sulfur_dioxide": (0.0, 500.0),
    "total_sulfur_dioxide": (0.0, 500.0),
    # UCI 0.987–1.039 g/cm³; grape must at harvest reaches ~1.12, and the noisy test batch
    # adds ~0.1 on top of the UCI maximum (≈1.14), so the upper limit is 1.20, not 1.10.
    "density": (0.95, 1.20),
    # UCI 2.72–4.01; wine is never below 2 or above 5.
    "ph": (2.0, 5.0),
    # UCI 0.22–2.0 g/dm³.
    "sulphates": (0.0, 5.0),
    # UCI 8.0–14.9 % vol; fortified wines reach ~22; the corrupted batch sets 20.
    "alcohol": (0.0, 25.0),
    # Vat temperature: cellars run 10–18 °C, fermentation up to ~32 °C; -5 allows cold
    # stabilisation, 40 a sensor in the sun. Outside this the probe is broken.
    "temperature_c": (-5.0, 40.0),
}

#: The numeric fields of a reading, in storage order.
NUMERIC_FIELDS: tuple[str, ...] = (*FEATURES, "temperature_c")
#: Fields a caller supplies; ``seq``/``updated_at`` are assigned by the store.
READING_FIELDS: tuple[str, ...] = ("barrel_id", "wine_type", *NUMERIC_FIELDS)
_STORE_FIELDS = ("seq", "updated_at")
_KNOWN_FIELDS = frozenset((*READING_FIELDS, *_STORE_FIELDS))

BARREL_ID_MAX_LEN = 64
_BARREL_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Reading:
    """The current reading of one barrel; ``seq``/``updated_at`` are set by the store."""

    barrel_id: str
    wine_type: WineType
    fixed_acidity: float
    volatile_acidity: float
    citric_acid: float
    residual_sugar: float
    chlorides: float
    free_sulfur_dioxide: float
    total_sulfur_dioxide: float
    density: float
    ph: float
    sulphates: float
    alcohol: float
    temperature_c: float
    seq: int | None = None
    updated_at: str | None = None

    def features(self) -> dict[str, float]:
        """The 11 model features by name (the model's input row)."""
        return {name: getattr(self, name) for name in FEATURES}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """A model's quality score for one reading, stored next to the barrel's reading.

    ``reading_seq`` names the reading that was scored, so a consumer can tell a prediction
    that is older than the current reading.
    """

    barrel_id: str
    predicted_quality: float
    model_version: int
    reading_seq: int
    scored_at: str


class InvalidReadingError(ValueError):
    """One or more readings failed validation; ``errors`` lists every problem.

    Each error is a dict with ``field`` and ``message`` (and, for batches, ``index`` and
    ``barrel_id``), so callers can report them without parsing the message.
    """

    def __init__(self, errors: list[dict[str, Any]], prefix: str = "invalid reading") -> None:
        self.errors = errors
        details = "; ".join(_describe(e) for e in errors)
        super().__init__(f"{prefix}: {details}")


def _describe(error: Mapping[str, Any]) -> str:
    where = ""
    if "index" in error:
        where = f"#{error['index']}"
        if error.get("barrel_id"):
            where += f" ({error['barrel_id']})"
        where += " "
    return f"{where}{error['field']}: {error['message']}"


def _got(value: object) -> str:
    """Short repr so one message stays one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number_type(value: object) -> bool:
    if isinstance(value, bool):
        return False
    # numbers.Real covers int, float and numpy numbers (not numpy.bool); Decimal is what
    # boto3 hands back.
    return isinstance(value, numbers.Real | Decimal)


def _check_number(name: str, value: Any) -> tuple[float | None, str | None]:
    """The value as a float, or an error message."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None, f"expected a number, got the string {_got(value)}"
        return None, (
            f"expected a number, got the numeric string {_got(value)}: send numbers as "
            "JSON/Python numbers (string-encoded values are the old system's format)"
        )
    if value is None:
        return None, "expected a number, got None"
    if not _is_number_type(value):
        return None, f"expected a number, got {type(value).__name__} {_got(value)}"
    try:
        number = float(value)
    except (ValueError, OverflowError):  # Decimal('sNaN'), huge ints
        return None, f"must be a finite number, got {_got(value)}"
    if not math.isfinite(number):
        return None, f"must be finite, got {_got(number)}"
    low, high = PHYSICAL_BOUNDS[name]
    if not low <= number <= high:
        return None, f"{number!r} is outside the physical bounds [{low}, {high}]"
    return number, None


def check_barrel_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__} {_got(value)}"
    if not value:
        return "must not be empty"
    if len(value) > BARREL_ID_MAX_LEN:
        return f"longer than {BARREL_ID_MAX_LEN} characters ({len(value)})"
    if not _BARREL_ID.fullmatch(value):
        return f"only letters, digits, '_' and '-' are allowed, got {_got(value)}"
    return None


def parse_reading(data: Mapping[str, Any] | Reading) -> Reading:
    """Validate a reading payload and return it as a typed ``Reading``.

    Checks every field and raises one ``InvalidReadingError`` naming all bad fields: missing
    and unknown fields, non-numbers (including bools and numeric strings), NaN/inf, values
    outside ``PHYSICAL_BOUNDS``, a malformed ``barrel_id`` and an unknown ``wine_type``.
    ``seq``/``updated_at`` may be present (a reading read back from the store) and are kept.
    A ``Reading`` instance is re-validated too, since a dataclass does not check its values.
    """
    if isinstance(data, Reading):
        data = data.to_dict()
    if not isinstance(data, Mapping):
        raise InvalidReadingError(
            [{"field": "(reading)", "message": f"expected a mapping, got {type(data).__name__}"}]
        )
    errors: list[dict[str, Any]] = []

    def bad(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    for key in data:
        if key not in _KNOWN_FIELDS:
            bad(str(key), "unknown field")
    values: dict[str, Any] = {}
    for name in READING_FIELDS:
        if name not in data:
            bad(name, "missing")
            continue
        value = data[name]
        if name == "barrel_id":
            message = check_barrel_id(value)
        elif name == "wine_type":
            message = (
                None if value in WINE_TYPES else f"expected one of {WINE_TYPES}, got {_got(value)}"
            )
        else:
            value, message = _check_number(name, value)
        if message:
            bad(name, message)
        else:
            values[name] = value

    seq = data.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        bad("seq", f"expected a non-negative integer or None, got {_got(seq)}")
    updated_at = data.get("updated_at")
    if updated_at is not None and not isinstance(updated_at, str):
        bad("updated_at", f"expected an ISO timestamp string or None, got {_got(updated_at)}")

    if errors:
        barrel = data.get("barrel_id")
        prefix = f"invalid reading for {barrel}" if isinstance(barrel, str) else "invalid reading"
        raise InvalidReadingError(errors, prefix)
    return Reading(**values, seq=int(seq) if seq is not None else None, updated_at=updated_at)
