"""clean_beers on a hand-computed record and on the whole Punk API dump."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from beer_assets.ingest.clean import (
    CLEAN_COLUMNS,
    SEED_COLUMNS,
    clean_beers,
    column_descriptions,
    parse_first_brewed,
)

GALLON_L = 3.785411784


def _record(**overrides: Any) -> dict[str, Any]:
    """A small schema-shaped record whose derived values are computed by hand in the tests."""
    record: dict[str, Any] = {
        "id": 7,
        "name": "Hand Pale",
        "first_brewed": "03/2012",
        "abv": 5.0,
        "ibu": 45.5,
        "target_fg": 1010,
        "target_og": 1050,
        "ebc": 20,
        "srm": 10.5,
        "ph": None,
        "attenuation_level": 80,
        "volume": {"value": 10, "unit": "litres"},
        "boil_volume": {"value": 5, "unit": "gallons"},
        "method": {
            "mash_temp": [{"temp": {"value": 150, "unit": "fahrenheit"}, "duration": 60}],
            "fermentation": {"temp": {"value": 19, "unit": "celsius"}},
            "twist": None,
        },
        "ingredients": {
            "malt": [
                {"name": "Pale Ale", "amount": {"value": 4, "unit": "kilograms"}},
                {"name": "Crystal 150", "amount": {"value": 500, "unit": "grams"}},
                {"name": "Flaked Oats", "amount": {"value": 0.2, "unit": "kilograms"}},
            ],
            "hops": [
                {"name": "Magnum", "amount": {"value": 20, "unit": "grams"}, "add": "start"},
                {"name": "Cascade", "amount": {"value": 10, "unit": "grams"}, "add": "middle"},
                {"name": "Citra", "amount": {"value": 15, "unit": "grams"}, "add": "Flame Out"},
                {"name": "Mosaic", "amount": {"value": 0.05, "unit": "kilogram"}, "add": "Dry Hop"},
                {"name": "Saaz", "amount": {"value": 5, "unit": "grams"}, "add": "Additions"},
                {
                    "name": "Mango Puree",
                    "amount": {"value": 100, "unit": "grams"},
                    "add": "dry hop",
                },
            ],
            "yeast": "Wyeast 1056 - American Ale™",
        },
    }
    record.update(overrides)
    return record


@pytest.fixture(scope="module")
def hand_row() -> pd.Series:
    frame = clean_beers([_record()])
    assert len(frame) == 1
    return frame.iloc[0]


def test_hand_record_seed_columns_keep_values(hand_row: pd.Series) -> None:
    assert hand_row["id"] == 7 and hand_row["name"] == "Hand Pale"
    assert (hand_row["abv"], hand_row["ibu"], hand_row["target_fg"]) == (5.0, 45.5, 1010.0)
    assert (hand_row["target_og"], hand_row["ebc"], hand_row["srm"]) == (1050.0, 20.0, 10.5)
    assert pd.isna(hand_row["ph"])


def test_hand_record_units_and_dates(hand_row: pd.Series) -> None:
    assert hand_row["volume_l"] == 10.0
    assert hand_row["boil_volume_l"] == pytest.approx(5 * GALLON_L)
    assert hand_row["first_brewed"] == pd.Timestamp("2012-03-01")
    assert hand_row["first_brewed_year"] == 2012
    assert hand_row["mash_temp_c"] == pytest.approx(65.5556, abs=1e-4)  # 150 F
    assert hand_row["fermentation_temp_c"] == 19.0
    assert hand_row["mash_steps"] == 1


def test_hand_record_hops_per_litre_by_stage(hand_row: pd.Series) -> None:
    # 10 L batch: Magnum 20 g start, Cascade 10 g middle, Citra 15 g flame-out,
    # Mosaic 0.05 kg dry hop, Saaz 5 g 'Additions' (unknown); mango puree is not a hop.
    expected = {
        "hop_g_per_l_bittering": 2.0,
        "hop_g_per_l_boil": 1.0,
        "hop_g_per_l_aroma": 1.5,
        "hop_g_per_l_dry_hop": 5.0,
        "hop_g_per_l_unknown": 0.5,
        "hop_g_per_l_mash": 0.0,
        "hop_g_per_l_first_wort": 0.0,
        "hop_g_per_l_hot_side": 4.5,
        "hop_g_per_l_total": 10.0,
        "hop_adjunct_g_per_l": 10.0,
        "alpha_g_per_l_bittering": 0.27,  # 20 g x 13.5 % / 10 L
        "share_unknown_additions": 0.2,
        "boil_minutes": 60.0,
    }
    for column, value in expected.items():
        assert hand_row[column] == pytest.approx(value), column
    assert hand_row["n_hop_additions"] == 5
    assert hand_row["n_unknown_additions"] == 1
    assert hand_row["n_hop_adjuncts"] == 1


def test_hand_record_malt_and_tinseth(hand_row: pd.Series) -> None:
    assert hand_row["malt_kg_per_l"] == pytest.approx(0.47)  # (4 + 0.5 + 0.2) kg / 10 L
    assert hand_row["base_malt_kg_per_l"] == pytest.approx(0.40)
    assert hand_row["specialty_malt_kg_per_l"] == pytest.approx(0.05)
    # OG 1.050: Magnum 13.5 % 60 min 62.279 + Cascade 6 % 30 min 10.636
    # + Citra 12.5 % flame-out (5 min equivalent) 8.622 = 81.538 IBU
    assert hand_row["tinseth_ibu_est"] == pytest.approx(81.538, abs=1e-3)


def test_swapped_gravities_use_the_larger_for_tinseth() -> None:
    normal = clean_beers([_record()]).iloc[0]
    swapped = clean_beers([_record(target_og=1010, target_fg=1050)]).iloc[0]
    assert swapped["target_og"] == 1010  # published value kept
    assert swapped["tinseth_ibu_est"] == pytest.approx(normal["tinseth_ibu_est"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09/2007", pd.Timestamp("2007-09-01")),
        ("2015", pd.Timestamp("2015-01-01")),
        ("13/2015", pd.NaT),
        ("soon", pd.NaT),
        ("", pd.NaT),
        (None, pd.NaT),
    ],
)
def test_parse_first_brewed(text: Any, expected: pd.Timestamp) -> None:
    result = parse_first_brewed(text)
    assert (result is pd.NaT and expected is pd.NaT) or result == expected


def test_missing_volume_gives_nan_not_inf() -> None:
    row = clean_beers([_record(volume={"value": 0, "unit": "litres"})]).iloc[0]
    assert math.isnan(row["hop_g_per_l_total"]) and math.isnan(row["malt_kg_per_l"])
    assert math.isnan(row["tinseth_ibu_est"])


def test_last_version_of_a_duplicated_id_wins() -> None:
    first = _record(id=2, name="Old", abv=4.0)
    other = _record(id=1, name="Other")
    last = _record(id=2, name="New", abv=6.5, first_brewed="2016")
    frame = clean_beers([first, other, last])
    assert frame["id"].tolist() == [1, 2]
    row = frame.set_index("id").loc[2]
    assert (row["name"], row["abv"], row["first_brewed_year"]) == ("New", 6.5, 2016)


def test_empty_input_has_the_schema() -> None:
    frame = clean_beers([])
    assert list(frame.columns) == CLEAN_COLUMNS and len(frame) == 0


@pytest.fixture(scope="module")
def dump_clean(punkapi_beers: list[dict[str, Any]]) -> pd.DataFrame:
    return clean_beers(copy.deepcopy(punkapi_beers))


def test_dump_rows_ids_and_columns(dump_clean: pd.DataFrame) -> None:
    assert len(dump_clean) == 325
    assert dump_clean["id"].is_unique and dump_clean["id"].is_monotonic_increasing
    assert list(dump_clean.columns) == CLEAN_COLUMNS
    assert set(column_descriptions) == set(CLEAN_COLUMNS)
    assert all(column_descriptions[c].strip() for c in CLEAN_COLUMNS)


def test_dump_dtypes_are_stable(dump_clean: pd.DataFrame) -> None:
    dtypes = dump_clean.dtypes.astype(str).to_dict()
    assert dtypes["id"] == "Int64" and dtypes["name"] == "string"
    assert dtypes["first_brewed"] == "datetime64[ns]"
    assert dtypes["first_brewed_year"] == "Int64" and dtypes["n_hop_additions"] == "Int64"
    for column in ["abv", "ibu", "target_fg", "target_og", "ebc", "srm", "ph", "tinseth_ibu_est"]:
        assert dtypes[column] == "float64", column
    assert set(dtypes.values()) <= {"Int64", "string", "float64", "datetime64[ns]"}


def test_dump_seed_columns_equal_the_dump(
    dump_clean: pd.DataFrame, punkapi_beers: list[dict[str, Any]]
) -> None:
    raw = pd.DataFrame(punkapi_beers)[SEED_COLUMNS].sort_values("id").reset_index(drop=True)
    for column in SEED_COLUMNS:
        ours, theirs = dump_clean[column], raw[column]
        assert (ours.isna().to_numpy() == theirs.isna().to_numpy()).all(), column
        mask = theirs.notna().to_numpy()
        if column == "name":
            assert ours[mask].tolist() == theirs[mask].tolist()
        else:
            assert np.array_equal(
                ours[mask].astype("float64").to_numpy(), theirs[mask].astype("float64").to_numpy()
            ), column
    assert int(dump_clean["ibu"].isna().sum()) == 5


def test_dump_has_no_inf_and_sane_features(dump_clean: pd.DataFrame) -> None:
    floats = dump_clean.select_dtypes("float64")
    assert not np.isinf(floats.to_numpy()).any()
    assert dump_clean["volume_l"].eq(20).all() and dump_clean["boil_volume_l"].eq(25).all()
    assert dump_clean["first_brewed"].notna().all()
    assert dump_clean["tinseth_ibu_est"].notna().all()
    # the dump's one 'Additions' is Dark Muscavado sugar: an adjunct, not an unknown hop
    assert dump_clean["n_unknown_additions"].sum() == 0
    assert dump_clean["n_fallback_alpha"].sum() == 0
    assert (floats.filter(like="hop_g_per_l") >= 0).all().all()
    # hops: the estimate tracks published IBU (rank correlation, outliers included)
    corr = dump_clean[["ibu", "tinseth_ibu_est"]].corr(method="spearman").iloc[0, 1]
    assert corr > 0.6
