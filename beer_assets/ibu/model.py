"""IBU regression on the cleaned beers table, free of Dagster so it can be benchmarked alone.

A model is an XGBoost regressor (or a small bag of them) plus a ``ModelSpec`` that says which
features it reads, how missing values are handled and how the target is transformed.  Both are
saved as JSON (XGBoost's own format and a spec file), never pickle, so a saved model can be
loaded without trusting the file and re-imputed exactly from what is on disk.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from platform_core.specs import JsonSpec

# XGBoost and scikit-learn load in the functions that fit, load or score, not with the code
# location that every run process imports (docs/decisions/0005-heavy-imports-where-used.md).
if TYPE_CHECKING:
    from xgboost import XGBRegressor

TARGET = "ibu"

#: The original IBU model's inputs, in its column order.
SEED_FEATURES: list[str] = ["abv", "target_fg", "target_og", "ebc", "srm", "ph"]

#: Candidate inputs: the original model's plus recipe-derived hop and malt features of
#: ``clean_beers``.
#: Chosen by repeated 5-fold CV (3 CV seeds; docs/decisions/0007-ibu-model.md).
FEATURES: list[str] = [
    *SEED_FEATURES,
    "tinseth_ibu_est",
    "alpha_g_per_l_bittering",
    "alpha_g_per_l_hot_side",
    "hop_g_per_l_bittering",
    "hop_g_per_l_boil",
    "hop_g_per_l_aroma",
    "hop_g_per_l_dry_hop",
    "hop_g_per_l_total",
    "malt_kg_per_l",
    "specialty_malt_kg_per_l",
    "n_hop_additions",
]

SEED_SPLIT_TEST_SIZE = 0.33
SEED_SPLIT_RANDOM_STATE = 42
SEED_SPLIT_MAE = 20.478275456518496  # the original IBU model's notebook (xgboost 1.1.1)

SPEC_FILE = "spec.json"
LOG1P = "log1p"
SQRT = "sqrt"
IDENTITY = "identity"
TARGET_TRANSFORMS = (IDENTITY, SQRT, LOG1P)


@dataclass(frozen=True)
class ModelSpec(JsonSpec):
    """Everything needed to refit or reload a model.

    ``fill_value`` is the constant that replaces missing inputs (None: XGBoost's native missing
    handling); ``target_transform`` is ``identity``, ``sqrt`` or ``log1p``; ``target_cap`` clips the
    training target from above; ``n_bags`` fits that many boosters with seeds
    ``random_state + i`` and averages them.
    """

    name: str
    features: tuple[str, ...]
    hyperparameters: dict[str, Any]
    fill_value: float | None = None
    target_transform: str = IDENTITY
    target_cap: float | None = None
    n_bags: int = 1


#: The original IBU model exactly.  xgboost 1.1.1's defaults are pinned (base_score 0.5, exact
#: tree method) because xgboost 2+ estimates base_score from the data and uses ``hist``, which
#: would move the seed-split MAE from 20.478 to 21.16.
SEED_SPEC = ModelSpec(
    name="system_c_seed",
    features=tuple(SEED_FEATURES),
    hyperparameters={
        "n_estimators": 100,
        "max_depth": 5,
        "random_state": 42,
        "tree_method": "exact",
        "base_score": 0.5,
        "n_jobs": 1,
    },
    fill_value=-99.0,
)


def monotone_constraints(features: Sequence[str], signs: dict[str, int]) -> str:
    """XGBoost's positional '(0,1,...)' string, built from feature names so it cannot drift."""
    return "(" + ",".join(str(signs.get(name, 0)) for name in features) + ")"


#: Our model, chosen by repeated 5-fold CV (benchmarks/ibu_model.py), not on the seed split:
#: raw IBU target with squared error (a log target shrinks the two freeze-distilled beers),
#: bitterness may only rise with the Tinseth estimate (monotone constraint), no row/column
#: subsampling, depth 5, 200 trees at learning rate 0.05, exact splits. Why, and the variants
#: tried: docs/decisions/0007-ibu-model.md.
CANDIDATE_SPEC = ModelSpec(
    name="hops_tinseth_v1",
    features=tuple(FEATURES),
    hyperparameters={
        "n_estimators": 200,
        "max_depth": 5,
        "learning_rate": 0.05,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
        "random_state": 42,
        "tree_method": "exact",
        "monotone_constraints": monotone_constraints(FEATURES, {"tinseth_ibu_est": 1}),
        "n_jobs": 1,
    },
    fill_value=None,
    target_transform=IDENTITY,
)


@dataclass
class FittedModel:
    """A spec and its fitted boosters (one per bag)."""

    spec: ModelSpec
    boosters: list[XGBRegressor] = field(default_factory=list)


def _design_matrix(spec: ModelSpec, df: pd.DataFrame) -> np.ndarray:
    """Feature matrix as float64 (nullable ints -> NaN), constant-filled if the spec says so."""
    missing = [col for col in spec.features if col not in df.columns]
    if missing:
        raise KeyError(f"columns missing for model {spec.name!r}: {missing}")
    frame = df.loc[:, list(spec.features)].astype("float64")
    matrix = frame.to_numpy(dtype="float64", na_value=np.nan)
    if spec.fill_value is not None:
        matrix = np.where(np.isnan(matrix), spec.fill_value, matrix)
    return matrix


def _encode_target(spec: ModelSpec, y: np.ndarray) -> np.ndarray:
    """Apply the cap then the transform to training targets."""
    if spec.target_cap is not None:
        y = np.minimum(y, spec.target_cap)
    if spec.target_transform not in TARGET_TRANSFORMS:
        raise ValueError(f"unknown target_transform {spec.target_transform!r}")
    if spec.target_transform == LOG1P:
        return np.log1p(np.maximum(y, 0.0))
    if spec.target_transform == SQRT:
        return np.sqrt(np.maximum(y, 0.0))
    return y


def _decode_target(spec: ModelSpec, z: np.ndarray) -> np.ndarray:
    """Predictions back on the IBU scale (negative transformed values clipped to 0 IBU)."""
    if spec.target_transform == LOG1P:
        return np.expm1(np.maximum(z, 0.0))
    if spec.target_transform == SQRT:
        return np.square(np.maximum(z, 0.0))
    return z


def training_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a known IBU, in id order (the original model's row order), index reset."""
    rows = df[df[TARGET].notna()]
    if "id" in rows.columns:
        rows = rows.sort_values("id", kind="stable")
    return rows.reset_index(drop=True)


def fit(spec: ModelSpec, df: pd.DataFrame) -> FittedModel:
    """Fit ``spec`` on the rows of ``df`` that have an IBU."""
    rows = training_rows(df)
    x = _design_matrix(spec, rows)
    y = _encode_target(spec, rows[TARGET].to_numpy(dtype="float64"))
    from xgboost import XGBRegressor

    model = FittedModel(spec)
    base_seed = int(spec.hyperparameters.get("random_state", 0))
    for bag in range(spec.n_bags):
        params = {**spec.hyperparameters, "random_state": base_seed + bag}
        model.boosters.append(XGBRegressor(**params).fit(x, y))
    return model


def predict(model: FittedModel, df: pd.DataFrame) -> np.ndarray:
    """IBU predictions for every row of ``df`` (rows with null IBU included)."""
    x = _design_matrix(model.spec, df)
    raw = np.mean([booster.predict(x) for booster in model.boosters], axis=0)
    return _decode_target(model.spec, raw.astype("float64"))


def save(model: FittedModel, directory: str | Path) -> list[Path]:
    """Write ``spec.json`` and one XGBoost JSON file per booster; return the written paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    names = []
    for index, booster in enumerate(model.boosters):
        path = directory / f"booster_{index}.json"
        booster.save_model(path)
        written.append(path)
        names.append(path.name)
    import xgboost

    spec_path = directory / SPEC_FILE
    payload = {
        "format": "xgboost-json",
        "xgboost_version": xgboost.__version__,
        "spec": model.spec.to_json(),
        "boosters": names,
        "target": TARGET,
    }
    spec_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return [spec_path, *written]


def to_files(model: FittedModel) -> dict[str, bytes]:
    """The saved files as bytes (for the model registry), via :func:`save`."""
    with tempfile.TemporaryDirectory() as tmp:
        return {p.name: p.read_bytes() for p in save(model, tmp)}


def from_files(files: dict[str, bytes]) -> FittedModel:
    """Inverse of :func:`to_files`, via :func:`load`."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        return load(tmp)


def load(directory: str | Path) -> FittedModel:
    """Inverse of ``save``: reads only JSON files."""
    from xgboost import XGBRegressor

    directory = Path(directory)
    payload = json.loads((directory / SPEC_FILE).read_text())
    model = FittedModel(ModelSpec.from_json(payload["spec"]))
    for name in payload["boosters"]:
        booster = XGBRegressor()
        booster.load_model(directory / name)
        model.boosters.append(booster)
    return model


def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, median absolute error (robust to the two 1000+ IBU rows), RMSE and R2."""
    from sklearn.metrics import (
        mean_absolute_error,
        mean_squared_error,
        median_absolute_error,
        r2_score,
    )

    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "median_ae": float(median_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
    }


def evaluate_seed_split(spec: ModelSpec, df: pd.DataFrame) -> dict[str, Any]:
    """Fit/score on the original IBU model's split: IBU-known rows in id order, test_size 0.33,
    seed 42."""
    from sklearn.model_selection import train_test_split

    rows = training_rows(df)
    train, test = train_test_split(
        rows, test_size=SEED_SPLIT_TEST_SIZE, random_state=SEED_SPLIT_RANDOM_STATE
    )
    model = fit(spec, train)
    y_true = test[TARGET].to_numpy(dtype="float64")
    y_pred = predict(model, test)
    return {
        **_metrics(y_true, y_pred),
        "n_train": len(train),
        "n_test": len(test),
        "test_ids": test["id"].astype("int64").tolist() if "id" in test else [],
        "y_true": y_true,
        "y_pred": y_pred,
    }


def cv_folds(
    n_rows: int, n_splits: int = 5, n_repeats: int = 3, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """RepeatedKFold indices; depend only on the row count and seed, so any two specs that are
    evaluated with the same seed see exactly the same folds."""
    from sklearn.model_selection import RepeatedKFold

    splitter = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    return list(splitter.split(np.arange(n_rows)))


def evaluate_cv(
    spec: ModelSpec,
    df: pd.DataFrame,
    n_splits: int = 5,
    n_repeats: int = 3,
    seed: int = 0,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Repeated k-fold CV on the IBU-known rows in id order; per-fold and mean metrics (with
    ``return_predictions``, also ``y_true``/``y_pred``: the first repeat's out-of-fold
    predictions, one per row, for plots of held-out errors).

    Folds run sequentially with single-threaded boosters: on 256-row folds threads cost more
    than they save, and results stay independent of the machine
    (docs/decisions/0002-single-threaded-baseline-fits.md).
    """
    rows = training_rows(df)
    held_out = [
        _fold_predictions(spec, rows, train_idx, test_idx)
        for train_idx, test_idx in cv_folds(len(rows), n_splits, n_repeats, seed)
    ]
    folds = [_metrics(y_true, y_pred) for y_true, y_pred in held_out]
    maes = np.array([fold["mae"] for fold in folds])
    out = {
        "mae": float(maes.mean()),
        "mae_std": float(maes.std(ddof=1)) if len(maes) > 1 else 0.0,
        "rmse": float(np.mean([fold["rmse"] for fold in folds])),
        "median_ae": float(np.mean([fold["median_ae"] for fold in folds])),
        "r2": float(np.mean([fold["r2"] for fold in folds])),
        "fold_mae": maes.tolist(),
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "seed": seed,
        "n_rows": len(rows),
    }
    if return_predictions:
        first = held_out[:n_splits]
        out["y_true"] = np.concatenate([t for t, _ in first])
        out["y_pred"] = np.concatenate([p for _, p in first])
    return out


def _fold_predictions(
    spec: ModelSpec, rows: pd.DataFrame, train_idx: np.ndarray, test_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fit on one fold's training rows; its held-out rows' IBU and predictions."""
    test = rows.iloc[test_idx]
    model = fit(spec, rows.iloc[train_idx])
    return test[TARGET].to_numpy(dtype="float64"), np.asarray(predict(model, test), "float64")


def feature_importance(model: FittedModel, importance_type: str = "gain") -> dict[str, float]:
    """Mean per-feature importance over the bag, normalised to sum to 1, keyed by feature name.

    Gain is the default because split counts overrate noisy continuous features.
    """
    totals = dict.fromkeys(model.spec.features, 0.0)
    for booster in model.boosters:
        scores = booster.get_booster().get_score(importance_type=importance_type)
        for key, value in scores.items():
            name = _feature_name(key, model.spec.features)
            totals[name] += float(value) / len(model.boosters)
    norm = sum(totals.values()) or 1.0
    return {name: value / norm for name, value in totals.items()}


def _feature_name(key: str, features: Sequence[str]) -> str:
    """Map XGBoost's 'f3' keys (numpy training) back to feature names."""
    if key.startswith("f") and key[1:].isdigit():
        return features[int(key[1:])]
    return key
