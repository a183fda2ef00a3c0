"""The second source of ``sensor_temperatures``: the barrel readings store's history.

Barrels report whenever their gateway sends (every few seconds in the simulator), not once an
hour, so each barrel's ``temperature_c`` readings are averaged per hour: the barrel is the
sensor (its id as text), the hour's start is the timestamp. An hour without a reading gets no
row, so the daily features count it as missing instead of seeing an invented value.
"""

import pandas as pd

from wine_assets.profiles.drop import COLUMNS


def hourly_temperatures(history: pd.DataFrame) -> pd.DataFrame:
    """``barrel_id, updated_at, temperature_c`` readings → the drop files' hourly columns."""
    stamps = pd.to_datetime(history["updated_at"], utc=True, format="ISO8601")
    frame = pd.DataFrame(
        {
            "sensor_id": history["barrel_id"].astype("string").to_numpy(),
            "timestamp": stamps.dt.tz_localize(None).dt.floor("h").astype("datetime64[ns]"),
            "temperature": history["temperature_c"].to_numpy(dtype="float64"),
        }
    )
    hourly = frame.groupby(["sensor_id", "timestamp"], sort=True, as_index=False)["temperature"]
    out = hourly.mean()
    out["sensor_id"] = out["sensor_id"].astype("string")
    return out[list(COLUMNS)]
