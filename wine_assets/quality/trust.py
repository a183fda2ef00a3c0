"""What a winemaker needs beside the score: P(good), calibrated, and a prediction interval.

Both come from the regressor's own out-of-fold predictions on its training data (duplicate-
aware 5-fold CV inside the training rows), per wine type:

* **P(good)** (good = quality >= ``GOOD_THRESHOLD``, ``model.is_good``): scikit-learn's
  ``IsotonicRegression`` of good/not-good on the out-of-fold predicted score. Stored as its
  fitted breakpoints (``X_thresholds_``, ``y_thresholds_``, public attributes) in JSON and
  applied with linear interpolation, clipped at the ends: what ``IsotonicRegression.predict``
  does with ``out_of_bounds="clip"``, without pickling the estimator.
* **Prediction interval**: split conformal regression (crepes ``ConformalRegressor``) on the
  out-of-fold residuals of each wine type, so a 90 % interval covers about 90 % of new wines
  of that type. The residuals are stored in JSON; the conformal regressor is re-fitted from
  them on load (a sort).

The regressor itself is unchanged: the trust part is a small JSON file beside it
(``trust.json`` in the model's files); a model without one serves scores only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wine_assets.features import QUALITY_SCALE, TARGET, WINE_TYPES

if TYPE_CHECKING:
    from wine_assets.quality.model import ModelSpec

TRUST_FILE = "trust.json"
TRUST_FORMAT = "wine-quality-trust/1"
#: Default coverage of the served interval.
CONFIDENCE = 0.9
#: ECE bins (equal width on [0, 1]).
ECE_BINS = 10
#: The candidate's holdout coverage of the 90 % interval must lie in this range to be promoted.
COVERAGE_RANGE = (0.87, 0.93)


def expected_calibration_error(good: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over ``bins`` equal-width bins of P, the row-weighted mean |share good - mean P|."""
    good = np.asarray(good, dtype=np.float64)
    proba = np.asarray(proba, dtype=np.float64)
    if good.size == 0:
        raise ValueError("no predictions")
    index = np.minimum((proba * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        rows = index == b
        if rows.any():
            total += rows.sum() * abs(good[rows].mean() - proba[rows].mean())
    return float(total / good.size)


def brier(good: np.ndarray, proba: np.ndarray) -> float:
    """Mean squared error of P(good) against 1/0."""
    good = np.asarray(good, dtype=np.float64)
    return float(np.mean((np.asarray(proba, dtype=np.float64) - good) ** 2))


@dataclass
class TypeTrust:
    """One wine type's calibration: isotonic breakpoints and conformal residuals."""

    x_thresholds: np.ndarray
    y_thresholds: np.ndarray
    residuals: np.ndarray  # y - y_hat, out of fold
    #: The out-of-fold predicted scores themselves: the training data's score distribution as
    #: unseen wines get it (the drift report's baseline; in-sample scores of fully grown trees
    #: recall the labels). None in files written before it was kept.
    scores: np.ndarray | None = None
    #: Conformal half-width per confidence, from crepes; the default confidence's is stored
    #: in trust.json, so serving needs no crepes (its import would land on a barrel run's or
    #: the service's first request; docs/decisions/0005-heavy-imports-where-used.md).
    half_widths: dict[float, float] = field(default_factory=dict)

    def p_good(self, quality: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(quality, np.float64), self.x_thresholds, self.y_thresholds)

    def half_width(self, confidence: float) -> float:
        """crepes' split-conformal half-width at ``confidence`` (cached)."""
        if confidence not in self.half_widths:
            from crepes import ConformalRegressor

            conformal = ConformalRegressor().fit(self.residuals)
            bounds = conformal.predict_int(np.zeros(1), confidence=confidence)
            self.half_widths[confidence] = float(bounds[0, 1])
        return self.half_widths[confidence]

    def interval(self, quality: np.ndarray, confidence: float) -> np.ndarray:
        """(n, 2) bounds: the score -/+ the half-width, clipped to the quality scale (what
        crepes' ``predict_int`` with ``y_min``/``y_max`` returns)."""
        quality = np.asarray(quality, np.float64)
        width = self.half_width(confidence)
        return np.clip(np.stack([quality - width, quality + width], axis=1), *QUALITY_SCALE)


@dataclass
class Trust:
    """Per wine type calibration of a fitted regressor."""

    types: dict[str, TypeTrust]

    def p_good(self, wine_type: np.ndarray, quality: np.ndarray) -> np.ndarray:
        wine_type = np.asarray(wine_type)
        quality = np.asarray(quality, np.float64)
        out = np.full(len(quality), np.nan)
        for name, part in self.types.items():
            rows = wine_type == name
            if rows.any():
                out[rows] = part.p_good(quality[rows])
        return out

    def interval(
        self, wine_type: np.ndarray, quality: np.ndarray, confidence: float = CONFIDENCE
    ) -> np.ndarray:
        wine_type = np.asarray(wine_type)
        quality = np.asarray(quality, np.float64)
        out = np.full((len(quality), 2), np.nan)
        for name, part in self.types.items():
            rows = wine_type == name
            if rows.any():
                out[rows] = part.interval(quality[rows], confidence)
        return out

    def to_bytes(self) -> bytes:
        body = {
            "format": TRUST_FORMAT,
            "types": {
                name: {
                    "x_thresholds": part.x_thresholds.tolist(),
                    "y_thresholds": part.y_thresholds.tolist(),
                    "residuals": part.residuals.tolist(),
                    "scores": None if part.scores is None else part.scores.tolist(),
                    "half_width_90": part.half_width(CONFIDENCE),
                }
                for name, part in self.types.items()
            },
        }
        return (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Trust:
        body = json.loads(data)
        if body.get("format") != TRUST_FORMAT:
            raise ValueError(f"{TRUST_FILE}: format {body.get('format')!r}, not {TRUST_FORMAT!r}")
        return cls(
            {
                name: TypeTrust(
                    np.asarray(part["x_thresholds"], np.float64),
                    np.asarray(part["y_thresholds"], np.float64),
                    np.asarray(part["residuals"], np.float64),
                    None if part.get("scores") is None else np.asarray(part["scores"], np.float64),
                    {CONFIDENCE: float(part["half_width_90"])},
                )
                for name, part in body["types"].items()
            }
        )


def from_out_of_fold(wine_type: np.ndarray, y: np.ndarray, y_hat: np.ndarray) -> Trust:
    """Calibrate from out-of-fold predictions ``y_hat`` of true qualities ``y``."""
    from sklearn.isotonic import IsotonicRegression

    from wine_assets.quality.model import is_good

    wine_type = np.asarray(wine_type)
    types = {}
    for name in WINE_TYPES:
        rows = wine_type == name
        if not rows.any():
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(y_hat[rows], is_good(y[rows]).astype(np.float64))
        types[name] = TypeTrust(
            np.asarray(iso.X_thresholds_, np.float64),
            np.asarray(iso.y_thresholds_, np.float64),
            np.asarray(y[rows] - y_hat[rows], np.float64),
            np.asarray(y_hat[rows], np.float64),
        )
    return Trust(types)


def out_of_fold(spec: ModelSpec, df: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """The regressor's out-of-fold predictions on ``df``, duplicate-aware folds."""
    from wine_assets.quality import model as wq

    frame = df.reset_index(drop=True)
    folds = wq.fold_assignments(frame, n_splits, 1, seed, dedup=True)[0]
    y_hat = np.full(len(frame), np.nan)
    for fold in range(n_splits):
        test = folds == fold
        y_hat[test] = wq.predict(wq.fit(spec, frame.loc[~test]), frame.loc[test])
    return y_hat


def fit_trust(spec: ModelSpec, df: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> Trust:
    """Calibration of ``spec`` trained on ``df``, from its inner out-of-fold predictions."""
    frame = df.reset_index(drop=True)
    y_hat = out_of_fold(spec, frame, n_splits, seed)
    return from_out_of_fold(frame["wine_type"].to_numpy(), frame[TARGET].to_numpy(), y_hat)


def trust_metrics(
    good: np.ndarray, proba: np.ndarray, y: np.ndarray, interval: np.ndarray | None = None
) -> dict[str, float]:
    """Brier and ECE of P(good); coverage and mean width of the interval when given."""
    out = {
        "good_brier": brier(good, proba),
        "good_ece": expected_calibration_error(good, proba),
        # what a verdict at P(good) >= 0.5 would score (the service's verdict is the score's)
        "good_accuracy_p05": float(np.mean((np.asarray(proba) >= 0.5) == np.asarray(good))),
    }
    if interval is not None:
        y = np.asarray(y, np.float64)
        out["interval90_coverage"] = float(np.mean((interval[:, 0] <= y) & (y <= interval[:, 1])))
        out["interval90_width"] = float(np.mean(interval[:, 1] - interval[:, 0]))
    return out


def evaluate_trust(
    spec: ModelSpec,
    df: pd.DataFrame,
    n_splits: int = 5,
    n_repeats: int = 1,
    seed: int = 0,
    baseline: ModelSpec | None = None,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, float]]:
    """P(good) and interval figures per wine type on duplicate-aware outer folds: in each
    training part the regressor is fitted and calibrated (inner CV), then scored on the held-
    out part. ``baseline`` (a classifier spec, e.g. the original 6-feature classifier) is scored
    on the same folds as ``system_b_good_brier`` / ``system_b_good_ece``. Mean over repeats per
    type."""
    from wine_assets.quality import model as wq

    frame = df.reset_index(drop=True)
    folds = wq.fold_assignments(frame, n_splits, n_repeats, seed, dedup=True)
    y = frame[TARGET].to_numpy().astype(np.float64)
    good = wq.is_good(y)
    wine_type = frame["wine_type"].to_numpy()
    per_type: dict[str, list[dict[str, float]]] = {t: [] for t in WINE_TYPES}
    for repeat in range(n_repeats):
        proba = np.full(len(frame), np.nan)
        interval = np.full((len(frame), 2), np.nan)
        base = np.full(len(frame), np.nan)
        for fold in range(n_splits):
            test = folds[repeat] == fold
            train = frame.loc[~test]
            fitted = wq.fit(spec, train)
            trust = fit_trust(spec, train, n_splits, seed=seed + 1000 * repeat + fold)
            quality = wq.predict(fitted, frame.loc[test])
            proba[test] = trust.p_good(wine_type[test], quality)
            interval[test] = trust.interval(wine_type[test], quality, confidence)
            if baseline is not None:
                base[test] = wq.predict_good_proba(wq.fit(baseline, train), frame.loc[test])
        for t in WINE_TYPES:
            rows = wine_type == t
            if not rows.any():
                continue
            metrics = trust_metrics(good[rows], proba[rows], y[rows], interval[rows])
            if baseline is not None:
                metrics["system_b_good_brier"] = brier(good[rows], base[rows])
                metrics["system_b_good_ece"] = expected_calibration_error(good[rows], base[rows])
            per_type[t].append(metrics)
    return {
        t: {k: float(np.mean([m[k] for m in runs])) for k in runs[0]}
        for t, runs in per_type.items()
        if runs
    }


def cross_fold_predictions(
    wine_type: np.ndarray,
    y: np.ndarray,
    y_hat: np.ndarray,
    folds: np.ndarray,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out P(good) (n,) and interval (n, 2) from one CV's out-of-fold predictions
    ``y_hat`` (fold id per row in ``folds``): the rows of each fold are scored by a calibration
    fitted on the other folds' predictions only (cross-conformal), so no row calibrates its
    own P or interval."""
    wine_type = np.asarray(wine_type)
    y = np.asarray(y, np.float64)
    y_hat = np.asarray(y_hat, np.float64)
    proba = np.full(len(y), np.nan)
    interval = np.full((len(y), 2), np.nan)
    for fold in np.unique(folds):
        test = folds == fold
        trust = from_out_of_fold(wine_type[~test], y[~test], y_hat[~test])
        proba[test] = trust.p_good(wine_type[test], y_hat[test])
        interval[test] = trust.interval(wine_type[test], y_hat[test], confidence)
    return proba, interval


def cross_fold_metrics(
    wine_type: np.ndarray,
    y: np.ndarray,
    y_hat: np.ndarray,
    folds: np.ndarray,
    confidence: float = CONFIDENCE,
) -> dict[str, dict[str, float]]:
    """Held-out figures per wine type from :func:`cross_fold_predictions`: the candidate
    asset's check figures, no extra model fit."""
    from wine_assets.quality.model import is_good

    wine_type = np.asarray(wine_type)
    y = np.asarray(y, np.float64)
    proba, interval = cross_fold_predictions(wine_type, y, y_hat, folds, confidence)
    out = {}
    for name in WINE_TYPES:
        rows = wine_type == name
        if rows.any():
            out[name] = trust_metrics(is_good(y[rows]), proba[rows], y[rows], interval[rows])
    return out


def annotate(
    trust: Trust | None, wine_type: np.ndarray, quality: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """P(good) (n,) and the interval (n, 2) for predicted ``quality``; NaN without a trust."""
    quality = np.asarray(quality, np.float64)
    if trust is None:
        return np.full(len(quality), np.nan), np.full((len(quality), 2), np.nan)
    return trust.p_good(wine_type, quality), trust.interval(wine_type, quality, confidence)
