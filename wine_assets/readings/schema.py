"""The reading of a barrel sensor and the wine it measures, validated by pydantic models.

A barrel's sensor reports the 11 UCI physico-chemical features plus the wine's temperature.
``PHYSICAL_BOUNDS`` is the one table of plausible values; the models ``Wine`` (what the
prediction service scores, also its OpenAPI schema) and ``ReadingModel`` (what the readings
store accepts) are generated from it, so the store and the service cannot disagree. Validation
reports *every* problem of a reading at once, so an integrator fixes a payload in one round trip.

Numbers must be numbers. The old system kept DynamoDB values as strings; accepting ``"7.4"``
here would keep that format alive and hide upstream bugs (``"7,4"`` from a comma locale,
``"NaN"`` or ``"1e400"`` all parse as floats), so numeric strings are rejected with a message
that says so. ``int``/``float``/``Decimal`` (what boto3 returns) and numpy scalars are accepted;
``bool`` is not, although ``True`` is an ``int``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from wine_assets.features import FEATURES, UNITS

__all__ = [
    "NUMERIC_FIELDS",
    "PHYSICAL_BOUNDS",
    "BarrelId",
    "InvalidReadingError",
    "Prediction",
    "Reading",
    "ReadingModel",
    "Wine",
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
BARREL_ID_MAX_LEN = 64


def _got(value: object) -> str:
    """Short repr so one message stays one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> float:
    """A number as a float; numeric strings, bools and non-finite values are refused, with why."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"expected a number, got the string {_got(value)}") from None
        raise ValueError(
            f"expected a number, got the numeric string {_got(value)}: send numbers as "
            "JSON/Python numbers (string-encoded values are the old system's format)"
        )
    # numbers.Real covers int, float and numpy numbers (not numpy.bool); Decimal is boto3's.
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValueError(f"expected a number, got {type(value).__name__} {_got(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # Decimal('sNaN'), huge ints
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {_got(value)}")
    return number


def _bounded(name: str, unit: str) -> Any:
    """A float inside ``PHYSICAL_BOUNDS[name]`` (the Field before the validator, so the JSON
    schema says ``minimum``/``maximum``)."""
    low, high = PHYSICAL_BOUNDS[name]
    return Annotated[float, Field(ge=low, le=high, description=unit), BeforeValidator(_number)]


#: A barrel id: what a sensor gateway and the service's ``/barrels/{barrel_id}`` path accept.
BarrelId = Annotated[
    str,
    StringConstraints(
        strict=True, min_length=1, max_length=BARREL_ID_MAX_LEN, pattern=r"^[A-Za-z0-9_-]+$"
    ),
]
#: A wine to score: its type and the 11 features, each inside its physical bounds.
Wine = create_model(
    "Wine",
    __config__=ConfigDict(extra="forbid"),
    wine_type=(WineType, ...),
    **{name: (_bounded(name, UNITS[name]), ...) for name in FEATURES},
)
#: A barrel's reading: its wine, barrel id and temperature; ``seq``/``updated_at`` are set
#: by the store (kept when a stored reading is validated again).
ReadingModel = create_model(
    "Reading",
    __base__=Wine,
    barrel_id=(BarrelId, ...),
    temperature_c=(_bounded("temperature_c", "°C"), ...),
    seq=(Annotated[int, Field(ge=0, strict=True)] | None, None),
    updated_at=(Annotated[str, Field(strict=True)] | None, None),
)


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


def parse_reading(data: Mapping[str, Any] | Reading) -> Reading:
    """Validate a reading payload and return it as a typed ``Reading``.

    Raises one ``InvalidReadingError`` naming every bad field (pydantic's messages): missing
    and unknown fields, non-numbers, NaN/inf, values outside ``PHYSICAL_BOUNDS``, a malformed
    ``barrel_id``, an unknown ``wine_type``. A ``Reading`` is validated again, since a
    dataclass does not check its values.
    """
    if isinstance(data, Reading):
        data = data.to_dict()
    try:
        return Reading(**ReadingModel.model_validate(data).model_dump())
    except ValidationError as exc:
        barrel = data.get("barrel_id") if isinstance(data, Mapping) else None
        prefix = f"invalid reading for {barrel}" if isinstance(barrel, str) else "invalid reading"
        errors = [
            {"field": ".".join(map(str, e["loc"])) or "(reading)", "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidReadingError(errors, prefix) from None
