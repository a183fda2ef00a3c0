"""The wine physico-chemical features: one canonical naming shared by data, store and models.

The UCI files (Cortez et al. 2009) name columns like ``"fixed acidity"``; the platform uses
snake_case everywhere and maps once, here, when a CSV is read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from platform_core.errors import MissingInputError
from wine_assets.datasets import wine_quality_dir

#: The 11 UCI features, in the files' column order.
FEATURES: list[str] = [
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "residual_sugar",
    "chlorides",
    "free_sulfur_dioxide",
    "total_sulfur_dioxide",
    "density",
    "ph",
    "sulphates",
    "alcohol",
]
TARGET = "quality"
#: The sensory score's scale (Cortez et al.: 0 very bad .. 10 excellent): training labels,
#: model outputs and stored predictions all lie on it.
QUALITY_SCALE = (0.0, 10.0)
WINE_TYPES = ("red", "white")

#: Physical units, for documentation and the UI.
UNITS: dict[str, str] = {
    "fixed_acidity": "g(tartaric acid)/dm³",
    "volatile_acidity": "g(acetic acid)/dm³",
    "citric_acid": "g/dm³",
    "residual_sugar": "g/dm³",
    "chlorides": "g(sodium chloride)/dm³",
    "free_sulfur_dioxide": "mg/dm³",
    "total_sulfur_dioxide": "mg/dm³",
    "density": "g/cm³",
    "ph": "pH",
    "sulphates": "g(potassium sulphate)/dm³",
    "alcohol": "% vol",
}


def uci_to_snake(column: str) -> str:
    return column.strip().strip('"').lower().replace(" ", "_")


def read_uci_csv(path: str | Path, wine_type: str) -> pd.DataFrame:
    """One UCI file as a typed frame: 11 float features, int quality, wine_type."""
    if wine_type not in WINE_TYPES:
        raise ValueError(f"wine_type: expected one of {WINE_TYPES}, got {wine_type!r}")
    if "://" not in str(path) and not Path(path).is_file():
        raise MissingInputError(
            f"UCI wine file ({wine_type})",
            path,
            "PLATFORM_DATA_DIR (folder holding wine_quality/), or wine_training_data's "
            "`source` run config",
            "unset both to use the copy shipped in wine_assets/datasets, or put "
            f"winequality-{wine_type}.csv in that folder",
        )
    df = pd.read_csv(path, sep=";")
    df.columns = [uci_to_snake(c) for c in df.columns]
    missing = [c for c in [*FEATURES, TARGET] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    out = df[FEATURES].astype("float64")
    out[TARGET] = df[TARGET].astype("int64")
    out["wine_type"] = wine_type
    return out


def read_uci(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Red and white together (red first), from ``data_dir/wine_quality`` or, by default,
    from :func:`wine_assets.datasets.wine_quality_dir` (PLATFORM_DATA_DIR or the shipped copy)."""
    base = Path(data_dir) / "wine_quality" if data_dir is not None else wine_quality_dir()
    return pd.concat(
        [read_uci_csv(base / f"winequality-{t}.csv", t) for t in WINE_TYPES], ignore_index=True
    )
