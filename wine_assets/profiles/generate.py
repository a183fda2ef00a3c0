"""Synthetic hourly cellar temperatures shaped like system E's, one file per day.

Four behaviour archetypes (steady cellar, warm room, outdoor swing, chiller) with a per-sensor
offset and hourly noise, so k = 4 profiles have something to find. System E's noise mode is
reproduced: 10 % of the sensors never report, and NaN and ±inf values are planted. Used by the
benchmark and the tests; the counts of what was planted come back for checking.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

#: (base °C, daily swing amplitude, hourly noise sd) per archetype.
ARCHETYPES = ((13.0, 0.5, 0.3), (22.0, 2.0, 0.6), (10.0, 8.0, 1.5), (4.0, 1.0, 0.3))


@dataclass(frozen=True)
class Generated:
    """What was written: rows, files, and the noise planted (for tests to compare)."""

    files: list[Path]
    rows: int
    sensors_reporting: int
    nan_values: int
    inf_values: int


def write_days(
    drop_dir: Path,
    sensors: int,
    days: int,
    *,
    start: date = date(2023, 2, 15),
    seed: int = 0,
    noise: bool = False,
    fmt: str = "parquet",
    nan_share: float = 0.02,
    inf_share: float = 0.01,
) -> Generated:
    """Write ``days`` files of ``sensors`` × 24 hourly readings into ``drop_dir``."""
    if fmt not in {"parquet", "csv"}:
        raise ValueError(f"fmt: expected 'parquet' or 'csv', got {fmt!r}")
    rng = np.random.default_rng(seed)
    drop_dir.mkdir(parents=True, exist_ok=True)
    ids = np.arange(10_000, 10_000 + sensors, dtype="int64")
    kind = rng.integers(0, len(ARCHETYPES), sensors)
    base, amp, sd = (np.array(col)[kind] for col in zip(*ARCHETYPES, strict=True))
    base = base + rng.normal(0, 1.0, sensors)
    if noise:  # system E's noise mode: a tenth of the sensors is gone
        keep = rng.random(sensors) >= 0.10
        ids, base, amp, sd = ids[keep], base[keep], amp[keep], sd[keep]
    hours = np.arange(24)
    swing = np.sin(2 * np.pi * (hours - 9) / 24)
    files, rows, n_nan, n_inf = [], 0, 0, 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        temp = (
            base[:, None]
            + amp[:, None] * swing[None, :]
            + rng.normal(0, 1, (len(ids), 24)) * sd[:, None]
        )
        temp = temp.ravel()
        if noise:
            u = rng.random(temp.size)
            nan = u < nan_share
            inf = (u >= nan_share) & (u < nan_share + inf_share)
            temp[nan] = np.nan
            temp[inf] = np.where(rng.random(int(inf.sum())) < 0.5, np.inf, -np.inf)
            n_nan, n_inf = n_nan + int(nan.sum()), n_inf + int(inf.sum())
        stamps = pd.Timestamp(day) + pd.to_timedelta(np.tile(hours, len(ids)), unit="h")
        frame = pd.DataFrame(
            {"sensor_id": np.repeat(ids, 24), "timestamp": stamps, "temperature": temp}
        )
        path = drop_dir / f"readings-{day.isoformat()}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H")
            frame.to_csv(path, index=False)
        files.append(path)
        rows += len(frame)
    return Generated(files, rows, len(ids), n_nan, n_inf)
