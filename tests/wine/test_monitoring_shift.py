"""The drift report's prediction shift (``drift.prediction_shift``): about zero for a held-out
sample of the same UCI data, large for system B's shifted batches, blind to the red/white mix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wine_assets.features import FEATURES, read_uci
from wine_assets.monitoring.drift import DeployedModel, compare, drift_frame, prediction_shift
from wine_assets.quality import model as wq
from wine_assets.quality import trust as wt
from wine_assets.readings.simulator import apply_mode

SPEC = wq.with_hyperparameters(wq.CANDIDATE_SPEC, n_estimators=60)


@pytest.fixture(scope="module")
def split(data_dir) -> tuple[wq.FittedModel, pd.DataFrame]:
    """A model (with its calibration) fitted on 80 % of UCI, and the held-out 20 %."""
    uci = read_uci(data_dir).reset_index(drop=True)
    folds = wq.fold_assignments(uci, 5, 1, seed=3, dedup=True)[0]
    rest = uci[folds != 0].reset_index(drop=True)
    fitted = wq.fit(SPEC, rest)
    fitted.trust = wt.fit_trust(SPEC, rest)
    return fitted, uci[folds == 0].reset_index(drop=True)


def shift(fitted: wq.FittedModel, df: pd.DataFrame) -> float:
    scores = DeployedModel(fitted).predict(drift_frame(df))
    return prediction_shift(fitted, df["wine_type"].to_numpy(), scores)[0]


def shifted(df: pd.DataFrame, mode: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"wine_type": t, **apply_mode(dict(zip(FEATURES, v, strict=True)), mode, rng)}
        for t, v in zip(df["wine_type"], df[list(FEATURES)].itertuples(index=False), strict=True)
    ]
    return pd.DataFrame(rows)


def test_a_held_out_sample_of_the_same_data_shows_no_shift(split):
    fitted, held_out = split
    assert shift(fitted, held_out) <= 0.05
    # the red/white mix is not a prediction shift: white wines alone read the same
    assert shift(fitted, held_out[held_out["wine_type"] == "white"]) <= 0.05


@pytest.mark.parametrize("mode", ["noisy", "corrupted"])
def test_shifted_batches_show_a_shift(split, mode):
    fitted, held_out = split
    same = shift(fitted, held_out)
    assert shift(fitted, shifted(held_out, mode)) > max(0.15, 3 * same)


def test_the_report_carries_the_shift_and_nan_without_out_of_fold_scores(split):
    fitted, held_out = split
    sample = held_out.sample(300, random_state=0)
    result = compare(drift_frame(sample), drift_frame(held_out), fitted, report=False)
    assert result.prediction_shift == pytest.approx(shift(fitted, sample))
    assert 0 <= result.prediction_shift_ks <= 1
    bare = wq.FittedModel(fitted.spec, fitted.parts)  # no calibration kept
    assert math.isnan(prediction_shift(bare, np.array(["red"]), np.array([5.0]))[0])
