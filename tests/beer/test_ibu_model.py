"""The IBU model: system C reproduced, candidate goals, safe save/load, same-fold comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from beer_assets.ibu import model as ibu
from beer_assets.ingest.clean import clean_beers

CV_REPEATS = 2  # 10 folds per spec keeps this file well under 20 s


@pytest.fixture(scope="module")
def clean(punkapi_beers: list[dict[str, Any]]) -> pd.DataFrame:
    return clean_beers(punkapi_beers)


@pytest.fixture(scope="module")
def seed_split(clean: pd.DataFrame) -> dict[str, Any]:
    return ibu.evaluate_seed_split(ibu.SEED_SPEC, clean)


@pytest.fixture(scope="module")
def candidate_split(clean: pd.DataFrame) -> dict[str, Any]:
    return ibu.evaluate_seed_split(ibu.CANDIDATE_SPEC, clean)


def test_seed_spec_is_system_c() -> None:
    spec = ibu.SEED_SPEC
    assert list(spec.features) == ibu.SEED_FEATURES
    assert ibu.SEED_FEATURES == ["abv", "target_fg", "target_og", "ebc", "srm", "ph"]
    assert spec.fill_value == -99
    hp = spec.hyperparameters
    assert (hp["n_estimators"], hp["max_depth"], hp["random_state"]) == (100, 5, 42)
    assert spec.target_transform == ibu.IDENTITY and spec.target_cap is None


def test_seed_spec_reproduces_system_c_mae(seed_split: dict[str, Any]) -> None:
    assert (seed_split["n_train"], seed_split["n_test"]) == (214, 106)
    assert seed_split["mae"] == pytest.approx(20.478, abs=0.01)
    assert seed_split["mae"] == pytest.approx(ibu.SEED_SPLIT_MAE, abs=1e-4)
    assert len(seed_split["y_true"]) == len(seed_split["y_pred"]) == 106


def test_candidate_meets_seed_split_goal(
    candidate_split: dict[str, Any], seed_split: dict[str, Any]
) -> None:
    assert candidate_split["mae"] <= 15.0
    assert candidate_split["test_ids"] == seed_split["test_ids"]  # the very same rows
    assert np.array_equal(candidate_split["y_true"], seed_split["y_true"])


def test_candidate_beats_seed_spec_on_the_same_cv_folds(clean: pd.DataFrame) -> None:
    rows = len(ibu.training_rows(clean))
    first, second = ibu.cv_folds(rows, 5, CV_REPEATS, 0), ibu.cv_folds(rows, 5, CV_REPEATS, 0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True)), (
        "folds must depend only on the seed"
    )
    cand = ibu.evaluate_cv(ibu.CANDIDATE_SPEC, clean, n_repeats=CV_REPEATS, seed=0)
    base = ibu.evaluate_cv(ibu.SEED_SPEC, clean, n_repeats=CV_REPEATS, seed=0)
    assert cand["n_rows"] == base["n_rows"] == 320
    assert len(cand["fold_mae"]) == len(base["fold_mae"]) == 5 * CV_REPEATS
    assert cand["mae"] < base["mae"] - 2.0
    assert cand["mae"] <= 18.0
    wins = sum(c < b for c, b in zip(cand["fold_mae"], base["fold_mae"], strict=True))
    assert wins >= 0.7 * len(cand["fold_mae"])


def test_cv_is_deterministic_and_seed_dependent(clean: pd.DataFrame) -> None:
    small = clean.head(120)
    a = ibu.evaluate_cv(ibu.SEED_SPEC, small, n_repeats=1, seed=3)
    b = ibu.evaluate_cv(ibu.SEED_SPEC, small, n_repeats=1, seed=3)
    c = ibu.evaluate_cv(ibu.SEED_SPEC, small, n_repeats=1, seed=4)
    assert a["fold_mae"] == b["fold_mae"] and a["fold_mae"] != c["fold_mae"]


@pytest.mark.parametrize("spec", [ibu.SEED_SPEC, ibu.CANDIDATE_SPEC], ids=lambda s: s.name)
def test_save_load_round_trip_predicts_identically(
    spec: ibu.ModelSpec, clean: pd.DataFrame, tmp_path: Path
) -> None:
    model = ibu.fit(spec, clean)
    before = ibu.predict(model, clean)
    written = ibu.save(model, tmp_path)
    assert {p.name for p in written} == {"spec.json", "booster_0.json"}
    for path in written:  # JSON only, never pickle
        json.loads(path.read_text())
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in written}
    loaded = ibu.load(tmp_path)
    assert loaded.spec == spec
    after = ibu.predict(loaded, clean)
    assert np.array_equal(before, after)
    assert len(after) == 325 and np.isfinite(after).all()  # null-IBU rows predicted too


def test_bagged_and_transformed_specs_round_trip(clean: pd.DataFrame, tmp_path: Path) -> None:
    spec = ibu.ModelSpec(
        name="tiny_bag",
        features=("abv", "tinseth_ibu_est", "ph"),
        hyperparameters={"n_estimators": 10, "max_depth": 2, "random_state": 1, "n_jobs": 1},
        fill_value=-1.0,
        target_transform=ibu.LOG1P,
        target_cap=300.0,
        n_bags=2,
    )
    model = ibu.fit(spec, clean)
    assert len(model.boosters) == 2
    ibu.save(model, tmp_path)
    loaded = ibu.load(tmp_path)
    assert loaded.spec == spec
    pred = ibu.predict(loaded, clean)
    assert np.array_equal(pred, ibu.predict(model, clean))
    assert (pred >= 0).all() and pred.max() < 400  # trained on IBU capped at 300


def test_spec_json_round_trip() -> None:
    for spec in (ibu.SEED_SPEC, ibu.CANDIDATE_SPEC):
        data = json.loads(json.dumps(spec.to_json()))
        assert ibu.ModelSpec.from_json(data) == spec


def test_candidate_features_exist_and_tinseth_is_monotone(clean: pd.DataFrame) -> None:
    assert set(ibu.CANDIDATE_SPEC.features) <= set(clean.columns)
    assert "tinseth_ibu_est" in ibu.FEATURES
    constraints = ibu.CANDIDATE_SPEC.hyperparameters["monotone_constraints"]
    signs = constraints.strip("()").split(",")
    assert len(signs) == len(ibu.FEATURES)
    assert signs[ibu.FEATURES.index("tinseth_ibu_est")] == "1"


def test_fit_ignores_rows_without_ibu(clean: pd.DataFrame) -> None:
    assert clean["ibu"].isna().sum() == 5
    model = ibu.fit(ibu.SEED_SPEC, clean)
    known = ibu.fit(ibu.SEED_SPEC, clean[clean["ibu"].notna()])
    assert np.array_equal(ibu.predict(model, clean), ibu.predict(known, clean))


def test_missing_feature_column_is_a_clear_error(clean: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="tinseth_ibu_est"):
        ibu.fit(ibu.CANDIDATE_SPEC, clean.drop(columns=["tinseth_ibu_est"]))


def test_feature_importance(clean: pd.DataFrame) -> None:
    importance = ibu.feature_importance(ibu.fit(ibu.CANDIDATE_SPEC, clean))
    assert list(importance) == list(ibu.CANDIDATE_SPEC.features)
    assert sum(importance.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in importance.values())
    assert importance["tinseth_ibu_est"] > 0.05
