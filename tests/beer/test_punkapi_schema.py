"""Schema validation: all real records pass, planted defects are named by field."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beer_assets.punkapi.schema import (
    BEER_V2_REQUIRED_FIELDS,
    DumpError,
    load_dump,
    validate_beer,
)

Beer = dict[str, Any]


def test_all_real_records_are_valid(punkapi_beers: list[Beer]) -> None:
    problems = {beer["id"]: validate_beer(beer) for beer in punkapi_beers}
    assert {beer_id: p for beer_id, p in problems.items() if p} == {}
    assert sorted(problems) == list(range(1, 326))


def test_required_fields_match_the_real_records(punkapi_beers: list[Beer]) -> None:
    assert set(BEER_V2_REQUIRED_FIELDS) == set(punkapi_beers[0])
    assert all(set(beer) == set(BEER_V2_REQUIRED_FIELDS) for beer in punkapi_beers)


def _set(path: str, value: object) -> Callable[[Beer], None]:
    """Mutator that sets a dotted path; ``[n]`` indexes lists."""

    def mutate(beer: Beer) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        target: Any = beer
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(key: str) -> Callable[[Beer], None]:
    return lambda beer: beer.pop(key)


PLANTED = [
    ("negative abv", _set("abv", -1.0), "abv: negative"),
    ("missing id", _delete("id"), "id: missing"),
    ("string abv", _set("abv", "x"), "abv: expected a number, got 'x'"),
    (
        "negative hop amount",
        _set("ingredients.hops[2].amount.value", -5),
        "ingredients.hops[2].amount.value: negative",
    ),
    (
        "string hop amount",
        _set("ingredients.hops[0].amount.value", "lots"),
        "ingredients.hops[0].amount.value: expected a number, got 'lots'",
    ),
    (
        "hop amount without unit",
        lambda beer: beer["ingredients"]["hops"][1]["amount"].pop("unit"),
        "ingredients.hops[1].amount.unit: missing",
    ),
    (
        "hop add not a string",
        _set("ingredients.hops[0].add", 5),
        "ingredients.hops[0].add: expected a string, got 5",
    ),
    (
        "negative malt amount",
        _set("ingredients.malt[1].amount.value", -0.2),
        "ingredients.malt[1].amount.value: negative",
    ),
    ("hops not a list", _set("ingredients.hops", {}), "ingredients.hops: expected a list, got {}"),
    ("abv of 100", _set("abv", 100), "abv: must be below 100 (percent alcohol), got 100"),
    ("NaN abv", _set("abv", math.nan), "abv: expected a number, got nan"),
    ("boolean abv", _set("abv", True), "abv: expected a number, got True"),
    ("zero id", _set("id", 0), "id: must be a positive integer, got 0"),
    ("float id", _set("id", 1.5), "id: expected an integer, got 1.5"),
    ("empty name", _set("name", "  "), "name: empty"),
    ("string ibu", _set("ibu", "high"), "ibu: expected a number, got 'high'"),
    ("negative ph", _set("ph", -3), "ph: negative"),
    ("string target_og", _set("target_og", "1044"), "target_og: expected a number, got '1044'"),
    ("zero volume", _set("volume.value", 0), "volume.value: must be greater than 0"),
    (
        "boil volume unit not a string",
        _set("boil_volume.unit", None),
        "boil_volume.unit: expected a string, got None",
    ),
    (
        "bad first_brewed",
        _set("first_brewed", "2007-09"),
        "first_brewed: expected 'MM/YYYY' or 'YYYY', got '2007-09'",
    ),
    ("missing ingredients", _delete("ingredients"), "ingredients: missing"),
    (
        "food pairing not strings",
        _set("food_pairing[1]", 3),
        "food_pairing[1]: expected a string, got 3",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [pytest.param(mutate, reason, id=name) for name, mutate, reason in PLANTED],
)
def test_planted_defect_is_reported_by_field(
    punkapi_beers: list[Beer], mutate: Callable[[Beer], None], reason: str
) -> None:
    beer = copy.deepcopy(punkapi_beers[0])  # Buzz: 3 malts, 5 hops, all fields set
    mutate(beer)
    assert validate_beer(beer) == [reason]


@pytest.mark.parametrize("field", ["ibu", "ebc", "srm", "ph", "target_fg", "image_url"])
def test_nullable_fields_accept_null(punkapi_beers: list[Beer], field: str) -> None:
    beer = copy.deepcopy(punkapi_beers[0])
    beer[field] = None
    assert validate_beer(beer) == []


@pytest.mark.parametrize("field", ["abv", "id", "name", "volume", "ingredients"])
def test_required_fields_reject_null(punkapi_beers: list[Beer], field: str) -> None:
    beer = copy.deepcopy(punkapi_beers[0])
    beer[field] = None
    reasons = validate_beer(beer)
    assert len(reasons) == 1 and reasons[0].startswith(f"{field}: expected")


def test_every_problem_is_reported_at_once(punkapi_beers: list[Beer]) -> None:
    beer = copy.deepcopy(punkapi_beers[0])
    beer["abv"] = -1
    del beer["name"]
    beer["ingredients"]["hops"][4]["attribute"] = None
    assert validate_beer(beer) == [
        "name: missing",
        "abv: negative",
        "ingredients.hops[4].attribute: expected a string, got None",
    ]


@pytest.mark.parametrize("record", [None, [], "beer", 42])
def test_non_object_record_is_rejected(record: object) -> None:
    reasons = validate_beer(record)
    assert reasons == [f"record: expected an object, got {record!r}"]


def test_load_dump_returns_records_sorted_by_id(tmp_path: Path) -> None:
    path = tmp_path / "beers.json"
    path.write_text(json.dumps([{"id": 2}, {"id": 1}]))
    assert [beer["id"] for beer in load_dump(path)] == [1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "beer dump not found"),
        ("[{", "cannot read beer dump"),
        ('{"id": 1}', "expected a JSON array"),
        ('[{"id": 1}, {"name": "x"}]', "item 1 has no integer id"),
        ('[{"id": 1}, {"id": 1}]', "duplicate id 1"),
    ],
)
def test_load_dump_rejects_bad_dumps(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "beers.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DumpError, match=message):
        load_dump(path)
