"""Value rules for the cleaned beer table, shared by its asset checks and its tests.

Hard rules describe values no real beer can have (negative ABV or IBU, duplicate ids); any
violation is an ERROR and stops the model from training on the table. Soft rules describe
source errors the real dump is known to contain (13 beers with original and final gravity
swapped, one pH of 79): the rows are listed and warned about, and only a share above
``max_soft_share`` is an ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

PH_RANGE = (2.0, 7.0)
MAX_ABV = 100.0


@dataclass(frozen=True)
class RuleResult:
    """Ids violating one rule."""

    rule: str
    ids: list[int]


def _ids(df: pd.DataFrame, mask: pd.Series) -> list[int]:
    return [int(i) for i in df.loc[mask.fillna(False).astype(bool), "id"].dropna()]


def hard_violations(df: pd.DataFrame) -> list[RuleResult]:
    """Values outside physical limits; nulls are allowed where the source allows them."""
    rules = {
        "abv outside [0, 100)": (df["abv"] < 0) | (df["abv"] >= MAX_ABV) | df["abv"].isna(),
        "ibu < 0": df["ibu"] < 0,
        "ebc < 0": df["ebc"] < 0,
        "srm < 0": df["srm"] < 0,
        "target_og <= 0": df["target_og"] <= 0,
        "target_fg <= 0": df["target_fg"] <= 0,
    }
    return [RuleResult(name, _ids(df, mask)) for name, mask in rules.items() if mask.any()]


def soft_violations(df: pd.DataFrame) -> list[RuleResult]:
    """Implausible but known source errors: reported, not fatal while rare."""
    lo, hi = PH_RANGE
    rules = {
        "target_og < target_fg": df["target_og"] < df["target_fg"],
        f"ph outside [{lo:g}, {hi:g}]": (df["ph"] < lo) | (df["ph"] > hi),
    }
    return [RuleResult(name, _ids(df, mask)) for name, mask in rules.items() if mask.any()]


def id_problems(df: pd.DataFrame) -> dict[str, list[int]]:
    """Null and duplicated ids (the table promises one row per beer id)."""
    dupes = df.loc[df["id"].duplicated(keep=False) & df["id"].notna(), "id"]
    return {
        "null_ids": [int(i) for i in df.index[df["id"].isna()]],
        "duplicate_ids": sorted({int(i) for i in dupes}),
    }
