"""Small matplotlib helpers that return markdown metadata (an embedded PNG) for the UI."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (code servers have no display), imported on
    first use, not by every run process that imports the code location
    (docs/decisions/0005-heavy-imports-where-used.md)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Palette size of the stored PNGs: charts of a few flat colours and antialiased text look the
#: same with 64 colours and take a third of the bytes (every event carries its plot, and a
#: range run's metadata is copied onto each of its partitions' events).
PNG_COLOURS = 64


def figure_markdown(fig: Figure) -> dg.MetadataValue:
    """Render ``fig`` as a palette PNG embedded in markdown, then close it."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    image = Image.open(buf).convert("RGB").quantize(colors=PNG_COLOURS)
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    encoded = base64.b64encode(png.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")


def residual_plot(y_true: Sequence[float], y_pred: Sequence[float], title: str) -> dg.MetadataValue:
    """Predicted vs actual and residuals, side by side."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(9, 3.6))
    lim = [0, max(float(y_true.max(initial=1)), float(y_pred.max(initial=1))) * 1.05]
    ax1.scatter(y_true, y_pred, s=12, alpha=0.7)
    ax1.plot(lim, lim, "k--", lw=1)
    ax1.set(xlabel="actual", ylabel="predicted", title=title, xlim=lim, ylim=lim)
    ax2.scatter(y_pred, y_true - y_pred, s=12, alpha=0.7)
    ax2.axhline(0, color="k", lw=1)
    ax2.set(xlabel="predicted", ylabel="actual − predicted", title="residuals")
    return figure_markdown(fig)


def bar_plot(values: dict[str, float], title: str, top: int = 15) -> dg.MetadataValue:
    """Horizontal bars of the ``top`` largest values (feature importances, counts)."""
    items = sorted(values.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = pyplot().subplots(figsize=(6, 0.3 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_title(title)
    return figure_markdown(fig)
