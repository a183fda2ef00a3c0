"""Validation of Punk API v2 beer records and loading of a beer dump.

The platform lands raw API pages before transforming them, so validation is a separate,
explicit step that reports *every* problem of a record as a readable reason naming the field
(``"ingredients.hops[2].amount.value: negative"``) instead of raising on the first one.
The rules are strict about types and ranges, but follow the real v2 data where it has gaps
(e.g. ``ibu``, ``target_fg`` or ``yeast`` may be ``null``) so that all 325 published records pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "BEER_V2_REQUIRED_FIELDS",
    "DumpError",
    "is_number",
    "load_dump",
    "validate_beer",
]

# "MM/YYYY" (most records) or "YYYY" (91 of the 325 published records).
_FIRST_BREWED = re.compile(r"^(?:(0[1-9]|1[0-2])/)?(\d{4})$")

Check = Callable[[Any, str], list[str]]


def is_number(value: object) -> bool:
    """True for finite JSON numbers; bools are excluded because ``True`` is an ``int``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _got(value: object) -> str:
    """Short repr of an offending value so reasons stay one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, path: str, *, minimum: float | None = None) -> list[str]:
    if not is_number(value):
        return [f"{path}: expected a number, got {_got(value)}"]
    if minimum is not None and value < minimum:
        return [f"{path}: negative" if minimum == 0 else f"{path}: must be >= {minimum}"]
    return []


def _non_negative(value: Any, path: str) -> list[str]:
    return _number(value, path, minimum=0)


def _nullable(check: Check) -> Check:
    """Wrap a check so that ``null`` passes (fields the real data leaves empty)."""

    def nullable_check(value: Any, path: str) -> list[str]:
        return [] if value is None else check(value, path)

    return nullable_check


def _string(value: Any, path: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{path}: expected a string, got {_got(value)}"]
    return []


def _non_empty_string(value: Any, path: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{path}: expected a string, got {_got(value)}"]
    if not value.strip():
        return [f"{path}: empty"]
    return []


def _object(value: Any, path: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: expected an object, got {_got(value)}"]
    return []


def _fields(value: Any, path: str, checks: Mapping[str, Check]) -> list[str]:
    """Check an object's listed fields; a missing key is reported as ``<path>.<key>: missing``."""
    problems = _object(value, path)
    if problems:
        return problems
    prefix = f"{path}." if path else ""
    for key, check in checks.items():
        if key not in value:
            problems.append(f"{prefix}{key}: missing")
        else:
            problems.extend(check(value[key], f"{prefix}{key}"))
    return problems


def _list_of(check: Check) -> Check:
    def list_check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {_got(value)}"]
        problems: list[str] = []
        for index, item in enumerate(value):
            problems.extend(check(item, f"{path}[{index}]"))
        return problems

    return list_check


def _id(value: Any, path: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{path}: expected an integer, got {_got(value)}"]
    if value <= 0:
        return [f"{path}: must be a positive integer, got {value}"]
    return []


def _abv(value: Any, path: str) -> list[str]:
    problems = _non_negative(value, path)
    if not problems and value >= 100:
        problems.append(f"{path}: must be below 100 (percent alcohol), got {value}")
    return problems


def _first_brewed(value: Any, path: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{path}: expected a string, got {_got(value)}"]
    if not _FIRST_BREWED.match(value):
        return [f"{path}: expected 'MM/YYYY' or 'YYYY', got {_got(value)}"]
    return []


def _quantity(*, positive: bool) -> Check:
    """``{value, unit}`` pairs: volumes must be > 0, ingredient amounts >= 0."""

    def value_check(value: Any, path: str) -> list[str]:
        problems = _non_negative(value, path)
        if not problems and positive and value == 0:
            problems.append(f"{path}: must be greater than 0")
        return problems

    def quantity_check(value: Any, path: str) -> list[str]:
        return _fields(value, path, {"value": value_check, "unit": _non_empty_string})

    return quantity_check


def _temperature(value: Any, path: str) -> list[str]:
    return _fields(value, path, {"value": _nullable(_number), "unit": _string})


def _mash_step(value: Any, path: str) -> list[str]:
    return _fields(value, path, {"temp": _temperature, "duration": _nullable(_non_negative)})


def _method(value: Any, path: str) -> list[str]:
    return _fields(
        value,
        path,
        {
            "mash_temp": _list_of(_mash_step),
            "fermentation": lambda v, p: _fields(v, p, {"temp": _temperature}),
            "twist": _nullable(_string),
        },
    )


_AMOUNT = _quantity(positive=False)


def _malt(value: Any, path: str) -> list[str]:
    return _fields(value, path, {"name": _non_empty_string, "amount": _AMOUNT})


def _hop(value: Any, path: str) -> list[str]:
    return _fields(
        value,
        path,
        {"name": _non_empty_string, "amount": _AMOUNT, "add": _string, "attribute": _string},
    )


def _ingredients(value: Any, path: str) -> list[str]:
    return _fields(
        value,
        path,
        {"malt": _list_of(_malt), "hops": _list_of(_hop), "yeast": _nullable(_string)},
    )


_BEER_CHECKS: dict[str, Check] = {
    "id": _id,
    "name": _non_empty_string,
    "tagline": _string,
    "first_brewed": _first_brewed,
    "description": _string,
    "image_url": _nullable(_string),
    "abv": _abv,
    "ibu": _nullable(_non_negative),
    # The real data has one record each with a null target_fg / target_og / attenuation_level.
    "target_fg": _nullable(_non_negative),
    "target_og": _nullable(_non_negative),
    "ebc": _nullable(_non_negative),
    "srm": _nullable(_non_negative),
    "ph": _nullable(_non_negative),
    "attenuation_level": _nullable(_non_negative),
    "volume": _quantity(positive=True),
    "boil_volume": _quantity(positive=True),
    "method": _method,
    "ingredients": _ingredients,
    "food_pairing": _list_of(_string),
    "brewers_tips": _string,
    "contributed_by": _string,
}

#: Top-level fields every v2 beer record carries (all 325 published records have all of them).
BEER_V2_REQUIRED_FIELDS: tuple[str, ...] = tuple(_BEER_CHECKS)


def validate_beer(record: object) -> list[str]:
    """Return every reason ``record`` is not a valid v2 beer; an empty list means valid.

    Unknown extra fields are allowed so that additive API changes do not reject whole pages.
    """
    if not isinstance(record, Mapping):
        return [f"record: expected an object, got {_got(record)}"]
    return _fields(record, "", _BEER_CHECKS)


class DumpError(ValueError):
    """A beer dump file is missing or is not a JSON array of objects with unique integer ids."""


def load_dump(path: str | Path) -> list[dict[str, Any]]:
    """Load a dump (JSON array of beers) sorted by id, the order the real API pages in.

    Only the shape needed to serve it is checked here; record contents are left to
    :func:`validate_beer` so a dump with a bad record can still be served for tests.
    """
    dump_path = Path(path)
    try:
        data = json.loads(dump_path.read_bytes())
    except FileNotFoundError as exc:
        raise DumpError(
            f"beer dump not found: {dump_path} (setting PUNK_API_URL, default "
            "$PLATFORM_DATA_DIR/punkapi/beers.json). Fix: `make data` fetches it (npm package "
            "punkapi-db@2.6.0), or point PUNK_API_URL at a dump or at the API"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DumpError(f"cannot read beer dump {dump_path}: {exc}") from exc
    if not isinstance(data, list):
        raise DumpError(f"{dump_path}: expected a JSON array, got {type(data).__name__}")
    seen: set[int] = set()
    for index, item in enumerate(data):
        beer_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(beer_id, bool) or not isinstance(beer_id, int):
            raise DumpError(f"{dump_path}: item {index} has no integer id")
        if beer_id in seen:
            raise DumpError(f"{dump_path}: duplicate id {beer_id}")
        seen.add(beer_id)
    return sorted(data, key=lambda beer: beer["id"])
