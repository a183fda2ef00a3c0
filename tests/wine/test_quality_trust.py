"""P(good) and prediction intervals beside the wine score (``wine_assets.quality.trust``):
one definition of good, calibration that matches scikit-learn's isotonic regression, intervals
that hold their coverage on held-out wines, and both surviving the model's files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from wine_assets.features import read_uci
from wine_assets.quality import model as wq
from wine_assets.quality import trust as wt

SMALL = wq.with_hyperparameters(wq.CANDIDATE_SPEC, n_estimators=15)


@pytest.fixture(scope="module")
def wine_df(data_dir) -> pd.DataFrame:
    return read_uci(data_dir)


@pytest.fixture(scope="module")
def oof(wine_df) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wine types, qualities, out-of-fold predictions and their duplicate-aware folds."""
    frame = wine_df.reset_index(drop=True)
    result = wq.evaluate_cv(SMALL, frame, n_repeats=1, dedup=True, return_predictions=True)
    folds = wq.fold_assignments(frame, 5, 1, 0, dedup=True)[0]
    return (
        frame["wine_type"].to_numpy(),
        frame["quality"].to_numpy(),
        result["predictions"][0],
        folds,
    )


def test_good_is_quality_six_or_more_for_true_and_predicted_scores():
    assert wq.is_good(np.array([5.0, 5.5, 5.99, 6.0, 7.2])).tolist() == [
        False, False, False, True, True
    ]  # fmt: skip
    y = np.array([5, 5, 6])
    y_hat = np.array([5.6, 5.8, 6.1])  # 5.6 and 5.8 are "not good" predictions, as served
    assert wq._regression_metrics(y, y_hat)["good_accuracy"] == 1.0


def test_ece_and_brier_by_hand():
    good = np.array([1, 0, 1, 1])
    proba = np.array([0.95, 0.05, 0.55, 0.55])
    # bins: [0.9, 1.0): |1 - .95| * 1; [0, .1): |0 - .05| * 1; [.5, .6): |1 - .55| * 2
    assert wt.expected_calibration_error(good, proba) == pytest.approx((0.05 + 0.05 + 0.9) / 4)
    assert wt.brier(good, proba) == pytest.approx((0.0025 + 0.0025 + 2 * 0.2025) / 4)


def test_p_good_is_the_isotonic_regression_of_good_on_the_score(oof):
    wine_type, y, y_hat, _ = oof
    trust = wt.from_out_of_fold(wine_type, y, y_hat)
    grid = np.linspace(2.0, 9.5, 301)
    for name in ("red", "white"):
        rows = wine_type == name
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(y_hat[rows], wq.is_good(y[rows]))
        np.testing.assert_allclose(trust.p_good(np.full(len(grid), name), grid), iso.predict(grid))


def test_held_out_p_good_is_calibrated_and_intervals_cover_ninety_percent(oof):
    wine_type, y, y_hat, folds = oof
    held_out = wt.cross_fold_metrics(wine_type, y, y_hat, folds)
    for name in ("red", "white"):
        figures = held_out[name]
        assert 0.87 <= figures["interval90_coverage"] <= 0.93, figures
        assert figures["good_ece"] <= 0.05, figures
        assert 1.0 < figures["interval90_width"] < 3.0, figures
    # a per-type calibration: white's intervals, fitted on white residuals only, differ
    trust = wt.from_out_of_fold(wine_type, y, y_hat)
    widths = {
        t: np.diff(trust.interval(np.array([t]), np.array([5.5]))[0])[0] for t in ("red", "white")
    }
    assert widths["red"] != widths["white"]


def test_interval_contains_the_score_and_stays_on_the_scale(oof):
    wine_type, y, y_hat, _ = oof
    trust = wt.from_out_of_fold(wine_type, y, y_hat)
    scores = np.array([0.2, 5.5, 9.9])
    bounds = trust.interval(np.array(["red", "red", "white"]), scores)
    assert (bounds[:, 0] <= scores).all() and (scores <= bounds[:, 1]).all()
    assert bounds.min() >= 0.0 and bounds.max() <= 10.0
    wider = trust.interval(np.array(["red", "red", "white"]), scores, confidence=0.99)
    assert (wider[1, 1] - wider[1, 0]) > (bounds[1, 1] - bounds[1, 0])


def test_trust_travels_with_the_model_files(wine_df, oof):
    wine_type, y, y_hat, _ = oof
    fitted = wq.fit(SMALL, wine_df)
    fitted.trust = wt.from_out_of_fold(wine_type, y, y_hat)
    files = wq.to_files(fitted)
    assert wt.TRUST_FILE in files
    loaded = wq.from_files(files)
    rows = wine_df.sample(50, random_state=0)
    score = wq.predict(loaded, rows)
    kinds = rows["wine_type"].to_numpy()
    p0, i0 = wt.annotate(fitted.trust, kinds, score)
    p1, i1 = wt.annotate(loaded.trust, kinds, score)
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(i0, i1)
    assert ((p1 >= 0) & (p1 <= 1)).all()
    # a model saved without one serves scores only
    fitted.trust = None
    assert wq.from_files(wq.to_files(fitted)).trust is None


def test_served_interval_is_crepes_split_conformal_without_importing_it(oof, tmp_path):
    from crepes import ConformalRegressor

    wine_type, y, y_hat, _ = oof
    trust = wt.from_out_of_fold(wine_type, y, y_hat)
    loaded = wt.Trust.from_bytes(trust.to_bytes())
    scores = np.linspace(0.0, 10.0, 41)
    for name in ("red", "white"):
        rows = wine_type == name
        crepes = ConformalRegressor().fit(y[rows] - y_hat[rows])
        for confidence in (0.9, 0.8):
            expected = crepes.predict_int(scores, confidence=confidence, y_min=0, y_max=10)
            got = loaded.interval(np.full(len(scores), name), scores, confidence)
            np.testing.assert_allclose(got, expected)
    # a process that loads a model and serves 90 % intervals does not import crepes
    path = tmp_path / "trust.json"
    path.write_bytes(trust.to_bytes())
    probe = (
        "import sys, numpy as np; from wine_assets.quality.trust import Trust; "
        f"t = Trust.from_bytes(open({str(path)!r}, 'rb').read()); "
        "t.interval(np.array(['red']), np.array([5.5])); print('crepes' in sys.modules)"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
