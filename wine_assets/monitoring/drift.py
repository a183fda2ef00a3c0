"""Eurybia ``SmartDrift`` over the prediction log versus the training data, free of Dagster.

Both frames carry the deployed model's inputs as numbers: the 11 features and ``is_red``
(the model's own encoding of ``wine_type``). Eurybia then trains its drift classifier (AUC:
0.5 = the two sets cannot be told apart), runs a Kolmogorov-Smirnov test per feature, and
scores both sets with the deployed model.

The prediction shift is ours (``prediction_shift``), not Eurybia's Jensen-Shannon figure: that
one compares the batch's scores with the model's in-sample scores of its own training rows,
which fully grown trees recall almost exactly, so a held-out sample of the same UCI data read
~0.6. Ours is the Wasserstein distance (in quality points) between the deployed model's scores
of the batch and its out-of-fold scores of its training data (kept with the model's
calibration, ``trust.json``), per wine type, weighted by the batch's type counts (a change in
the red/white mix is the ``is_red`` feature's drift, not a prediction shift).

Eurybia 1.4.2's ``generate_report()`` crashes on all-numeric data: its feature-importance
scatter zips the test kinds present (only "K-Smirnov" here) with two marker symbols under
``strict=True``. ``_Plotter`` pads the test table with one placeholder row of the other kind
for that one plot and removes the placeholder point from the figure afterwards, so the report
is exactly what a fixed Eurybia draws. The report's density curves are drawn from at most
``KDE_MAX_ROWS`` rows per dataset; every figure and test in the asset uses all rows. The
report is self-contained (``report_html``): Eurybia's CDN scripts and stylesheets are inlined
from the installed packages, so it opens without internet (~9 MB, plotly.js being 4.8 MB).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wine_assets.features import FEATURES
from wine_assets.monitoring.report_html import self_contained
from wine_assets.quality import model as wine_model
from wine_assets.quality.model import WINE_TYPE_CODES, WINE_TYPE_FEATURE, PackedForest

#: Columns Eurybia compares: what the deployed model reads, as numbers.
DRIFT_COLUMNS: tuple[str, ...] = (*FEATURES, WINE_TYPE_FEATURE)
#: Rows per dataset behind each of the report's density curves: Eurybia evaluates a Gaussian
#: KDE of every row at 500 points per feature, and a random 20 000 draws the same curve
#: (docs/decisions/0006-drift-report-kde-sample.md).
KDE_MAX_ROWS = 20_000
_TYPE_BY_CODE = {code: name for name, code in WINE_TYPE_CODES.items()}


def drift_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``FEATURES`` + ``wine_type`` rows (training data or log) as Eurybia's numeric input."""
    out = df[list(FEATURES)].astype("float64").reset_index(drop=True)
    out[WINE_TYPE_FEATURE] = df["wine_type"].map(WINE_TYPE_CODES).astype("float64").to_numpy()
    return out


class DeployedModel:
    """The champion as Eurybia expects a deployed model: ``predict`` and importances."""

    def __init__(self, fitted: wine_model.FittedModel) -> None:
        self.fitted = fitted
        self.feature_importances_ = _importances(fitted)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        frame = x[list(FEATURES)].copy()
        frame["wine_type"] = x[WINE_TYPE_FEATURE].map(_TYPE_BY_CODE).to_numpy()
        return wine_model.predict(self.fitted, frame)


def _importances(fitted: wine_model.FittedModel) -> np.ndarray:
    """Share of splits per drift column: a forest's node arrays hold no impurity decrease,
    so split counts stand in for it; XGBoost parts use their own importances."""
    totals = dict.fromkeys(DRIFT_COLUMNS, 0.0)
    for part in fitted.parts.values():
        if isinstance(part, PackedForest):
            used = part.feature[part.feature >= 0]
            counts = np.bincount(used, minlength=len(fitted.spec.features)).astype(float)
        else:
            counts = np.asarray(part.feature_importances_, dtype=float)
        for name, value in zip(fitted.spec.features, counts, strict=True):
            totals[name] += float(value)
    values = np.array([totals[c] for c in DRIFT_COLUMNS])
    return values / values.sum() if values.sum() > 0 else values


@dataclass
class DriftResult:
    """What the asset and checks need from one comparison."""

    auc: float
    rows_baseline: int
    tests: pd.DataFrame  # per feature: testname, statistic, pvalue
    #: Wasserstein distance (quality points) of the batch's scores from the training data's
    #: out-of-fold scores; NaN for a champion without kept out-of-fold scores.
    prediction_shift: float
    #: The same comparison as a two-sample Kolmogorov-Smirnov statistic (0-1).
    prediction_shift_ks: float
    mean_quality_current: float
    mean_quality_baseline: float
    report_html: bytes | None = None

    def rejected(self, alpha: float) -> list[str]:
        return rejected_features(self.tests["pvalue"].to_dict(), alpha)


def rejected_features(pvalues: dict[str, float], alpha: float) -> list[str]:
    """Features whose statistical test rejects "same distribution" at level ``alpha``."""
    return sorted(f for f, p in pvalues.items() if p < alpha)


def prediction_shift(
    fitted: wine_model.FittedModel, wine_type: np.ndarray, scores: np.ndarray
) -> tuple[float, float]:
    """(Wasserstein, KS) of ``scores`` (the batch's, per row of ``wine_type``) against the
    model's out-of-fold training scores, per type, weighted by the batch's type counts."""
    from scipy.stats import ks_2samp, wasserstein_distance

    trust = fitted.trust
    wine_type = np.asarray(wine_type)
    scores = np.asarray(scores, np.float64)
    if trust is None or len(scores) == 0:
        return math.nan, math.nan
    distance = ks = 0.0
    for name in np.unique(wine_type):
        part = trust.types.get(str(name))
        if part is None or part.scores is None:
            return math.nan, math.nan
        rows = wine_type == name
        weight = rows.mean()
        distance += weight * wasserstein_distance(scores[rows], part.scores)
        ks += weight * ks_2samp(scores[rows], part.scores).statistic
    return float(distance), float(ks)


def _cap_groups(df: pd.DataFrame, hue: str) -> pd.DataFrame:
    """At most KDE_MAX_ROWS random rows per dataset (same seed every time)."""
    parts = [g.sample(n=min(len(g), KDE_MAX_ROWS), random_state=0) for _, g in df.groupby(hue)]
    return pd.concat(parts)


def _smartdrift_class():
    from eurybia import SmartDrift
    from eurybia.core.smartplotter import SmartPlotter

    class _Plotter(SmartPlotter):
        def generate_fig_univariate_continuous(self, df_all, col, hue, *args, **kwargs):
            if df_all[hue].value_counts().max() > KDE_MAX_ROWS:
                df_all = _cap_groups(df_all, hue)
            return super().generate_fig_univariate_continuous(df_all, col, hue, *args, **kwargs)

        def scatter_feature_importance(self, feature_importance=None, datadrift_stat_test=None):
            tests = datadrift_stat_test
            if tests is None:
                tests = self.smartdrift.datadrift_stat_test
            kinds = list(tests["testname"].unique())
            if len(kinds) != 1:
                return super().scatter_feature_importance(feature_importance, tests)
            other = "Chi-Square" if kinds[0] != "Chi-Square" else "K-Smirnov"
            pad = pd.DataFrame(
                {"testname": [other], "statistic": [math.nan], "pvalue": [math.nan]},
                index=["__placeholder__"],
            )
            fig = super().scatter_feature_importance(feature_importance, pd.concat([tests, pad]))
            trace = fig.data[0]
            keep = len(tests)
            trace.x, trace.y = trace.x[:keep], trace.y[:keep]
            trace.hovertext = trace.hovertext[:keep]
            trace.marker.symbol = trace.marker.symbol[:keep]
            trace.marker.color = trace.marker.color[:keep]
            return fig

    class PlatformSmartDrift(SmartDrift):
        """SmartDrift whose report also renders when every feature is numeric."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._plot = _Plotter(self)
            self._plot.define_style_attributes(colors_dict=self.colors_dict)

    return PlatformSmartDrift


def compare(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    fitted: wine_model.FittedModel,
    *,
    report: bool = True,
    title: str = "Wine prediction drift",
    sample_size: int = 100_000,
) -> DriftResult:
    """Run SmartDrift on two numeric frames (see ``drift_frame``), optionally with its report."""
    cls = _smartdrift_class()
    sd = cls(
        df_current=current,
        df_baseline=baseline,
        dataset_names=("Prediction log", "Training data"),
        deployed_model=DeployedModel(fitted),
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        # CatBoost's eval_metrics writes ./catboost_info and Eurybia offers no train_dir.
        sd.compile(full_validation=False, sampling=True, sample_size=sample_size)
    predicted = sd.df_predict
    scores = DeployedModel(fitted).predict(current)
    wine_type = current[WINE_TYPE_FEATURE].map(_TYPE_BY_CODE).to_numpy()
    shift, shift_ks = prediction_shift(fitted, wine_type, scores)
    html = None
    if report:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.html"
            sd.generate_report(
                output_file=str(out),
                title_story=title,
                title_description=f"{len(current)} logged predictions vs {len(baseline)} "
                "training rows",
            )
            # Eurybia links its scripts and stylesheets from CDNs: inline them (works offline)
            html = self_contained(out.read_text(encoding="utf-8")).encode("utf-8")
    return DriftResult(
        auc=float(sd.auc),
        rows_baseline=len(baseline),
        tests=sd.datadrift_stat_test[["testname", "statistic", "pvalue"]].astype(
            {"statistic": "float64", "pvalue": "float64"}
        ),
        prediction_shift=shift,
        prediction_shift_ks=shift_ks,
        mean_quality_current=float(scores.mean()) if len(scores) else math.nan,
        mean_quality_baseline=float(
            predicted.loc[predicted["dataset"] == "Training data", "Score"].mean()
        ),
        report_html=html,
    )
