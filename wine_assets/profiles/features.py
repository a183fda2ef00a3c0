"""Daily features per sensor: what the clustering sees, and how trustworthy each day is.

NaN and ±inf readings (the generator's noise mode plants both) are counted per sensor-day and
then left out of every statistic, so one bad value never turns a day's mean into NaN or inf. A day
with fewer than ``min_readings`` usable readings is flagged (``enough_readings`` false) rather
than filled in: the model trains on flagged days never, and assigns them no profile.
"""

import numpy as np
import pandas as pd

#: Hourly sensors: a complete day has 24 readings.
EXPECTED_READINGS = 24
#: The feature space of the profile model (columns of ``daily_features``).
MODEL_FEATURES = ("mean", "std", "min", "max")
COLUMNS = (
    "sensor_id",
    "day",
    "readings",
    "nan_values",
    "inf_values",
    "share_missing",
    *MODEL_FEATURES,
    "enough_readings",
)
DESCRIPTIONS = {
    "readings": "finite readings that day (NaN and inf excluded)",
    "nan_values": "NaN readings, excluded",
    "inf_values": "+inf/-inf readings, excluded",
    "share_missing": f"share of the {EXPECTED_READINGS} hourly readings without a finite value",
    "std": "sample standard deviation (ddof=1) of the finite readings",
    "enough_readings": "false: too few readings; kept for the record, not clustered",
}


def empty_features(sensor_id_dtype: object) -> pd.DataFrame:
    """No sensor-days, typed like a day with some (ids stay int or text as in the readings)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    return frame.astype(
        {
            "sensor_id": sensor_id_dtype,
            "day": "string",
            "readings": "int64",
            "nan_values": "int64",
            "inf_values": "int64",
            "enough_readings": "bool",
        }
    )


def daily_features(temperatures: pd.DataFrame, day: str, min_readings: int) -> pd.DataFrame:
    """One row per sensor for the readings of ``day`` (a frame holding that day only)."""
    if min_readings < 2:
        raise ValueError(f"min_readings: must be at least 2 (a std needs two), got {min_readings}")
    if temperatures.empty:
        return empty_features(temperatures["sensor_id"].dtype)
    values = temperatures["temperature"].to_numpy(dtype="float64")
    finite = np.isfinite(values)
    frame = pd.DataFrame(
        {
            "sensor_id": temperatures["sensor_id"].to_numpy(),
            "value": np.where(finite, values, np.nan),
            "nan_values": np.isnan(values),
            "inf_values": np.isinf(values),
        }
    )
    grouped = frame.groupby("sensor_id", sort=True)
    stats = grouped["value"].agg(["count", "mean", "std", "min", "max"])
    out = pd.DataFrame(
        {
            "sensor_id": stats.index.to_numpy(),
            "day": pd.array([day] * len(stats), dtype="string"),
            "readings": stats["count"].to_numpy(dtype="int64"),
            "nan_values": grouped["nan_values"].sum().to_numpy(dtype="int64"),
            "inf_values": grouped["inf_values"].sum().to_numpy(dtype="int64"),
        }
    )
    out["share_missing"] = (
        np.clip(EXPECTED_READINGS - out["readings"].to_numpy(), 0, None) / EXPECTED_READINGS
    )
    for name in MODEL_FEATURES:
        out[name] = stats[name].to_numpy(dtype="float64")
    out["enough_readings"] = out["readings"] >= min_readings
    return out[list(COLUMNS)]


def model_rows(features: pd.DataFrame) -> pd.DataFrame:
    """The sensor-days the model may see: enough readings (hence finite features)."""
    return features[features["enough_readings"].to_numpy(dtype=bool)]


def nonfinite_model_inputs(features: pd.DataFrame) -> dict[str, int]:
    """Per model feature, how many model rows are NaN or inf (all zeros when healthy)."""
    rows = model_rows(features)
    return {
        name: int((~np.isfinite(rows[name].to_numpy(dtype="float64"))).sum())
        for name in MODEL_FEATURES
    }
