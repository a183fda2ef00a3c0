"""The profile model: k-means on standardised daily features, trained continuously.

Each training starts from the previous model's centres (``init`` = those centres, one run of
Lloyd's algorithm), so profile numbers keep their meaning from one model to the next and the
centres drift with the data instead of being re-drawn at random. Centres are stored in feature
units (°C) together with the scaler, as JSON: no pickle, and the registry records its sha256.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from wine_assets.profiles.features import MODEL_FEATURES, model_rows

MODEL_FILE = "model.json"


@dataclass(frozen=True)
class ProfileModel:
    """Centres in feature units plus the standardisation they were fitted in."""

    features: tuple[str, ...]
    centres: list[list[float]]  # k × features, feature units
    scale_mean: list[float]
    scale_std: list[float]
    inertia: float = 0.0
    n_iter: int = 0
    warm_start: bool = False
    trained_rows: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.centres)

    def to_files(self) -> dict[str, bytes]:
        doc = asdict(self) | {"features": list(self.features), "format": "sensor-profiles/1"}
        return {MODEL_FILE: json.dumps(doc, indent=1).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ProfileModel:
        doc = json.loads(files[MODEL_FILE])
        if doc.pop("format", None) != "sensor-profiles/1":
            raise ValueError(f"{MODEL_FILE}: unknown format; expected sensor-profiles/1")
        return cls(**{**doc, "features": tuple(doc["features"])})

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.scale_mean)) / np.asarray(self.scale_std)

    def scaled_centres(self) -> np.ndarray:
        return self._scaled(np.asarray(self.centres, dtype="float64"))


@dataclass(frozen=True)
class Fit:
    """A new model and how it relates to the previous one."""

    model: ProfileModel
    labels: np.ndarray  # profile of each training row
    init_centres: np.ndarray | None  # feature units; None for a cold start
    centre_shift: list[float]  # per profile, Euclidean distance moved in feature units


def matrix(features: pd.DataFrame) -> np.ndarray:
    """The model rows as a float matrix, refusing any NaN/inf (they must never reach k-means)."""
    x = model_rows(features)[list(MODEL_FEATURES)].to_numpy(dtype="float64")
    if not np.isfinite(x).all():
        bad = [f for f, col in zip(MODEL_FEATURES, x.T, strict=True) if not np.isfinite(col).all()]
        raise ValueError(f"non-finite values in model features {bad}: refusing to train")
    return x


def fit(
    features: pd.DataFrame,
    k: int,
    previous: ProfileModel | None = None,
    *,
    seed: int = 0,
    max_iter: int = 300,
) -> Fit:
    """k-means on the sensor-days with enough readings, warm-started from ``previous``.

    The scaler is re-estimated on this data; the previous centres are mapped into it, so the
    initial centres are exactly the previous model's, whatever the data's spread now.
    """
    from sklearn.cluster import KMeans

    x = matrix(features)
    if len(x) < k:
        raise ValueError(f"k={k}: only {len(x)} sensor-days with enough readings to cluster")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    warm = previous is not None and previous.k == k and previous.features == MODEL_FEATURES
    init_units = np.asarray(previous.centres, dtype="float64") if warm else None
    if init_units is not None:
        km = KMeans(n_clusters=k, init=(init_units - mean) / std, n_init=1, max_iter=max_iter)
    else:
        km = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed, max_iter=max_iter)
    labels = km.fit_predict(z)
    centres = km.cluster_centers_ * std + mean
    shift = (
        np.linalg.norm(centres - init_units, axis=1).tolist()
        if init_units is not None
        else [float("nan")] * k
    )
    model = ProfileModel(
        features=MODEL_FEATURES,
        centres=centres.tolist(),
        scale_mean=mean.tolist(),
        scale_std=std.tolist(),
        inertia=float(km.inertia_),
        n_iter=int(km.n_iter_),
        warm_start=init_units is not None,
        trained_rows=len(x),
    )
    return Fit(model, labels.astype("int64"), init_units, shift)


def assign(model: ProfileModel, features: pd.DataFrame) -> pd.DataFrame:
    """``profile`` (nullable: none for flagged days) and ``distance`` (standardised units)."""
    ok = features["enough_readings"].to_numpy(dtype=bool)
    x = features.loc[ok, list(model.features)].to_numpy(dtype="float64")
    z = model._scaled(x)
    centres = model.scaled_centres()
    d2 = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    nearest = d2.argmin(axis=1)
    profile = pd.array(np.full(len(features), pd.NA), dtype="Int64")
    distance = np.full(len(features), np.nan)
    profile[ok] = nearest
    distance[ok] = np.sqrt(d2[np.arange(len(nearest)), nearest])
    return pd.DataFrame(
        {
            "sensor_id": features["sensor_id"].to_numpy(),
            "day": features["day"].astype("string").to_numpy(),
            "profile": profile,
            "distance": distance,
        }
    )


def cluster_sizes(labels: np.ndarray | pd.Series, k: int) -> dict[str, int]:
    """Members per profile ``"0"``…``"k-1"`` (zeros included: an empty cluster shows)."""
    values = pd.Series(labels).dropna().astype("int64").to_numpy()
    counts = np.bincount(values, minlength=k) if len(values) else np.zeros(k, dtype=int)
    return {str(i): int(n) for i, n in enumerate(counts[:k])}
