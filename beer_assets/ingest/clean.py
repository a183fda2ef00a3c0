"""Flatten Punk API beer records into one typed row per beer for modelling and the catalogue.

The nine columns the original IBU model trained on (id, name, abv, ibu, target_fg, target_og,
ebc, srm, ph) keep their raw values (nulls stay null) so old and new models can be compared on
the same numbers; everything else is derived from the nested volume, method and ingredients
fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from beer_assets.ingest import hops as hops_mod

SEED_COLUMNS: list[str] = [
    "id",
    "name",
    "abv",
    "ibu",
    "target_fg",
    "target_og",
    "ebc",
    "srm",
    "ph",
]

_HOP_STAGE_COLUMNS = {stage: f"hop_g_per_l_{stage}" for stage in hops_mod.STAGES}

#: Column -> pandas dtype, in output order.
_SCHEMA: dict[str, str] = {
    "id": "Int64",
    "name": "string",
    "abv": "float64",
    "ibu": "float64",
    "target_fg": "float64",
    "target_og": "float64",
    "ebc": "float64",
    "srm": "float64",
    "ph": "float64",
    "attenuation_level": "float64",
    "volume_l": "float64",
    "boil_volume_l": "float64",
    "first_brewed": "datetime64[ns]",
    "first_brewed_year": "Int64",
    "mash_temp_c": "float64",
    "mash_steps": "Int64",
    "fermentation_temp_c": "float64",
    "boil_minutes": "float64",
    **{col: "float64" for col in _HOP_STAGE_COLUMNS.values()},
    "hop_g_per_l_hot_side": "float64",
    "hop_g_per_l_total": "float64",
    "alpha_g_per_l_bittering": "float64",
    "alpha_g_per_l_hot_side": "float64",
    "n_hop_additions": "Int64",
    "n_unknown_additions": "Int64",
    "share_unknown_additions": "float64",
    "n_extract_additions": "Int64",
    "n_fallback_alpha": "Int64",
    "n_hop_adjuncts": "Int64",
    "hop_adjunct_g_per_l": "float64",
    "malt_kg_per_l": "float64",
    "base_malt_kg_per_l": "float64",
    "specialty_malt_kg_per_l": "float64",
    "tinseth_ibu_est": "float64",
}

#: Output columns in their stable order.
CLEAN_COLUMNS: list[str] = list(_SCHEMA)

column_descriptions: dict[str, str] = {
    "id": "Punk API beer id (unique; last version wins when duplicated).",
    "name": "Beer name as published.",
    "abv": "Alcohol by volume, %.",
    "ibu": "Published International Bitterness Units (target; null for 5 beers).",
    "target_fg": "Target final gravity, SG x 1000 (e.g. 1010).",
    "target_og": "Target original gravity, SG x 1000 (e.g. 1044).",
    "ebc": "Colour, EBC.",
    "srm": "Colour, SRM.",
    "ph": "Target pH.",
    "attenuation_level": "Attenuation, %.",
    "volume_l": "Batch volume in litres (converted from the record's unit).",
    "boil_volume_l": "Boil volume in litres (converted from the record's unit).",
    "first_brewed": "First brew date: 'MM/YYYY' -> first of month, 'YYYY' -> 1 Jan; else NaT.",
    "first_brewed_year": "Year of first_brewed.",
    "mash_temp_c": "Mash temperature of the first mash step, Celsius.",
    "mash_steps": "Number of mash temperature steps.",
    "fermentation_temp_c": "Fermentation temperature, Celsius.",
    "boil_minutes": "Boil length: longest numeric hop addition if >= 45 min, else 60.",
    **{
        col: f"Hop grams per litre of batch added at stage '{stage}' (adjuncts excluded)."
        for stage, col in _HOP_STAGE_COLUMNS.items()
    },
    "hop_g_per_l_hot_side": "Hop g/L added before fermentation (mash to flame-out).",
    "hop_g_per_l_total": "All hop g/L (adjuncts such as fruit or spices excluded).",
    "alpha_g_per_l_bittering": "Alpha-acid g/L in mash, first-wort and bittering additions.",
    "alpha_g_per_l_hot_side": "Alpha-acid g/L in all additions before fermentation.",
    "n_hop_additions": "Number of hop additions (adjuncts excluded).",
    "n_unknown_additions": "Hop additions whose 'add' text was not understood.",
    "share_unknown_additions": "n_unknown_additions / n_hop_additions (0 if no hops).",
    "n_extract_additions": "Hop additions that are CO2 hop extract.",
    "n_fallback_alpha": "Hop additions whose variety had no alpha-acid entry (default used).",
    "n_hop_adjuncts": "Non-hop items listed under hops (fruit, spices, wood, sugar...).",
    "hop_adjunct_g_per_l": "Grams per litre of those non-hop items.",
    "malt_kg_per_l": "All fermentables listed as malt, kg per litre of batch.",
    "base_malt_kg_per_l": "Base malts (pale, pilsner, Maris Otter, Munich, wheat...), kg/L.",
    "specialty_malt_kg_per_l": "Crystal, roasted, chocolate, smoked and similar malts, kg/L.",
    "tinseth_ibu_est": "Tinseth IBU estimate from hop amounts, typical alpha acids and timing "
    "(gravity: the larger of target_og/target_fg, as 13 recipes have them swapped).",
}

_LITRES_PER_UNIT = {
    "litres": 1.0,
    "litre": 1.0,
    "liters": 1.0,
    "liter": 1.0,
    "l": 1.0,
    "millilitres": 0.001,
    "milliliters": 0.001,
    "ml": 0.001,
    "gallons": 3.785411784,  # US gallons, as used by US homebrew tools
    "gallon": 3.785411784,
    "gal": 3.785411784,
    "us gallons": 3.785411784,
    "imperial gallons": 4.54609,
    "hectolitres": 100.0,
    "hl": 100.0,
}

_SPECIALTY_MALT = (
    "crystal",
    "cara",
    "chocolate",
    "black",
    "roast",
    "amber",
    "brown",
    "special",
    "dextrin",
    "smoked",
    "peat",
    "acidulated",
    "drc",
    "double roasted",
)
_BASE_MALT = (
    "pale",
    "maris otter",
    "pilsner",
    "lager",
    "munich",
    "vienna",
    "wheat",
    "spelt",
    "rye",
    "grano",
)


def clean_beers(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per beer id (the last record wins for repeated ids), ordered by id.

    Records are assumed schema-valid; missing nested pieces give nulls, never errors.
    """
    latest: dict[Any, Mapping[str, Any]] = {}
    for record in records:
        latest.pop(record["id"], None)
        latest[record["id"]] = record
    rows = [_row(latest[key]) for key in sorted(latest)]
    frame = pd.DataFrame(rows, columns=CLEAN_COLUMNS)
    return _apply_schema(frame)


def _apply_schema(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast every column to its declared dtype (nullable ints, float64, string)."""
    out = {}
    for col, dtype in _SCHEMA.items():
        series = frame[col]
        if dtype == "float64":
            series = pd.to_numeric(series, errors="coerce").astype("float64")
            series = series.replace([np.inf, -np.inf], np.nan)
        elif dtype == "Int64":
            series = pd.to_numeric(series, errors="coerce").astype("Int64")
        elif dtype.startswith("datetime64"):
            series = pd.to_datetime(series, errors="coerce").astype(dtype)
        else:
            series = series.astype(dtype)
        out[col] = series
    return pd.DataFrame(out, columns=CLEAN_COLUMNS).reset_index(drop=True)


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten one record into the clean columns."""
    row: dict[str, Any] = {col: record.get(col) for col in SEED_COLUMNS}
    volume_l = volume_litres(record.get("volume"))
    first = parse_first_brewed(record.get("first_brewed"))
    row.update(
        attenuation_level=record.get("attenuation_level"),
        volume_l=volume_l,
        boil_volume_l=volume_litres(record.get("boil_volume")),
        first_brewed=first,
        first_brewed_year=None if first is pd.NaT else first.year,
    )
    row.update(_method_features(record.get("method") or {}))
    ingredients = record.get("ingredients") or {}
    og = original_gravity(record.get("target_og"), record.get("target_fg"))
    row.update(_hop_features(ingredients.get("hops"), volume_l, og))
    row.update(_malt_features(ingredients.get("malt"), volume_l))
    return row


def volume_litres(volume: Mapping[str, Any] | None) -> float:
    """``{"value": 20, "unit": "litres"}`` -> 20.0; NaN for missing value or unknown unit."""
    if not volume or volume.get("value") is None:
        return math.nan
    unit = str(volume.get("unit") or "").strip().lower()
    factor = _LITRES_PER_UNIT.get(unit)
    return math.nan if factor is None else float(volume["value"]) * factor


_MONTH_YEAR = re.compile(r"(\d{1,2})/(\d{4})")
_YEAR = re.compile(r"(\d{4})")


def parse_first_brewed(text: Any) -> pd.Timestamp:
    """'MM/YYYY' -> first of that month, 'YYYY' -> 1 January; anything else NaT.

    Month precision is all the source has, so the first day is a convention, not a fact.
    """
    if not isinstance(text, str):
        return pd.NaT
    text = text.strip()
    try:
        if match := _MONTH_YEAR.fullmatch(text):
            return pd.Timestamp(year=int(match.group(2)), month=int(match.group(1)), day=1)
        if match := _YEAR.fullmatch(text):
            return pd.Timestamp(year=int(match.group(1)), month=1, day=1)
    except ValueError:  # month 13, year 0...
        return pd.NaT
    return pd.NaT


def _celsius(temp: Mapping[str, Any] | None) -> float:
    """Temperature in Celsius from ``{"value", "unit"}``; Fahrenheit and Kelvin converted."""
    if not temp or temp.get("value") is None:
        return math.nan
    value, unit = float(temp["value"]), str(temp.get("unit") or "celsius").strip().lower()
    if unit.startswith("f"):
        return (value - 32.0) * 5.0 / 9.0
    if unit.startswith("k"):
        return value - 273.15
    return value


def _method_features(method: Mapping[str, Any]) -> dict[str, Any]:
    """First mash step temperature, number of mash steps and fermentation temperature."""
    steps = method.get("mash_temp") or []
    fermentation = method.get("fermentation") or {}
    return {
        "mash_temp_c": _celsius(steps[0].get("temp")) if steps else math.nan,
        "mash_steps": len(steps),
        "fermentation_temp_c": _celsius(fermentation.get("temp")),
    }


def _per_litre(amount: float, volume_l: float) -> float:
    """amount / volume, NaN when the volume is missing or not positive (never inf)."""
    if math.isnan(volume_l) or volume_l <= 0:
        return math.nan
    return amount / volume_l


def original_gravity(target_og: Any, target_fg: Any) -> float:
    """OG for the bitterness estimate: the larger of target_og/target_fg.

    13 dump recipes have the two swapped (OG < FG is impossible); the seed columns keep the
    published values, only derived features use the repaired gravity.
    """
    values = [float(v) for v in (target_og, target_fg) if v is not None and not pd.isna(v)]
    return max(values) if values else math.nan


def _hop_features(hops: Any, volume_l: float, og: float) -> dict[str, Any]:
    """Hop g/L by stage, alpha-acid loads, addition counts and the Tinseth estimate."""
    profile = hops_mod.hop_profile(hops, volume_l, og)
    grams = profile.grams_by_stage
    alpha = profile.alpha_grams_by_stage
    hot_stages = [s for s in hops_mod.STAGES if s not in (hops_mod.DRY_HOP, hops_mod.UNKNOWN)]
    bitter_stages = (hops_mod.MASH, hops_mod.FIRST_WORT, hops_mod.BITTERING)
    out: dict[str, Any] = {
        col: _per_litre(grams[stage], volume_l) for stage, col in _HOP_STAGE_COLUMNS.items()
    }
    n_add = profile.n_additions
    out.update(
        boil_minutes=profile.boil_minutes,
        hop_g_per_l_hot_side=_per_litre(sum(grams[s] for s in hot_stages), volume_l),
        hop_g_per_l_total=_per_litre(sum(grams.values()), volume_l),
        alpha_g_per_l_bittering=_per_litre(sum(alpha[s] for s in bitter_stages), volume_l),
        alpha_g_per_l_hot_side=_per_litre(sum(alpha[s] for s in hot_stages), volume_l),
        n_hop_additions=n_add,
        n_unknown_additions=profile.n_unknown_additions,
        share_unknown_additions=profile.n_unknown_additions / n_add if n_add else 0.0,
        n_extract_additions=profile.n_extract,
        n_fallback_alpha=profile.n_fallback_alpha,
        n_hop_adjuncts=profile.n_adjuncts,
        hop_adjunct_g_per_l=_per_litre(profile.adjunct_grams, volume_l),
        tinseth_ibu_est=profile.tinseth_ibu,
    )
    return out


def malt_kind(name: Any) -> str:
    """'specialty', 'base' or 'other' (sugars, oats, fruit peel...) from the malt name."""
    key = hops_mod.normalise_hop_name("" if name is None else str(name))
    if any(word in key for word in _SPECIALTY_MALT):
        return "specialty"
    if any(word in key for word in _BASE_MALT):
        return "base"
    return "other"


def _malt_features(malts: Any, volume_l: float) -> dict[str, float]:
    """Malt bill in kg per litre: total, base and specialty."""
    totals = {"base": 0.0, "specialty": 0.0, "other": 0.0}
    for malt in malts or []:
        grams = hops_mod.amount_grams(malt.get("amount"))
        if not math.isnan(grams):
            totals[malt_kind(malt.get("name"))] += grams / 1000.0
    return {
        "malt_kg_per_l": _per_litre(sum(totals.values()), volume_l),
        "base_malt_kg_per_l": _per_litre(totals["base"], volume_l),
        "specialty_malt_kg_per_l": _per_litre(totals["specialty"], volume_l),
    }
