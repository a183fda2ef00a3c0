"""The wine candidate's plots, from cross-validation only (out-of-fold predictions of the
duplicate-aware CV, P(good) and intervals cross-fitted): what a held-out wine would get, never
what the model recalls of its own training rows."""

import dagster as dg
import numpy as np

from platform_core.plots import figure_markdown, pyplot
from wine_assets.features import WINE_TYPES
from wine_assets.quality import model as wine_model
from wine_assets.quality import trust as wine_trust


def confusion_plot(y_true: np.ndarray, y_pred: np.ndarray) -> dg.MetadataValue:
    """Tasted against predicted (rounded) quality of every wine when it was held out."""
    table = wine_model.confusion(y_true, y_pred)
    fig, ax = pyplot().subplots(figsize=(4.8, 4.2))
    ax.imshow(table.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(table.columns)), table.columns)
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set(
        xlabel="predicted quality (rounded)",
        ylabel="tasted quality",
        title="cross-validated confusion (held-out wines)",
    )
    for i in range(len(table.index)):
        for j in range(len(table.columns)):
            ax.text(j, i, int(table.iat[i, j]), ha="center", va="center", fontsize=7)
    return figure_markdown(fig)


def calibration_plot(
    wine_type: np.ndarray, good: np.ndarray, proba: np.ndarray, bins: int = wine_trust.ECE_BINS
) -> dg.MetadataValue:
    """Reliability of P(good) per wine type: in each probability bin, the share of wines that
    were good against the mean P(good) given; on the diagonal is perfectly calibrated."""
    fig, ax = pyplot().subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    edges = np.linspace(0.0, 1.0, bins + 1)
    for name in WINE_TYPES:
        rows = np.asarray(wine_type) == name
        if not rows.any():
            continue
        p, g = np.asarray(proba)[rows], np.asarray(good, dtype=float)[rows]
        which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        ax.plot(
            [p[which == b].mean() for b in used],
            [g[which == b].mean() for b in used],
            marker="o",
            label=f"{name} (ECE {wine_trust.expected_calibration_error(g, p):.3f})",
        )
    ax.set(
        xlabel="P(good) given (held-out)",
        ylabel="share actually good (quality ≥ 6)",
        title="calibration of P(good)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(fontsize=8, loc="upper left")
    return figure_markdown(fig)


def coverage_plot(
    wine_type: np.ndarray, y: np.ndarray, y_hat: np.ndarray, interval: np.ndarray
) -> dg.MetadataValue:
    """Share of held-out wines inside their 90 % interval, per wine type and predicted quality
    (rounded), with the required band: a good interval holds in every part of the scale."""
    lo, hi = wine_trust.COVERAGE_RANGE
    inside = (interval[:, 0] <= y) & (y <= interval[:, 1])
    scores = np.rint(np.asarray(y_hat, float)).astype(int)
    levels = sorted(set(scores.tolist()))
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    width = 0.8 / len(WINE_TYPES)
    for k, name in enumerate(WINE_TYPES):
        rows = np.asarray(wine_type) == name
        shares = [
            inside[rows & (scores == s)].mean() if (rows & (scores == s)).any() else np.nan
            for s in levels
        ]
        ax.bar(
            np.arange(len(levels)) + (k - 0.5) * width,
            shares,
            width,
            label=f"{name}: {inside[rows].mean():.3f} overall, "
            f"mean width {np.mean(interval[rows, 1] - interval[rows, 0]):.2f}",
        )
    ax.axhspan(lo, hi, color="green", alpha=0.15, label=f"required {lo}-{hi}")
    ax.axhline(wine_trust.CONFIDENCE, color="k", lw=1)
    ax.set_xticks(range(len(levels)), [str(s) for s in levels])
    ax.set(
        xlabel="predicted quality (rounded)",
        ylabel="share inside the 90 % interval",
        title="90 % interval coverage (held-out)",
        ylim=(0.5, 1.02),
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    return figure_markdown(fig)
