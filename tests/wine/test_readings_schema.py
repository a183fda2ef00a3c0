"""Validation of barrel readings: every bad field named, numbers only, physical bounds.

Messages are pydantic's (the reading model is generated from ``PHYSICAL_BOUNDS``), with the
numbers-only rule's own explanation."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.wine.conftest import DROP, reading
from wine_assets.features import FEATURES, read_uci
from wine_assets.readings.schema import (
    NUMERIC_FIELDS,
    PHYSICAL_BOUNDS,
    InvalidReadingError,
    Reading,
    parse_reading,
)


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(InvalidReadingError) as info:
        parse_reading(data)  # type: ignore[arg-type]
    return {e["field"]: e["message"] for e in info.value.errors}


def test_valid_reading_parses_to_floats() -> None:
    r = parse_reading(
        reading(free_sulfur_dioxide=np.int64(11), alcohol=Decimal("9.4"), ph=np.float64(3.5))
    )
    assert isinstance(r, Reading)
    assert r.barrel_id == "barrel-0001" and r.wine_type == "red"
    assert r.free_sulfur_dioxide == 11.0 and type(r.free_sulfur_dioxide) is float
    assert r.alcohol == 9.4 and type(r.alcohol) is float
    assert r.ph == 3.5 and type(r.ph) is float
    assert r.seq is None and r.updated_at is None
    assert r.features() == {f: getattr(r, f) for f in FEATURES}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.ph = 3.0  # type: ignore[misc]


def test_store_assigned_fields_are_kept() -> None:
    r = parse_reading(reading(seq=7, updated_at="2024-01-01T00:00:00+00:00"))
    assert (r.seq, r.updated_at) == (7, "2024-01-01T00:00:00+00:00")
    assert parse_reading(r) == r
    assert "seq" in errors_of(reading(seq=-1))
    assert "seq" in errors_of(reading(seq=True))


def test_numeric_strings_are_rejected_with_the_reason() -> None:
    errors = errors_of(reading(ph="3.51", alcohol="twelve"))
    assert "numeric string" in errors["ph"] and "'3.51'" in errors["ph"]
    assert "old system" in errors["ph"]
    assert "expected a number" in errors["alcohol"]


@pytest.mark.parametrize("value", [True, np.True_, None, [3.5], {"N": "3.5"}])
def test_non_numbers_are_rejected(value: object) -> None:
    assert "expected a number" in errors_of(reading(ph=value))["ph"]


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("sNaN"), 10**400]
)
def test_non_finite_numbers_are_rejected(value: object) -> None:
    assert "finite" in errors_of(reading(density=value))["density"]


@pytest.mark.parametrize("name", NUMERIC_FIELDS)
def test_every_numeric_field_is_bounded(name: str) -> None:
    low, high = PHYSICAL_BOUNDS[name]
    parse_reading(reading(**{name: low}))
    parse_reading(reading(**{name: high}))
    assert errors_of(reading(**{name: low - 0.001}))[name] == (
        f"Input should be greater than or equal to {low:g}"
    )
    assert errors_of(reading(**{name: high + 0.001}))[name] == (
        f"Input should be less than or equal to {high:g}"
    )


def test_missing_and_unknown_fields() -> None:
    errors = errors_of(reading(alcohol=DROP, barrel_id="b", quality=6, **{"pH": 3.2}))
    assert errors == {
        "alcohol": "Field required",
        "quality": "Extra inputs are not permitted",
        "pH": "Extra inputs are not permitted",
    }


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("", "at least 1 character"),
        ("x" * 65, "at most 64 characters"),
        ("barrel 1", "should match pattern"),
        ("barrel/1", "should match pattern"),
        ("barrel-1\n", "should match pattern"),
        (17, "valid string"),
    ],
)
def test_barrel_id_rules(value: object, needle: str) -> None:
    assert needle in errors_of(reading(barrel_id=value))["barrel_id"]


def test_barrel_id_limits_accept() -> None:
    assert parse_reading(reading(barrel_id="A_b-9" + "x" * 59)).barrel_id.startswith("A_b-9")


def test_wine_type_must_be_known() -> None:
    assert errors_of(reading(wine_type="rose"))["wine_type"] == "Input should be 'red' or 'white'"


def test_error_names_every_bad_field_and_the_barrel() -> None:
    with pytest.raises(InvalidReadingError) as info:
        parse_reading(reading("barrel-0042", ph=9.0, alcohol="12", chlorides=math.nan))
    message = str(info.value)
    assert "barrel-0042" in message
    for field in ("ph", "alcohol", "chlorides"):
        assert f"{field}:" in message
    assert {e["field"] for e in info.value.errors} == {"ph", "alcohol", "chlorides"}
    assert isinstance(info.value, ValueError)


def test_not_a_mapping() -> None:
    assert "(reading)" in errors_of(["not", "a", "mapping"])


def test_reading_instances_are_revalidated() -> None:
    bad = dataclasses.replace(parse_reading(reading()), ph=12.0)
    assert "ph" in errors_of(bad)


def test_bounds_contain_uci_data_and_system_b_scenarios(data_dir: Path) -> None:
    """Real wines and system B's noisy/corrupted batches must be storable."""
    assert set(PHYSICAL_BOUNDS) == set(NUMERIC_FIELDS)
    uci = read_uci(data_dir)
    for name in FEATURES:
        low, high = PHYSICAL_BOUNDS[name]
        assert low <= uci[name].min() and uci[name].max() + 0.15 <= high, name
    assert uci["volatile_acidity"].max() + 3 <= PHYSICAL_BOUNDS["volatile_acidity"][1]
    assert uci["citric_acid"].max() + 5 <= PHYSICAL_BOUNDS["citric_acid"][1]
    assert PHYSICAL_BOUNDS["alcohol"][0] <= 20 <= PHYSICAL_BOUNDS["alcohol"][1]
