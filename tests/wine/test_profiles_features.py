"""Daily features on hand-computed data, and what the drop files may and may not contain."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wine_assets.profiles.drop import DropFileError, file_days, read_drop_file
from wine_assets.profiles.features import daily_features, nonfinite_model_inputs

DAY = "2023-02-15"


def hourly(sensor: int, values: list[float]) -> pd.DataFrame:
    stamps = pd.Timestamp(DAY) + pd.to_timedelta(range(len(values)), unit="h")
    return pd.DataFrame({"sensor_id": sensor, "timestamp": stamps, "temperature": values})


@pytest.fixture
def readings() -> pd.DataFrame:
    """Sensor 1: 10, 12, 14 plus one NaN and one +inf; sensor 2: 24 × 5.0; sensor 3: NaN only."""
    return pd.concat(
        [
            hourly(1, [10.0, np.nan, 12.0, np.inf, 14.0]),
            hourly(2, [5.0] * 24),
            hourly(3, [np.nan, -np.inf]),
        ],
        ignore_index=True,
    )


def test_features_match_the_hand_computed_values(readings):
    f = daily_features(readings, DAY, min_readings=3).set_index("sensor_id")
    s1 = f.loc[1]
    assert (s1["readings"], s1["nan_values"], s1["inf_values"]) == (3, 1, 1)
    assert (s1["mean"], s1["min"], s1["max"]) == (12.0, 10.0, 14.0)
    assert s1["std"] == pytest.approx(2.0)  # sqrt(((10-12)² + 0 + (14-12)²) / (3-1))
    assert s1["share_missing"] == pytest.approx(21 / 24)
    assert bool(s1["enough_readings"])
    s2 = f.loc[2]
    assert (s2["readings"], s2["mean"], s2["std"], s2["share_missing"]) == (24, 5.0, 0.0, 0.0)
    assert list(f["day"].unique()) == [DAY]


def test_noise_is_counted_and_never_reaches_a_statistic(readings):
    f = daily_features(readings, DAY, min_readings=3).set_index("sensor_id")
    s3 = f.loc[3]
    assert (s3["readings"], s3["nan_values"], s3["inf_values"]) == (0, 1, 1)
    assert not bool(s3["enough_readings"])  # flagged, not guessed
    assert all(math.isnan(s3[c]) for c in ("mean", "std", "min", "max"))
    for col in ("mean", "std", "min", "max"):
        assert np.isfinite(f.loc[[1, 2], col]).all()
    assert nonfinite_model_inputs(f.reset_index()) == {"mean": 0, "std": 0, "min": 0, "max": 0}


def test_a_day_with_too_few_readings_is_flagged(readings):
    f = daily_features(readings, DAY, min_readings=4).set_index("sensor_id")
    assert not bool(f.loc[1, "enough_readings"])
    assert f.loc[1, "mean"] == 12.0  # what was measured is kept, just not clustered
    assert bool(f.loc[2, "enough_readings"])
    with pytest.raises(ValueError, match="min_readings"):
        daily_features(readings, DAY, min_readings=1)


def write(tmp_path: Path, text: str, name: str = "drop.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_system_e_csv_with_planted_noise_is_read(tmp_path):
    path = write(
        tmp_path,
        "sensor_id,timestamp,temperature\n"
        "7,2023-02-15 00,21\n7,2023-02-15 01,nan\n7,2023-02-15 02,inf\n"
        "7,2023-02-15 03,-inf\n7,2023-02-16 00,\n8,2023-02-16 23,3.5\n",
    )
    frame = read_drop_file(path)
    assert frame["sensor_id"].dtype == "int64"
    assert frame["timestamp"].iloc[5] == pd.Timestamp("2023-02-16 23:00")
    t = frame["temperature"].to_numpy()
    assert (np.isnan(t).sum(), np.isposinf(t).sum(), np.isneginf(t).sum()) == (2, 1, 1)
    assert file_days(path) == ["2023-02-15", "2023-02-16"]
    only_16th = read_drop_file(path, pd.Timestamp("2023-02-16"), pd.Timestamp("2023-02-17"))
    assert len(only_16th) == 2


@pytest.mark.parametrize(
    ("body", "field", "row"),
    [
        ("7,2023-02-15 00,21\n7,2023-02-15 01,warm\n", "temperature", 2),
        ("7,2023-02-15 00,21\n7,yesterday,20\n", "timestamp", 2),
        ("7,2023-02-15 00,21\n,2023-02-15 01,20\n", "sensor_id", 2),
    ],
)
def test_bad_values_fail_naming_the_field_and_row(tmp_path, body, field, row):
    path = write(tmp_path, "sensor_id,timestamp,temperature\n" + body)
    with pytest.raises(DropFileError, match=rf"drop.csv: field '{field}' row {row}\b"):
        read_drop_file(path)


def test_a_missing_column_fails_naming_the_file(tmp_path):
    path = write(tmp_path, "sensor_id,time,temperature\n7,2023-02-15 00,21\n")
    with pytest.raises(DropFileError, match="drop.csv: cannot read columns"):
        read_drop_file(path)


@pytest.mark.parametrize("typed", [True, False])
def test_parquet_drops_are_read_for_the_asked_days_only(tmp_path, typed):
    frame = pd.concat([hourly(5, [1.0] * 30), hourly(6, [2.0] * 30)], ignore_index=True)
    if not typed:  # system E's text hours, as some exporters write them
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H")
    path = tmp_path / "drop.parquet"
    frame.to_parquet(path, index=False)
    day2 = read_drop_file(path, pd.Timestamp("2023-02-16"), pd.Timestamp("2023-02-17"))
    assert len(day2) == 12 and (day2["timestamp"] >= pd.Timestamp("2023-02-16")).all()
    assert file_days(path) == ["2023-02-15", "2023-02-16"]
