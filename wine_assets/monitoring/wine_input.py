"""A wine as the prediction service accepts it, validated by the readings' own rules.

A wine to score is a barrel reading without the barrel: ``wine_type`` and the 11 features.
Values go through ``parse_reading`` (numbers only, finite, inside ``PHYSICAL_BOUNDS``), so the
service and the readings store can never disagree on what a valid wine is. Every problem is
reported at once with the field it concerns, as FastAPI reports its own validation errors.
"""

from collections.abc import Mapping
from typing import Any

from wine_assets.features import FEATURES, UNITS, WINE_TYPES
from wine_assets.readings.schema import PHYSICAL_BOUNDS, InvalidReadingError, parse_reading

#: Fields of a wine in a request, in order.
WINE_FIELDS: tuple[str, ...] = ("wine_type", *FEATURES)
#: What ``parse_reading`` also requires; filled with values that are always valid and dropped.
_READING_ONLY = {"barrel_id": "request", "temperature_c": 15.0}
MAX_BATCH = 10_000


class WineValidationError(ValueError):
    """Bad request body: ``errors`` are FastAPI-style dicts with ``loc``, ``field``, ``msg``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def _error(loc: tuple, field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc, field], "field": field, "msg": msg, "type": kind}


def parse_wine(data: Any, loc: tuple = ()) -> dict[str, Any]:
    """``{"wine_type", *FEATURES}`` as typed values, or WineValidationError naming every field."""
    if not isinstance(data, Mapping):
        got = type(data).__name__
        raise WineValidationError(
            [{"loc": ["body", *loc], "field": "(wine)", "msg": f"expected an object, got {got}",
              "type": "type_error"}]
        )  # fmt: skip
    errors = [
        _error(loc, str(key), "unknown field", "extra_forbidden")
        for key in data
        if key not in WINE_FIELDS
    ]
    known = {k: v for k, v in data.items() if k in WINE_FIELDS}
    try:
        reading = parse_reading({**known, **_READING_ONLY})
    except InvalidReadingError as exc:
        errors += [
            _error(
                loc,
                e["field"],
                e["message"],
                "missing" if e["message"] == "missing" else "value_error",
            )
            for e in exc.errors
        ]
        reading = None
    if errors or reading is None:
        raise WineValidationError(errors)
    return {"wine_type": reading.wine_type, **reading.features()}


def parse_batch(data: Any) -> list[dict[str, Any]]:
    """A JSON array of wines or ``{"wines": [...]}``; every bad wine reported with its index."""
    if isinstance(data, Mapping) and set(data) == {"wines"}:
        data, prefix = data["wines"], ("wines",)
    else:
        prefix = ()
    if not isinstance(data, list) or not data:
        raise WineValidationError(
            [{"loc": ["body", *prefix], "field": "(batch)", "type": "type_error",
              "msg": "expected a non-empty array of wines (or {\"wines\": [...]})"}]
        )  # fmt: skip
    if len(data) > MAX_BATCH:
        raise WineValidationError(
            [{"loc": ["body", *prefix], "field": "(batch)", "type": "too_long",
              "msg": f"at most {MAX_BATCH} wines per request, got {len(data)}"}]
        )  # fmt: skip
    wines, errors = [], []
    for index, item in enumerate(data):
        try:
            wines.append(parse_wine(item, (*prefix, index)))
        except WineValidationError as exc:
            errors += [{**e, "index": index} for e in exc.errors]
    if errors:
        raise WineValidationError(errors)
    return wines


def wine_json_schema() -> dict[str, Any]:
    """OpenAPI schema of one wine, generated from the same bounds the validation uses."""
    properties: dict[str, Any] = {"wine_type": {"type": "string", "enum": list(WINE_TYPES)}}
    for name in FEATURES:
        low, high = PHYSICAL_BOUNDS[name]
        properties[name] = {
            "type": "number",
            "minimum": low,
            "maximum": high,
            "description": UNITS[name],
        }
    return {
        "title": "Wine",
        "type": "object",
        "properties": properties,
        "required": list(WINE_FIELDS),
        "additionalProperties": False,
    }
