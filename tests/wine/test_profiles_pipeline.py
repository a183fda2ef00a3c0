"""The profile assets end to end on system E's noise mode, with PostgreSQL cluster_predictions."""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_core.storage import PlatformStorage
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.profiles import cluster_predictions
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.features import MODEL_FEATURES
from wine_assets.profiles.generate import write_days
from wine_assets.profiles.partitions import ASSIGNMENTS, FEATURES, read_days

DAYS = ["2023-02-15", "2023-02-16", "2023-02-17"]
#: The daily-partitioned profile assets (sensor_profile_champion is one, unpartitioned).
ASSET_NAMES = [a.key.path[-1] for a in profile_assets if a.partitions_def is not None]


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


@pytest.fixture
def noisy(tmp_path):
    generated = write_days(tmp_path / "drop", sensors=300, days=3, seed=3, noise=True, fmt="csv")
    assert generated.nan_values > 0 and generated.inf_values > 0
    assert generated.sensors_reporting < 300
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    return generated, storage, tmp_path / "drop"


def test_noise_mode_is_counted_excluded_and_assigned_in_postgres(noisy, postgres_dsn):
    generated, storage, drop = noisy
    resources = profile_resources(storage, drop, dsn=postgres_dsn)
    with dg.instance_for_test() as instance:
        result = materialize_days(resources, instance, DAYS[0], DAYS[-1])
    assert result.success
    temps = result.asset_materializations_for_node("sensor_temperatures")[0].metadata
    assert temps["nan_values"].value == generated.nan_values
    assert temps["inf_values"].value == generated.inf_values
    assert temps["dagster/row_count"].value == generated.rows

    features = read_days(storage, FEATURES, DAYS)
    assert features["nan_values"].sum() == generated.nan_values
    assert features["inf_values"].sum() == generated.inf_values
    assert (
        features.groupby("day")["sensor_id"].nunique().tolist() == [generated.sensors_reporting] * 3
    )
    used = features[features["enough_readings"]]
    assert np.isfinite(used[list(MODEL_FEATURES)].to_numpy()).all()
    assert check(result, "model_inputs_finite").passed
    assert check(result, "no_empty_cluster").passed

    assignments = read_days(storage, ASSIGNMENTS, DAYS)
    assert len(assignments) == len(features)
    assert (assignments["profile"].isna() == ~features["enough_readings"]).all()
    assert set(assignments["profile"].dropna().astype(int)) == {0, 1, 2, 3}

    stored = cluster_predictions.read_days(postgres_dsn, date(2023, 2, 15), date(2023, 2, 17))
    assert len(stored) == len(assignments)
    assert set(stored["run_id"]) == {result.run_id}
    assert stored["profile"].isna().sum() == assignments["profile"].isna().sum()
    mine = stored.set_index(["day", "sensor_id"])["profile"]
    theirs = assignments.assign(
        day=pd.to_datetime(assignments["day"]).dt.date,
        sensor_id=assignments["sensor_id"].astype(str),
    ).set_index(["day", "sensor_id"])["profile"]
    pd.testing.assert_series_equal(
        mine.sort_index().astype("Int64"), theirs.sort_index().astype("Int64"), check_names=False
    )


def test_a_rerun_replaces_its_days_in_postgres_and_a_thin_day_warns(noisy, postgres_dsn):
    generated, storage, drop = noisy
    resources = profile_resources(storage, drop, dsn=postgres_dsn)
    thin = write_days(drop, sensors=20, days=1, start=date(2023, 2, 18), seed=4)
    with dg.instance_for_test() as instance:
        first = materialize_days(resources, instance, DAYS[0], DAYS[-1])
        rerun = materialize_days(resources, instance, "2023-02-17", "2023-02-18")
    assert first.success and rerun.success
    stored = cluster_predictions.read_days(postgres_dsn, date(2023, 2, 15), date(2023, 2, 18))
    assert not stored.duplicated(["day", "sensor_id"]).any()
    by_day = stored.groupby("day")["run_id"].agg(set).to_dict()
    assert by_day[date(2023, 2, 16)] == {first.run_id}
    assert by_day[date(2023, 2, 17)] == by_day[date(2023, 2, 18)] == {rerun.run_id}
    assert (stored["day"] == date(2023, 2, 18)).sum() == thin.sensors_reporting
    bounds = check(rerun, "sensor_count_within_bounds")
    assert not bounds.passed and bounds.severity == dg.AssetCheckSeverity.WARN
    assert set(bounds.metadata["out_of_bounds"].value) == {"2023-02-18"}


def test_a_range_runs_metadata_stays_compact_on_every_days_event(tmp_path):
    """Dagster copies a range run's metadata onto each day's event, so per-day lists would
    grow with days²: they are summarised (lowest/median/highest day) and capped instead."""
    days = 14
    write_days(tmp_path / "drop", sensors=50, days=days, seed=1, fmt="parquet")
    (tmp_path / "drop" / "readings-2023-02-20.parquet").unlink()  # a day with no file
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    with dg.instance_for_test() as instance:
        result = materialize_days(
            profile_resources(storage, tmp_path / "drop"), instance, "2023-02-15", "2023-02-28"
        )
        sizes = {
            name: [
                len(dg.serialize_value(r.asset_materialization))
                for r in instance.fetch_materializations(dg.AssetKey(name), limit=100).records
            ]
            for name in ASSET_NAMES
        }
    assert result.success and all(len(s) == days for s in sizes.values())
    temps = result.asset_materializations_for_node("sensor_temperatures")
    assert len(temps) == days
    meta = temps[0].metadata
    assert meta["rows_per_day"].value == {
        "days": days,
        "min": 0,
        "min_day": "2023-02-20",
        "median": 50 * 24.0,
        "max": 50 * 24,
        "max_day": "2023-02-28",
    }
    assert meta["empty_days"].value == 1
    assert meta["empty_days_list"].value == ["2023-02-20"]
    assert meta["files_used"].value[-1] == "... and 3 more"  # 13 files, 10 named
    assert len(meta["files_used"].value) == 11
    features = result.asset_materializations_for_node("sensor_daily_features")[0].metadata
    assert features["sensors_per_day"].value["max"] == 50
    # Every day's event stays small (was 19-22 KB with the plot as a 24-bit PNG).
    assert max(map(max, sizes.values())) < 12_000, sizes
