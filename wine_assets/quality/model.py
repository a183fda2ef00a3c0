"""Wine quality regression evaluated as Cortez et al. (2009) did, free of Dagster.

The candidate is an ExtraTrees regressor on the 11 UCI features plus a wine-type flag, one model
for both types.  Baselines are the barrel system's original XGBoost regressor (defaults, one per
type) and the original 6-feature "good wine" classifier (a random forest, "good" = quality >= 6).

Evaluation follows Cortez: 5-fold CV repeated 20 times, MAD (= MAE) and the share of wines
with |y - y_hat| <= T for T = 0.25, 0.5, 1.0, on the raw regression output (nothing rounded),
per wine type.  ``dedup=True`` keeps identical rows (features + quality) in the same fold: 240
of the 1599 red rows repeat another row, and a fully grown forest recalls a copy it trained on.

Models are saved in the libraries' own formats, never pickle: XGBoost's JSON, and scikit-learn
forests through skops, which builds only the types it is told to trust. A forest's node arrays
are also copied into flat arrays right after fitting or loading (public attributes only), for
the small batches where walking them in numpy beats the forest's own predict.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from platform_core.specs import JsonSpec
from wine_assets.features import FEATURES, QUALITY_SCALE, TARGET, WINE_TYPES

# scikit-learn, skops and XGBoost load where they are used, not with this module: every
# sensor-triggered run imports the code location (docs/decisions/0005-heavy-imports-where-used.md).
if TYPE_CHECKING:
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier
    from xgboost import XGBRegressor

    from wine_assets.quality.trust import Trust

#: Wine-type encoding fed to models that train on both types at once.
WINE_TYPE_FEATURE = "is_red"
WINE_TYPE_CODES: dict[str, float] = {"red": 1.0, "white": 0.0}

#: Cortez's tolerances; metric names are ``acc_t025``, ``acc_t05``, ``acc_t10``.
TOLERANCES: dict[str, float] = {"acc_t025": 0.25, "acc_t05": 0.5, "acc_t10": 1.0}

#: The original classifier's target: a wine is "good" when quality >= 6.
GOOD_THRESHOLD = 6


def is_good(quality: Any) -> Any:
    """The one definition of a good wine: quality >= ``GOOD_THRESHOLD`` (UCI's convention and
    the original classifier's label). Used alike for true scores, predicted scores (the service's
    verdict, the page, the evaluation's ``good_accuracy``) and the P(good) calibration's label."""
    return np.asarray(quality, dtype=np.float64) >= GOOD_THRESHOLD


SYSTEM_B_FEATURES: tuple[str, ...] = (
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "total_sulfur_dioxide",
    "ph",
    "alcohol",
)

EXTRA_TREES = "extra_trees_regressor"
XGB_REGRESSOR = "xgb_regressor"
RF_CLASSIFIER = "random_forest_classifier"
KINDS = (EXTRA_TREES, XGB_REGRESSOR, RF_CLASSIFIER)
FOREST_KINDS = (EXTRA_TREES, RF_CLASSIFIER)
AGGREGATES = ("mean", "median")

SPEC_FILE = "spec.json"
FILE_FORMAT = "wine-quality-model/2"
ALL = "all"


@dataclass(frozen=True)
class ModelSpec(JsonSpec):
    """Everything needed to refit or reload a model.

    ``features`` are the input columns in order; ``is_red`` (1.0 red, 0.0 white) is derived from
    ``wine_type``.  ``per_type`` fits one model per wine type (then ``is_red`` is pointless).
    ``aggregate`` is how a forest regressor combines its trees: ``mean`` (a true regression
    output) or ``median`` (L1-optimal, but whole scores only: see CANDIDATE_SPEC).
    """

    name: str
    kind: str
    hyperparameters: dict[str, Any]
    features: tuple[str, ...]
    per_type: bool = False
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate: expected one of {AGGREGATES}, got {self.aggregate!r}")
        unknown = [f for f in self.features if f not in (*FEATURES, WINE_TYPE_FEATURE)]
        if unknown:
            raise ValueError(f"unknown features {unknown}")

    @property
    def is_classifier(self) -> bool:
        return self.kind == RF_CLASSIFIER


#: Our model: one joint ExtraTrees forest (11 features + wine type), fully grown trees, the
#: mean of the trees (a median or trimmed mean lowers MAD only by pulling outputs onto whole
#: scores, which Cortez's protocol excludes as rounding). Why, and every variant tried:
#: docs/decisions/0001-wine-quality-model.md.
CANDIDATE_SPEC = ModelSpec(
    name="extra_trees_joint_v1",
    kind=EXTRA_TREES,
    hyperparameters={
        "n_estimators": 251,
        "max_features": 0.5,
        "min_samples_leaf": 1,
        "bootstrap": False,
        "random_state": 0,
        "n_jobs": 2,
    },
    features=(*FEATURES, WINE_TYPE_FEATURE),
    per_type=False,
    aggregate="mean",
)

#: The barrel system's original regressor: XGBoost's defaults on the 11 features, one model per
#: wine type (Cortez also fit each type separately; a joint model without the type flag would
#: be a weaker baseline). One thread: same predictions, and no stall on a busy machine
#: (docs/decisions/0002-single-threaded-baseline-fits.md).
SYSTEM_A_SPEC = ModelSpec(
    name="system_a_xgb_default",
    kind=XGB_REGRESSOR,
    hyperparameters={"objective": "reg:squarederror", "random_state": 0, "n_jobs": 1},
    features=tuple(FEATURES),
    per_type=True,
)

#: The original 6-feature "good wine" classifier: RandomForestClassifier(n_estimators=60) on
#: six features, both types pooled, no type flag, predicting quality >= 6. random_state pinned
#: (the original left it unset) for repeatability.
SYSTEM_B_SPEC = ModelSpec(
    name="system_b_rf_good",
    kind=RF_CLASSIFIER,
    hyperparameters={"n_estimators": 60, "random_state": 0, "n_jobs": 2},
    features=SYSTEM_B_FEATURES,
    per_type=False,
)


# --------------------------------------------------------------------------- forests

#: Up to this many rows all trees are walked at once in numpy: fastest below ~20 rows, and a
#: few hundred barrels (~0.1 s) cost less than 250 calls into scikit-learn. Larger batches go
#: to the forest's own ``predict``.
_FEW_ROWS = 512

#: What a forest's skops file may hold beyond skops's default-trusted types (scikit-learn's
#: estimators, numpy arrays, builtins): scikit-learn's compiled tree, by the name skops's
#: ``get_untrusted_types`` reports for it (a name in the file format, not an import). Any
#: other type in a file is refused before anything is built.
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]


@dataclass
class PackedForest:
    """A fitted scikit-learn forest, and all its trees' nodes in flat arrays (global node ids)
    for the small-batch walk.

    The arrays are copied from each tree's public attributes (``tree_.children_left``,
    ``children_right``, ``feature``, ``threshold``, ``value``): rows go left when
    ``x[feature] <= threshold`` on float32 inputs, as in scikit-learn; leaves carry the tree's
    output (class fractions for classifiers, normalised as ``predict_proba`` does).
    """

    forest: ExtraTreesRegressor | RandomForestClassifier
    roots: np.ndarray  # int64 (n_trees,)
    left: np.ndarray  # int32 (n_nodes,), -1 at leaves
    right: np.ndarray  # int32 (n_nodes,), -1 at leaves
    feature: np.ndarray  # int32 (n_nodes,), -1 at leaves
    threshold: np.ndarray  # float64 (n_nodes,)
    value: np.ndarray  # float64 (n_nodes, n_outputs)

    @classmethod
    def from_sklearn(cls, forest: ExtraTreesRegressor | RandomForestClassifier) -> PackedForest:
        """Copy the node arrays of every fitted tree, renumbering nodes globally."""
        roots, lefts, rights, feats, thresholds, values = [], [], [], [], [], []
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaf = tree.children_left < 0
            roots.append(offset)
            lefts.append(np.where(leaf, -1, tree.children_left + offset))
            rights.append(np.where(leaf, -1, tree.children_right + offset))
            feats.append(np.where(leaf, -1, tree.feature))
            thresholds.append(np.where(leaf, 0.0, tree.threshold))
            value = np.asarray(tree.value[:, 0, :], dtype=np.float64)
            if hasattr(forest, "classes_"):
                norm = value.sum(axis=1, keepdims=True)
                value = value / np.where(norm == 0.0, 1.0, norm)
            values.append(value)
            offset += tree.node_count
        return cls(
            forest=forest,
            roots=np.asarray(roots, dtype=np.int64),
            left=np.concatenate(lefts).astype(np.int32),
            right=np.concatenate(rights).astype(np.int32),
            feature=np.concatenate(feats).astype(np.int32),
            threshold=np.concatenate(thresholds).astype(np.float64),
            value=np.concatenate(values).astype(np.float64),
        )

    def _leaves(self, x32: np.ndarray) -> np.ndarray:
        """Leaf node id per (tree, row), all trees stepped together one level at a time."""
        n_rows = len(x32)
        node = np.repeat(self.roots, n_rows)
        row = np.tile(np.arange(n_rows), len(self.roots))
        active = np.flatnonzero(self.left[node] >= 0)
        while active.size:
            current = node[active]
            go_left = x32[row[active], self.feature[current]] <= self.threshold[current]
            current = np.where(go_left, self.left[current], self.right[current])
            node[active] = current
            active = active[self.left[current] >= 0]
        return node.reshape(len(self.roots), n_rows)

    def tree_outputs(self, x: np.ndarray) -> np.ndarray:
        """Every tree's output, shape (n_trees, n_rows, n_outputs)."""
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != self.forest.n_features_in_:
            raise ValueError(
                f"expected {self.forest.n_features_in_} feature columns, got {x32.shape}"
            )
        if len(x32) <= _FEW_ROWS:
            return self.value[self._leaves(x32)]
        if hasattr(self.forest, "classes_"):
            return np.stack([t.predict_proba(x32) for t in self.forest.estimators_])
        return np.stack([t.predict(x32)[:, None] for t in self.forest.estimators_])

    def outputs(self, x: np.ndarray, aggregates: Sequence[str]) -> dict[str, np.ndarray]:
        """P(good) under ``proba`` for a classifier, else the trees' outputs combined per
        aggregate (``mean``: the forest's ``predict``; ``median``)."""
        classifier = hasattr(self.forest, "classes_")
        if len(x) > _FEW_ROWS and "median" not in aggregates:
            x32 = np.asarray(x, dtype=np.float32)
            if classifier:
                proba = self.forest.predict_proba(x32)
                return {"proba": proba[:, list(self.forest.classes_).index(1)]}
            return dict.fromkeys(aggregates, self.forest.predict(x32))
        trees = self.tree_outputs(x)
        if classifier:
            return {"proba": trees.mean(axis=0)[:, list(self.forest.classes_).index(1)]}
        return {
            k: (np.median if k == "median" else np.mean)(trees[:, :, 0], axis=0) for k in aggregates
        }


# ------------------------------------------------------------------------------ fit / predict


@dataclass
class FittedModel:
    """A spec and its fitted parts: ``{"all": model}`` or one model per wine type."""

    spec: ModelSpec
    parts: dict[str, PackedForest | XGBRegressor] = field(default_factory=dict)
    #: P(good) calibration and conformal intervals (``trust.py``); None: scores only.
    trust: Trust | None = None


def check_frame(df: pd.DataFrame, features: Sequence[str] = FEATURES) -> None:
    """Fail early on the input mistakes that would otherwise give silent garbage."""
    needed = [c for c in features if c != WINE_TYPE_FEATURE] + ["wine_type"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"columns missing: {missing}")
    bad_types = sorted(set(df["wine_type"].unique()) - set(WINE_TYPES))
    if bad_types:
        raise ValueError(f"wine_type: expected {WINE_TYPES}, got {bad_types}")


def design_matrix(spec: ModelSpec, df: pd.DataFrame) -> np.ndarray:
    """The spec's inputs as float64; ``is_red`` derived from ``wine_type``.

    NaN is rejected: the UCI data has none and the tree walk has no missing-value branch.
    """
    check_frame(df, spec.features)
    # Column by column into one array: selecting a sub-frame costs ~1 ms even for one row,
    # which is most of a single prediction's time in the service.
    return _matrix(
        spec, df["wine_type"].to_numpy(), lambda name: df[name].to_numpy(dtype=np.float64)
    )


def _matrix(
    spec: ModelSpec, wine_type: np.ndarray, column: Callable[[str], np.ndarray]
) -> np.ndarray:
    """``design_matrix`` over any column source (a frame's columns or an array's)."""
    matrix = np.empty((len(wine_type), len(spec.features)), dtype=np.float64)
    for i, name in enumerate(spec.features):
        if name == WINE_TYPE_FEATURE:
            for type_name, code in WINE_TYPE_CODES.items():
                matrix[wine_type == type_name, i] = code
        else:
            matrix[:, i] = column(name)
    if np.isnan(matrix).any():
        raise ValueError(f"missing values in {spec.features}")
    return matrix


def make_estimator(spec: ModelSpec) -> ExtraTreesRegressor | RandomForestClassifier | XGBRegressor:
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier
    from xgboost import XGBRegressor

    """The unfitted library estimator for ``spec``."""
    if spec.kind == EXTRA_TREES:
        return ExtraTreesRegressor(**spec.hyperparameters)
    if spec.kind == RF_CLASSIFIER:
        return RandomForestClassifier(**spec.hyperparameters)
    return XGBRegressor(**spec.hyperparameters)


def target(spec: ModelSpec, df: pd.DataFrame) -> np.ndarray:
    """Quality as float for regressors, 1/0 good for the classifier."""
    quality = df[TARGET].to_numpy()
    if spec.is_classifier:
        return is_good(quality).astype(np.int64)
    return quality.astype(np.float64)


def part_names(spec: ModelSpec) -> list[str]:
    """``["all"]`` for a joint model, else one part per wine type."""
    return list(WINE_TYPES) if spec.per_type else [ALL]


def _part_rows(spec: ModelSpec, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean row mask per fitted part."""
    wine_type = df["wine_type"].to_numpy()
    return {p: np.ones(len(df), bool) if p == ALL else wine_type == p for p in part_names(spec)}


def fit(spec: ModelSpec, df: pd.DataFrame) -> FittedModel:
    """Fit ``spec`` on ``df`` (11 features, quality, wine_type); forests are packed at once."""
    check_frame(df, spec.features)
    fitted = FittedModel(spec)
    for part, rows in _part_rows(spec, df).items():
        sub = df.loc[rows]
        if sub.empty:
            raise ValueError(f"no training rows for part {part!r} of {spec.name!r}")
        estimator = make_estimator(spec).fit(design_matrix(spec, sub), target(spec, sub))
        if spec.kind in FOREST_KINDS:
            fitted.parts[part] = PackedForest.from_sklearn(estimator)
        else:
            fitted.parts[part] = estimator
    return fitted


def _raw_outputs(
    fitted: FittedModel, df: pd.DataFrame, aggregates: Sequence[str]
) -> dict[str, np.ndarray]:
    """Unclipped output per aggregate (regression) or P(good) under key ``proba``."""
    x = design_matrix(fitted.spec, df)  # checks the frame
    return _matrix_outputs(fitted, df["wine_type"].to_numpy(), x, aggregates)


def _matrix_outputs(
    fitted: FittedModel, wine_type: np.ndarray, x: np.ndarray, aggregates: Sequence[str]
) -> dict[str, np.ndarray]:
    """``_raw_outputs`` on a design matrix and the rows' wine types."""
    spec = fitted.spec
    keys = ["proba"] if spec.is_classifier else list(aggregates)
    out = {key: np.full(len(x), np.nan) for key in keys}
    for part in part_names(spec):
        rows = np.ones(len(x), bool) if part == ALL else wine_type == part
        if not rows.any():
            continue
        model = fitted.parts[part]
        part_x = x if rows.all() else x[rows]
        if isinstance(model, PackedForest):
            for key, value in model.outputs(part_x, keys).items():
                out[key][rows] = value
        else:
            prediction = np.asarray(model.predict(part_x), dtype=np.float64)
            for key in keys:
                out[key][rows] = prediction
    return out


def clip_quality(y: np.ndarray) -> np.ndarray:
    """Quality is on a 0-10 scale; XGBoost can step outside it when extrapolating."""
    return np.clip(np.asarray(y, dtype=np.float64), *QUALITY_SCALE)


def predict(fitted: FittedModel, df: pd.DataFrame) -> np.ndarray:
    """Predicted quality (float, clipped to [0, 10]) for rows of either wine type."""
    if fitted.spec.is_classifier:
        raise TypeError(f"{fitted.spec.name!r} is a classifier: use predict_good_proba")
    raw = _raw_outputs(fitted, df, [fitted.spec.aggregate])[fitted.spec.aggregate]
    return clip_quality(raw)


def predict_arrays(fitted: FittedModel, wine_type: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``predict`` for rows already validated, as arrays: wine types and the 11 ``FEATURES``
    in order. The prediction service's path: building a DataFrame for a few rows costs more
    than walking the forest."""
    if fitted.spec.is_classifier:
        raise TypeError(f"{fitted.spec.name!r} is a classifier: use predict_good_proba")
    bad_types = sorted(set(np.unique(wine_type)) - set(WINE_TYPES))
    if bad_types:
        raise ValueError(f"wine_type: expected {WINE_TYPES}, got {bad_types}")
    index = {name: i for i, name in enumerate(FEATURES)}
    x = _matrix(fitted.spec, wine_type, lambda name: features[:, index[name]])
    raw = _matrix_outputs(fitted, wine_type, x, [fitted.spec.aggregate])
    return clip_quality(raw[fitted.spec.aggregate])


def predict_good_proba(fitted: FittedModel, df: pd.DataFrame) -> np.ndarray:
    """P(quality >= 6) from the classifier spec."""
    if not fitted.spec.is_classifier:
        raise TypeError(f"{fitted.spec.name!r} is a regressor: use predict")
    return _raw_outputs(fitted, df, [])["proba"]


# ------------------------------------------------------------------------------------- files


def to_files(fitted: FittedModel) -> dict[str, bytes]:
    """``spec.json`` plus one file per part: the forest through skops, or XGBoost's own JSON."""
    import sklearn
    import skops
    import skops.io
    import xgboost

    files: dict[str, bytes] = {}
    parts: dict[str, str] = {}
    for part, model in fitted.parts.items():
        if isinstance(model, PackedForest):
            name = f"forest_{part}.skops"
            files[name] = skops.io.dumps(model.forest, compression=zipfile.ZIP_DEFLATED)
        else:
            name = f"xgb_{part}.json"
            files[name] = bytes(model.get_booster().save_raw(raw_format="json"))
        parts[part] = name
    if fitted.trust is not None:
        from wine_assets.quality.trust import TRUST_FILE

        files[TRUST_FILE] = fitted.trust.to_bytes()
    manifest = {
        "format": FILE_FORMAT,
        "spec": fitted.spec.to_json(),
        "parts": parts,
        "wine_type_encoding": WINE_TYPE_CODES,
        "target": TARGET,
        "good_threshold": GOOD_THRESHOLD,
        "versions": {
            "scikit-learn": sklearn.__version__,
            "skops": skops.__version__,
            "xgboost": xgboost.__version__,
            "numpy": np.__version__,
        },
    }
    files[SPEC_FILE] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def from_files(files: dict[str, bytes]) -> FittedModel:
    """Inverse of ``to_files``: JSON, and skops files holding only ``SKOPS_TRUSTED`` types
    beyond skops's defaults (no pickle, no code from the files)."""
    manifest = json.loads(files[SPEC_FILE])
    if manifest.get("format") != FILE_FORMAT:
        raise ValueError(
            f"model files in format {manifest.get('format')!r}, not {FILE_FORMAT!r} (forests "
            "were packed JSON before skops): retrain it, e.g. run the wine_retrain job"
        )
    spec = ModelSpec.from_json(manifest["spec"])
    fitted = FittedModel(spec)
    for part, name in manifest["parts"].items():
        if spec.kind in FOREST_KINDS:
            import skops.io
            from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier

            forest = skops.io.loads(files[name], trusted=SKOPS_TRUSTED)
            kind = ExtraTreesRegressor if spec.kind == EXTRA_TREES else RandomForestClassifier
            if type(forest) is not kind:
                raise ValueError(f"{name}: expected a {kind.__name__}, got {type(forest)}")
            fitted.parts[part] = PackedForest.from_sklearn(forest)
        else:
            from xgboost import XGBRegressor

            booster = XGBRegressor()
            booster.load_model(bytearray(files[name]))
            fitted.parts[part] = booster
    if sorted(fitted.parts) != sorted(part_names(spec)):
        raise ValueError(f"model parts {sorted(fitted.parts)} != {part_names(spec)}")
    from wine_assets.quality.trust import TRUST_FILE, Trust

    if TRUST_FILE in files:
        fitted.trust = Trust.from_bytes(files[TRUST_FILE])
    return fitted


# ----------------------------------------------------------------------------------- metrics


def cortez_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAD and accuracy within tolerance T (|y - y_hat| <= T) on the unrounded predictions."""
    error = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))
    if error.size == 0:
        raise ValueError("no predictions")
    out = {"mad": float(error.mean())}
    for name, tolerance in TOLERANCES.items():
        out[name] = float(np.mean(error <= tolerance))
    return out


def confusion(y_true: np.ndarray, y_pred_rounded: np.ndarray) -> pd.DataFrame:
    """Counts of true (rows) vs predicted (columns) scores, every score in between included.

    Predictions are rounded to the nearest integer here too, so raw output can be passed.
    """
    true = np.asarray(y_true).astype(np.int64)
    pred = np.rint(np.asarray(y_pred_rounded, dtype=np.float64)).astype(np.int64)
    if true.size == 0:
        return pd.DataFrame()
    labels = list(range(int(min(true.min(), pred.min())), int(max(true.max(), pred.max())) + 1))
    table = pd.crosstab(
        pd.Categorical(true, categories=labels),
        pd.Categorical(pred, categories=labels),
        dropna=False,
    )
    table.index.name, table.columns.name = "true", "predicted"
    return table.astype(np.int64)


def classification_metrics(good: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy at P >= 0.5 and ROC AUC for the good/not-good task."""
    good = np.asarray(good).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(good, proba)) if 0 < good.sum() < len(good) else float("nan")
    # RandomForestClassifier.predict breaks a 0.5 tie towards the first class (not good).
    return {"accuracy": float(np.mean((proba > 0.5) == good)), "auc": auc}


def _regression_metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """Cortez's metrics plus the regressor read as a good/not-good classifier: a wine is called
    good when its predicted score is good by ``is_good`` (>= 6), as the service calls it."""
    good = is_good(y)
    out = cortez_metrics(y, y_hat)
    out["good_accuracy"] = float(np.mean(is_good(y_hat) == good))
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(good, y_hat) if 0 < good.sum() < len(good) else np.nan
    out["good_auc"] = float(auc)
    return out


# ------------------------------------------------------------------------------------- folds


def duplicate_groups(df: pd.DataFrame) -> np.ndarray:
    """Group id per row: rows with the same wine type, 11 features and quality share one."""
    check_frame(df)
    keys = ["wine_type", *FEATURES, TARGET]
    return df.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()


def fold_assignments(
    df: pd.DataFrame, n_splits: int = 5, n_repeats: int = 20, seed: int = 0, dedup: bool = False
) -> np.ndarray:
    """Fold id per (repeat, row), shape (n_repeats, n_rows).

    Each wine type is split on its own into ``n_splits`` folds with equal group counts, so the
    per-type figures are those of a per-type CV and per-type models always get training rows.
    Groups are single rows, or (``dedup``) sets of identical rows.  Depends only on the data
    and ``seed``, so every spec evaluated with the same seed sees the same folds.
    """
    if n_splits < 2 or n_repeats < 1:
        raise ValueError("need n_splits >= 2 and n_repeats >= 1")
    groups = duplicate_groups(df) if dedup else np.arange(len(df))
    wine_type = df["wine_type"].to_numpy()
    folds = np.full((n_repeats, len(df)), -1, dtype=np.int64)
    for repeat in range(n_repeats):
        for type_index, wine in enumerate(WINE_TYPES):
            rows = np.flatnonzero(wine_type == wine)
            if rows.size == 0:
                continue
            unique, inverse = np.unique(groups[rows], return_inverse=True)
            if len(unique) < n_splits:
                raise ValueError(f"{wine}: {len(unique)} groups < {n_splits} folds")
            rng = np.random.default_rng([seed, repeat, type_index])
            group_fold = np.empty(len(unique), dtype=np.int64)
            group_fold[rng.permutation(len(unique))] = (
                np.arange(len(unique)) * n_splits // len(unique)
            )
            folds[repeat, rows] = group_fold[inverse]
    return folds


def _summarise(per_repeat: list[dict[str, float]]) -> dict[str, float]:
    """Mean and (ddof=1) std over repeats of each metric."""
    out: dict[str, float] = {}
    for key in per_repeat[0]:
        values = np.array([m[key] for m in per_repeat], dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def evaluate_cv(
    spec: ModelSpec,
    df: pd.DataFrame,
    n_splits: int = 5,
    n_repeats: int = 20,
    seed: int = 0,
    dedup: bool = False,
    aggregates: Sequence[str] = (),
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Cortez's repeated k-fold CV: metrics over each repeat's out-of-fold predictions, then
    mean and std over repeats, overall and per wine type.

    Regressors report mad and acc_t025/t05/t10 (plus good_accuracy/good_auc: the output
    read by ``is_good``); the classifier reports accuracy and auc.  ``aggregates`` adds forest
    aggregations other than the spec's, scored from the same fits (under ``by_aggregate``).
    """
    frame = df.reset_index(drop=True)
    check_frame(frame, spec.features)
    bad = [a for a in aggregates if a not in AGGREGATES]
    if bad or (aggregates and spec.kind != EXTRA_TREES):
        raise ValueError(f"aggregates {list(aggregates)} need an {EXTRA_TREES} spec")
    folds = fold_assignments(frame, n_splits, n_repeats, seed, dedup)
    keys = ["proba"] if spec.is_classifier else [spec.aggregate, *aggregates]
    keys = list(dict.fromkeys(keys))
    y = frame[TARGET].to_numpy().astype(np.float64)
    wine_type = frame["wine_type"].to_numpy()
    scopes = {"overall": np.ones(len(frame), dtype=bool)} | {t: wine_type == t for t in WINE_TYPES}
    per_repeat: dict[str, dict[str, list[dict[str, float]]]] = {
        key: {scope: [] for scope in scopes} for key in keys
    }
    predictions = {key: np.full((n_repeats, len(frame)), np.nan) for key in keys}
    fit_s = predict_s = 0.0
    for repeat in range(n_repeats):
        for fold in range(n_splits):
            test = folds[repeat] == fold
            start = time.perf_counter()
            fitted = fit(spec, frame.loc[~test])
            fit_s += time.perf_counter() - start
            start = time.perf_counter()
            outputs = _raw_outputs(fitted, frame.loc[test], [k for k in keys if k != "proba"])
            predict_s += time.perf_counter() - start
            for key in keys:
                value = outputs[key]
                predictions[key][repeat, test] = value if key == "proba" else clip_quality(value)
        for key in keys:
            for scope, rows in scopes.items():
                if key == "proba":
                    metrics = classification_metrics(
                        is_good(y[rows]), predictions[key][repeat, rows]
                    )
                else:
                    metrics = _regression_metrics(y[rows], predictions[key][repeat, rows])
                per_repeat[key][scope].append(metrics)

    def summary(key: str) -> dict[str, Any]:
        return {scope: _summarise(per_repeat[key][scope]) for scope in scopes}

    main_key = keys[0]
    result: dict[str, Any] = {
        "spec": spec.name,
        "kind": spec.kind,
        "task": "classification" if spec.is_classifier else "regression",
        "aggregate": None if spec.is_classifier else spec.aggregate,
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "seed": seed,
        "dedup": dedup,
        "n_rows": len(frame),
        "n_groups": int(len(np.unique(duplicate_groups(frame)))) if dedup else len(frame),
        "folds_sha256": hashlib.sha256(folds.tobytes()).hexdigest(),
        "fit_seconds": fit_s,
        "predict_seconds": predict_s,
        **summary(main_key),
    }
    if len(keys) > 1:
        result["by_aggregate"] = {key: summary(key) for key in keys[1:]}
    if return_predictions:
        result["predictions"] = predictions[main_key]
        if len(keys) > 1:
            result["predictions_by_aggregate"] = {key: predictions[key] for key in keys[1:]}
    return result


def with_hyperparameters(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with some hyperparameters changed (e.g. fewer trees for a quick test)."""
    return replace(spec, hyperparameters={**spec.hyperparameters, **changes})
