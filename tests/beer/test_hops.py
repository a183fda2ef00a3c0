"""Hop addition normalisation, alpha-acid lookup and the Tinseth estimate."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from beer_assets.ingest import hops
from beer_assets.ingest.hops import (
    AROMA,
    BITTERING,
    BOIL,
    DRY_HOP,
    FIRST_WORT,
    MASH,
    UNKNOWN,
    WHIRLPOOL_EQUIVALENT_MINUTES,
)

WP = WHIRLPOOL_EQUIVALENT_MINUTES

# Every `add` text in the dump (with its count there) -> (stage, boil minutes, Tinseth minutes)
# for a 60-minute boil.
DUMP_FORMS: list[tuple[str, str, float | None, float]] = [
    ("end", AROMA, 0.0, WP),  # 446
    ("start", BITTERING, 60.0, 60.0),  # 337
    ("dry hop", DRY_HOP, None, 0.0),  # 253
    ("middle", BOIL, 30.0, 30.0),  # 236
    ("Dry Hop", DRY_HOP, None, 0.0),  # 153
    ("0", AROMA, 0.0, WP),  # 90
    ("End", AROMA, 0.0, WP),  # 42
    ("Start", BITTERING, 60.0, 60.0),  # 37
    ("Flame Out", AROMA, 0.0, WP),  # 37
    ("10", BOIL, 10.0, 10.0),  # 33
    ("70", BITTERING, 70.0, 70.0),  # 29
    ("15", BOIL, 15.0, 15.0),  # 25
    ("Middle", BOIL, 30.0, 30.0),  # 20
    ("30", BOIL, 30.0, 30.0),  # 15
    ("90", BITTERING, 90.0, 90.0),  # 14
    ("60", BITTERING, 60.0, 60.0),  # 10
    ("Whirlpool", AROMA, 0.0, WP),  # 5
    ("Wood Ageing", DRY_HOP, None, 0.0),  # 5
    ("Kettle", BOIL, 30.0, 30.0),  # 5
    ("65", BITTERING, 65.0, 65.0),  # 5
    ("fv", DRY_HOP, None, 0.0),  # 4
    ("whirlpool", AROMA, 0.0, WP),  # 4
    ("Mash", MASH, None, hops.MASH_EQUIVALENT_MINUTES),  # 3
    ("Flame out", AROMA, 0.0, WP),  # 2
    ("FV", DRY_HOP, None, 0.0),  # 1
    ("secondary", DRY_HOP, None, 0.0),  # 1
    ("maturation", DRY_HOP, None, 0.0),  # 1
    ("Additions", UNKNOWN, None, 0.0),  # 1
    ("First Wort Hops", FIRST_WORT, 60.0, 60.0),  # 1
    ("FV Addition", DRY_HOP, None, 0.0),  # 1
    ("45", BITTERING, 45.0, 45.0),  # 1
]


@pytest.mark.parametrize(("add", "stage", "boil", "effective"), DUMP_FORMS)
def test_dump_add_forms_map_as_documented(
    add: str, stage: str, boil: float | None, effective: float
) -> None:
    addition = hops.normalise_addition(add)
    assert (addition.stage, addition.boil_minutes, addition.effective_minutes) == (
        stage,
        boil,
        effective,
    )
    assert addition.raw == add
    assert addition.known == (stage != UNKNOWN)


@pytest.mark.parametrize(
    ("add", "stage"),
    [
        ("  DRY-HOP ", DRY_HOP),
        ("dry hop day 3", DRY_HOP),
        ("Flame-out", AROMA),
        ("flameout", AROMA),
        ("60 min", BITTERING),
        ("20 mins", BOIL),
        ("Fermenter", DRY_HOP),
    ],
)
def test_spelling_variants(add: str, stage: str) -> None:
    assert hops.normalise_addition(add).stage == stage


@pytest.mark.parametrize("add", ["Additions", "", None, "banana", "🍺", 42.5j])
def test_unknown_forms_never_raise(add: Any) -> None:
    addition = hops.normalise_addition(add)
    assert addition.stage == UNKNOWN
    assert addition.boil_minutes is None and addition.effective_minutes == 0.0


def test_boil_length_drives_start_and_middle() -> None:
    assert hops.normalise_addition("start", boil_minutes=90).boil_minutes == 90
    assert hops.normalise_addition("middle", boil_minutes=90).boil_minutes == 45
    assert hops.normalise_addition("First Wort Hops", boil_minutes=75).effective_minutes == 75


def test_infer_boil_minutes() -> None:
    assert hops.infer_boil_minutes(["90", "30", "0", "Dry Hop"]) == 90
    assert hops.infer_boil_minutes(["start", "middle", "end"]) == hops.DEFAULT_BOIL_MINUTES
    assert hops.infer_boil_minutes(["10", "0"]) == hops.DEFAULT_BOIL_MINUTES


def test_count_stages_counts_unknown() -> None:
    counts = hops.count_stages(["start", "Additions", "???", "dry hop"])
    assert counts == Counter({BITTERING: 1, UNKNOWN: 2, DRY_HOP: 1})


def test_every_add_form_in_the_dump_is_understood(punkapi_beers: list[dict[str, Any]]) -> None:
    """Only 'Additions' (1 addition, a sugar) is left unknown; all other texts map."""
    counts = Counter(hop["add"] for beer in punkapi_beers for hop in beer["ingredients"]["hops"])
    expected = {add for add, *_ in DUMP_FORMS}
    assert set(counts) == expected
    unknown = {add for add in counts if not hops.normalise_addition(add).known}
    assert unknown == {"Additions"}


def test_tinseth_hand_computed() -> None:
    # 28 g at 10 % AA, 60 min, 20 L, OG 1.050:
    # bigness 1.65 * 0.000125**0.05 = 1.052755; time (1 - e**-2.4) / 4.15 = 0.219104
    # utilisation 0.230664 * 2800 mg / 20 L = 32.293 IBU
    assert hops.tinseth_ibu(28, 10, 60, 20, 1.050) == pytest.approx(32.293, abs=1e-3)
    assert hops.tinseth_ibu(28, 10, 60, 20, 1050) == pytest.approx(32.293, abs=1e-3)
    assert hops.tinseth_ibu(28, 10, 0, 20, 1050) == 0.0
    # doubling the volume halves the IBU; higher gravity lowers utilisation
    assert hops.tinseth_ibu(28, 10, 60, 40, 1050) == pytest.approx(32.293 / 2, abs=1e-3)
    assert hops.tinseth_ibu(28, 10, 60, 20, 1090) < hops.tinseth_ibu(28, 10, 60, 20, 1050)


@pytest.mark.parametrize("volume", [0, -1, None])
def test_tinseth_bad_volume_is_nan(volume: Any) -> None:
    assert math.isnan(hops.tinseth_ibu(28, 10, 60, volume, 1050))


@pytest.mark.parametrize(
    ("name", "key", "alpha", "is_hop", "extract", "fallback"),
    [
        ("Citra", "citra", 12.5, True, False, False),
        ("CITRA™", "citra", 12.5, True, False, False),
        ("Simcoe®", "simcoe", 13.0, True, False, False),
        ("Hallertauer Mittelfrüh", "hallertauer mittelfruh", 4.0, True, False, False),
        ("Mt.Hood", "mt hood", 5.5, True, False, False),
        ("Columbus Extract", "columbus", hops.EXTRACT_ALPHA_ACID_PCT, True, True, False),
        ("Columbus (extract)", "columbus", hops.EXTRACT_ALPHA_ACID_PCT, True, True, False),
        ("C02 Extract", "c02 extract", hops.EXTRACT_ALPHA_ACID_PCT, True, True, False),
        ("Bramling Cross/ First Gold", "bramling cross first gold", 7.0, True, False, False),
        ("Mango Puree", "mango puree", 0.0, False, False, False),
        ("Vanilla Extract", "vanilla extract", 0.0, False, False, False),
        ("Mandarina Bavaria", "mandarina bavaria", 8.5, True, False, False),
        ("Unobtanium", "unobtanium", hops.DEFAULT_ALPHA_ACID_PCT, True, False, True),
    ],
)
def test_resolve_variety(
    name: str, key: str, alpha: float, is_hop: bool, extract: bool, fallback: bool
) -> None:
    variety = hops.resolve_variety(name)
    assert (variety.key, variety.is_hop, variety.is_extract, variety.fallback) == (
        key,
        is_hop,
        extract,
        fallback,
    )
    assert variety.alpha_acid_pct == pytest.approx(alpha)


def test_every_hop_in_the_dump_has_an_alpha_acid(punkapi_beers: list[dict[str, Any]]) -> None:
    names = {hop["name"] for beer in punkapi_beers for hop in beer["ingredients"]["hops"]}
    fallbacks = sorted(n for n in names if hops.resolve_variety(n).fallback)
    assert fallbacks == []


def test_amount_grams_units() -> None:
    assert hops.amount_grams({"value": 1, "unit": "kilogram"}) == 1000
    assert hops.amount_grams({"value": 2.5, "unit": "grams"}) == 2.5
    assert hops.amount_grams({"value": 1, "unit": "oz"}) == pytest.approx(28.3495, abs=1e-4)
    assert math.isnan(hops.amount_grams({"value": 1, "unit": "total"}))
    assert math.isnan(hops.amount_grams(None))


def test_hop_profile_by_stage_and_estimate() -> None:
    recipe = [
        {"name": "Magnum", "amount": {"value": 20, "unit": "grams"}, "add": "70"},
        {"name": "Cascade", "amount": {"value": 10, "unit": "grams"}, "add": "10"},
        {"name": "Citra", "amount": {"value": 30, "unit": "grams"}, "add": "Dry Hop"},
        {"name": "Honey", "amount": {"value": 0.4, "unit": "kilograms"}, "add": "Flame Out"},
        {"name": "Saaz", "amount": {"value": 5, "unit": "grams"}, "add": "Additions"},
    ]
    profile = hops.hop_profile(recipe, volume_l=20, og=1060)
    assert profile.boil_minutes == 70
    assert profile.grams_by_stage[BITTERING] == 20
    assert profile.grams_by_stage[BOIL] == 10
    assert profile.grams_by_stage[DRY_HOP] == 30
    assert profile.grams_by_stage[UNKNOWN] == 5
    assert profile.grams_by_stage[AROMA] == 0  # honey is an adjunct, not a hop
    assert (profile.n_additions, profile.n_unknown_additions, profile.n_adjuncts) == (4, 1, 1)
    assert profile.adjunct_grams == 400
    assert profile.unknown_adds == ["Additions"]
    expected = hops.tinseth_ibu(20, 13.5, 70, 20, 1060) + hops.tinseth_ibu(10, 6.0, 10, 20, 1060)
    assert profile.tinseth_ibu == pytest.approx(expected)
    assert math.isnan(hops.hop_profile(recipe, volume_l=20, og=math.nan).tinseth_ibu)
