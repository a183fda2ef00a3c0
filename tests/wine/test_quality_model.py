"""Wine quality model: Cortez metrics, duplicate-aware folds, safe files, candidate vs A.

Fast on purpose (few trees, one repeat); the full 20x5 comparison is benchmarks/wine_model.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LinearRegression

from wine_assets.features import read_uci
from wine_assets.quality import model as wq

REPO = Path(__file__).resolve().parents[2]

#: The candidate's settings with few trees, so fits take a fraction of a second.
SMALL_CANDIDATE = wq.with_hyperparameters(wq.CANDIDATE_SPEC, n_estimators=15)
SMALL_SYSTEM_B = wq.with_hyperparameters(wq.SYSTEM_B_SPEC, n_estimators=10)


@pytest.fixture(scope="module")
def wine_df() -> pd.DataFrame:
    """Both UCI files via read_uci; fail (never skip) when PLATFORM_DATA_DIR lacks them."""
    base = Path(os.environ.get("PLATFORM_DATA_DIR", REPO / "data"))
    missing = [
        p
        for t in ("red", "white")
        if not (p := base / "wine_quality" / f"winequality-{t}.csv").is_file()
    ]
    if missing:
        pytest.fail(f"wine quality data not found: {missing}; set PLATFORM_DATA_DIR", pytrace=False)
    return read_uci(base)


@pytest.fixture(scope="module")
def subset(wine_df: pd.DataFrame) -> pd.DataFrame:
    """400 rows of each type: enough to fit, small enough to be quick."""
    return wine_df.groupby("wine_type", group_keys=False).sample(n=400, random_state=0)


def test_cortez_metrics_hand_example() -> None:
    y = np.array([5, 6, 7, 4, 5])
    y_hat = np.array([5.2, 5.5, 8.0, 6.0, 4.6])  # errors 0.2, 0.5, 1.0, 2.0, 0.4
    got = wq.cortez_metrics(y, y_hat)
    assert got["mad"] == pytest.approx((0.2 + 0.5 + 1.0 + 2.0 + 0.4) / 5)
    assert got["acc_t025"] == pytest.approx(1 / 5)  # 0.4 counts only from T=0.5: no rounding
    assert got["acc_t05"] == pytest.approx(3 / 5)  # the 0.5 boundary is inclusive
    assert got["acc_t10"] == pytest.approx(4 / 5)


def test_confusion_counts_and_fills_gaps() -> None:
    table = wq.confusion([5, 5, 6, 8], [5.2, 6.0, 6.4, 6.0])
    assert list(table.index) == [5, 6, 7, 8] == list(table.columns)
    assert table.loc[5, 5] == 1 and table.loc[5, 6] == 1 and table.loc[8, 6] == 1
    assert int(table.to_numpy().sum()) == 4


def test_dedup_folds_keep_every_copy_in_one_fold(wine_df: pd.DataFrame) -> None:
    groups = wq.duplicate_groups(wine_df)
    red = (wine_df["wine_type"] == "red").to_numpy()
    assert red.sum() - len(np.unique(groups[red])) == 240  # Cortez's red file: 240 repeats
    multi = pd.Series(groups).value_counts()
    multi = multi[multi > 1].index.to_numpy()
    in_multi = np.isin(groups, multi)

    dedup = wq.fold_assignments(wine_df, n_splits=5, n_repeats=3, seed=7, dedup=True)
    for repeat in dedup:
        folds_per_group = pd.Series(repeat[in_multi]).groupby(groups[in_multi]).nunique()
        assert (folds_per_group == 1).all()
        for wine in ("red", "white"):  # every type is split into 5 similar folds
            sizes = np.bincount(repeat[(wine_df["wine_type"] == wine).to_numpy()])
            assert len(sizes) == 5 and sizes.max() - sizes.min() <= 0.02 * sizes.sum()

    plain = wq.fold_assignments(wine_df, n_splits=5, n_repeats=1, seed=7, dedup=False)[0]
    split = pd.Series(plain[in_multi]).groupby(groups[in_multi]).nunique()
    assert (split > 1).any()  # without grouping copies do land on both sides
    again = wq.fold_assignments(wine_df, n_splits=5, n_repeats=3, seed=7, dedup=True)
    assert np.array_equal(dedup, again)
    other = wq.fold_assignments(wine_df, n_splits=5, n_repeats=3, seed=8, dedup=True)
    assert not np.array_equal(dedup, other)


def test_two_specs_are_scored_on_the_same_folds(subset: pd.DataFrame) -> None:
    kwargs = {"n_splits": 5, "n_repeats": 1, "seed": 3, "dedup": True}
    a = wq.evaluate_cv(SMALL_CANDIDATE, subset, return_predictions=True, **kwargs)
    b = wq.evaluate_cv(wq.SYSTEM_A_SPEC, subset, **kwargs)
    c = wq.evaluate_cv(SMALL_SYSTEM_B, subset, **kwargs)
    assert a["folds_sha256"] == b["folds_sha256"] == c["folds_sha256"]
    folds = wq.fold_assignments(subset.reset_index(drop=True), 5, 1, 3, dedup=True)
    assert a["folds_sha256"] == hashlib.sha256(folds.tobytes()).hexdigest()
    for scope in ("overall", "red", "white"):
        assert {"mad", "mad_std", "acc_t025", "acc_t05", "acc_t10"} <= set(a[scope])
        assert {"accuracy", "auc"} <= set(c[scope]) and "mad" not in c[scope]
    assert np.isfinite(a["predictions"]).all()  # every row predicted exactly once per repeat


def test_forest_walk_and_library_predict_agree(subset: pd.DataFrame) -> None:
    """Up to _FEW_ROWS rows the numpy walk over the copied node arrays answers, above it the
    forest's own predict: the same numbers either way, for the mean, P(good) and the median."""
    for spec in (SMALL_CANDIDATE, SMALL_SYSTEM_B):
        x = wq.design_matrix(spec, subset)
        estimator = wq.make_estimator(spec).fit(x, wq.target(spec, subset))
        packed = wq.PackedForest.from_sklearn(estimator)
        key = "proba" if spec.is_classifier else "mean"
        expected = estimator.predict_proba(x)[:, 1] if spec.is_classifier else estimator.predict(x)
        assert len(x) > wq._FEW_ROWS
        for rows in (slice(0, 1), slice(0, wq._FEW_ROWS), slice(None)):  # walk, walk, library
            got = packed.outputs(x[rows], [key])[key]
            np.testing.assert_allclose(got, expected[rows], rtol=0, atol=1e-12)
    walked = packed.tree_outputs(x[:50])
    by_tree = packed.tree_outputs(x)[:, :50]  # every tree's own predict_proba
    np.testing.assert_allclose(walked, by_tree, rtol=0, atol=1e-12)
    regressor = wq.fit(SMALL_CANDIDATE, subset).parts["all"]
    x = wq.design_matrix(SMALL_CANDIDATE, subset)
    np.testing.assert_allclose(
        regressor.outputs(x[:50], ["median"])["median"],
        regressor.outputs(x, ["median"])["median"][:50],
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("spec", [SMALL_CANDIDATE, wq.SYSTEM_A_SPEC, SMALL_SYSTEM_B])
def test_files_round_trip_predicts_identically(
    spec: wq.ModelSpec, subset: pd.DataFrame, wine_df: pd.DataFrame
) -> None:
    fitted = wq.fit(spec, subset)
    loaded = wq.from_files(wq.to_files(fitted))
    assert loaded.spec == spec
    run = wq.predict_good_proba if spec.is_classifier else wq.predict
    for rows in (wine_df, wine_df.head(100)):  # the forest's predict, the walk
        assert np.array_equal(run(fitted, rows), run(loaded, rows))


def test_files_load_without_pickle_and_only_trusted_types(
    subset: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON and skops files; loading unpickles nothing and refuses a type outside the trusted
    list, a forest of another class and files of the retired packed-JSON format."""
    fitted = {spec.name: wq.fit(spec, subset) for spec in (SMALL_CANDIDATE, wq.SYSTEM_A_SPEC)}
    files = {name: wq.to_files(model) for name, model in fitted.items()}
    assert set(files[SMALL_CANDIDATE.name]) == {"spec.json", "forest_all.skops"}
    assert set(files[wq.SYSTEM_A_SPEC.name]) == {"spec.json", "xgb_red.json", "xgb_white.json"}
    for model_files in files.values():
        for name, data in model_files.items():
            if name.endswith(".json"):
                json.loads(data)
    numpy_load = np.load

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used while loading a model")

    def load_without_pickle(*args: object, **kwargs: object) -> object:
        assert kwargs.get("allow_pickle") is False, "np.load may unpickle"
        return numpy_load(*args, **kwargs)

    with monkeypatch.context() as patch:
        for name in ("load", "loads", "Unpickler"):
            patch.setattr(pickle, name, refuse)
        patch.setattr(np, "load", load_without_pickle)
        for model_files in files.values():
            wq.predict(wq.from_files(model_files), subset)

    candidate = files[SMALL_CANDIDATE.name]
    forest = fitted[SMALL_CANDIDATE.name].parts["all"].forest
    forest.on_load = os.system  # a callable the file would hand to whoever loads it
    with pytest.raises(TypeError, match="posix.system"):
        wq.from_files({**candidate, "forest_all.skops": skops.io.dumps(forest)})
    other = skops.io.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))
    with pytest.raises(ValueError, match="expected a ExtraTreesRegressor"):
        wq.from_files({**candidate, "forest_all.skops": other})

    manifest = json.loads(candidate["spec.json"])
    manifest["format"] = "wine-quality-model/1"
    old = {**candidate, "spec.json": json.dumps(manifest).encode()}
    with pytest.raises(ValueError, match="retrain"):
        wq.from_files(old)


def test_candidate_beats_system_a_on_quick_cv(wine_df: pd.DataFrame) -> None:
    candidate = wq.with_hyperparameters(wq.CANDIDATE_SPEC, n_estimators=41)
    for dedup in (False, True):
        kwargs = {"n_splits": 5, "n_repeats": 1, "seed": 11, "dedup": dedup}
        ours = wq.evaluate_cv(candidate, wine_df, **kwargs)
        theirs = wq.evaluate_cv(wq.SYSTEM_A_SPEC, wine_df, **kwargs)
        for wine in ("red", "white"):
            assert ours[wine]["mad"] < theirs[wine]["mad"] - 0.02, (dedup, wine)
            assert ours[wine]["acc_t05"] > theirs[wine]["acc_t05"], (dedup, wine)


def test_predict_clips_and_accepts_both_types(subset: pd.DataFrame) -> None:
    mixed = subset.sample(frac=1.0, random_state=1)  # red and white interleaved
    for spec in (SMALL_CANDIDATE, wq.SYSTEM_A_SPEC):
        fitted = wq.fit(spec, subset)
        together = pd.Series(wq.predict(fitted, mixed), index=mixed.index)
        for wine in ("red", "white"):
            alone = mixed[mixed["wine_type"] == wine]
            assert np.array_equal(together[alone.index].to_numpy(), wq.predict(fitted, alone))
        flipped = mixed.assign(wine_type=mixed["wine_type"].map({"red": "white", "white": "red"}))
        assert not np.array_equal(wq.predict(fitted, flipped), together.to_numpy())

    fitted = wq.fit(SMALL_CANDIDATE, subset)
    forest = fitted.parts["all"]
    few = mixed.head(100)  # the walk over the node arrays, whose leaf values are shifted here
    fitted.parts["all"] = replace(forest, value=forest.value + 50.0)
    assert (wq.predict(fitted, few) == 10.0).all()
    fitted.parts["all"] = replace(forest, value=forest.value - 50.0)
    assert (wq.predict(fitted, few) == 0.0).all()

    with pytest.raises(ValueError, match="wine_type"):
        wq.predict(fitted, mixed.assign(wine_type="rose"))
    with pytest.raises(KeyError, match="alcohol"):
        wq.predict(fitted, mixed.drop(columns="alcohol"))
    with pytest.raises(TypeError):
        wq.predict(wq.fit(SMALL_SYSTEM_B, subset), mixed)


@pytest.mark.parametrize("spec", [wq.CANDIDATE_SPEC, wq.SYSTEM_A_SPEC], ids=lambda s: s.name)
def test_predict_arrays_equals_predict_on_mixed_types(spec, subset: pd.DataFrame) -> None:
    """The service's array path gives the frame path's numbers, joint and per-type models."""
    fitted = wq.fit(wq.with_hyperparameters(spec, n_estimators=20), subset)
    rows = subset.sample(40, random_state=2)
    assert set(rows["wine_type"]) == {"red", "white"}
    from_arrays = wq.predict_arrays(
        fitted, rows["wine_type"].to_numpy(), rows[list(wq.FEATURES)].to_numpy()
    )
    np.testing.assert_array_equal(from_arrays, wq.predict(fitted, rows))
    with pytest.raises(ValueError, match="wine_type"):
        wq.predict_arrays(fitted, np.array(["rosé"]), rows[list(wq.FEATURES)].to_numpy()[:1])
