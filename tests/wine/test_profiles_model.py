"""Continuous training: each model starts from the previous one's centres, verified files."""

import json
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_core.registry import ChecksumMismatchError, ModelRegistry
from platform_core.storage import PlatformStorage
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.profiles import MODEL_NAME
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.features import MODEL_FEATURES
from wine_assets.profiles.generate import write_days
from wine_assets.profiles.model import ProfileModel, assign, fit


def synthetic_features(seed: int, shift: float = 0.0, n: int = 400) -> pd.DataFrame:
    """Four well separated groups of sensor-days in (mean, std, min, max)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[13, 0.3, 12, 14], [22, 1.5, 19, 25], [10, 6, 0, 20], [4, 0.5, 3, 5.0]])
    group = rng.integers(0, 4, n)
    x = centres[group] + shift + rng.normal(0, 0.4, (n, 4))
    frame = pd.DataFrame(x, columns=list(MODEL_FEATURES))
    frame.insert(0, "sensor_id", np.arange(n))
    frame.insert(1, "day", "2023-02-15")
    frame["enough_readings"] = True
    return frame


def one_lloyd_step(x: np.ndarray, init: np.ndarray) -> np.ndarray:
    """By hand: assign to the nearest initial centre (standardised), average, back to units."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    z, c = (x - mean) / std, (init - mean) / std
    nearest = ((z[:, None] - c[None]) ** 2).sum(axis=2).argmin(axis=1)
    return np.array([z[nearest == j].mean(axis=0) for j in range(len(init))]) * std + mean


def test_a_new_fit_starts_from_the_previous_centres():
    # Deliberately poor previous centres (two on one group, none on another): one step of
    # Lloyd's algorithm from them lands somewhere no fresh k-means++ start would.
    centres = [[13, 0.3, 12, 14], [14, 0.4, 12.5, 15], [22, 1.5, 19, 25], [4, 0.5, 3, 5]]
    first = fit(synthetic_features(1), k=4).model
    previous = ProfileModel(
        features=MODEL_FEATURES,
        centres=centres,
        scale_mean=first.scale_mean,
        scale_std=first.scale_std,
    )
    data = synthetic_features(2, shift=0.7)
    step = fit(data, k=4, previous=previous, max_iter=1)
    np.testing.assert_allclose(step.init_centres, np.asarray(centres, dtype=float))
    x = data[list(MODEL_FEATURES)].to_numpy()
    expected = one_lloyd_step(x, np.asarray(centres, dtype=float))
    np.testing.assert_allclose(np.asarray(step.model.centres), expected, atol=1e-6)
    assert step.model.warm_start


def test_profiles_keep_their_numbers_and_the_shift_is_reported():
    first = fit(synthetic_features(1), k=4).model
    second = fit(synthetic_features(3, shift=0.5), k=4, previous=first)
    old, new = np.asarray(first.centres), np.asarray(second.model.centres)
    nearest_old = ((new[:, None] - old[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert nearest_old.tolist() == [0, 1, 2, 3]  # profile i is still profile i
    np.testing.assert_allclose(second.centre_shift, np.linalg.norm(new - old, axis=1))
    assert all(0.5 < s < 1.5 for s in second.centre_shift)  # moved by ~0.5 per feature


def test_cold_start_when_k_changes_and_nan_never_reaches_kmeans():
    first = fit(synthetic_features(1), k=4).model
    assert not fit(synthetic_features(2), k=3, previous=first).model.warm_start
    bad = synthetic_features(4)
    bad.loc[5, "std"] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values in model features \['std'\]"):
        fit(bad, k=4)


def test_model_files_are_json_and_round_trip():
    model = fit(synthetic_features(1), k=4).model
    files = model.to_files()
    assert json.loads(files["model.json"])["format"] == "sensor-profiles/1"
    again = ProfileModel.from_files(files)
    assert again == model
    features = synthetic_features(5)
    features.loc[0, "enough_readings"] = False
    out = assign(again, features)
    assert out["profile"].isna().tolist() == [True] + [False] * (len(features) - 1)


@pytest.fixture
def drop(tmp_path):
    write_days(tmp_path / "drop", sensors=120, days=3, seed=7)
    return tmp_path / "drop"


def test_each_materialization_warm_starts_from_the_last_model(tmp_path, drop):
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(storage, drop)
    with dg.instance_for_test() as instance:
        assert materialize_days(resources, instance, "2023-02-15", "2023-02-16").success
        result = dg.materialize(
            profile_assets,
            resources=resources,
            instance=instance,
            partition_key="2023-02-17",
        )
    assert result.success
    registry = ModelRegistry(storage, MODEL_NAME)
    v1, v2 = registry.versions()
    assert (v1.status, v2.status) == ("retired", "champion")
    assert v1.params["days"] == ["2023-02-15", "2023-02-16"]  # one model for the range
    assert (v1.params["warm_start_from"], v2.params["warm_start_from"]) == (None, 1)
    meta = result.asset_materializations_for_node("sensor_profile_model")[0].metadata
    assert meta["warm_start_from"].value == 1
    shift = np.linalg.norm(
        np.asarray(ProfileModel.from_files(registry.verify(v2)).centres)
        - np.asarray(ProfileModel.from_files(registry.verify(v1)).centres),
        axis=1,
    )
    np.testing.assert_allclose(meta["centre_shift"].value, shift)
    assert meta["centre_shift_max"].value == pytest.approx(shift.max())


def test_a_tampered_previous_model_is_refused(tmp_path, drop):
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(storage, drop)
    with dg.instance_for_test() as instance:
        assert materialize_days(resources, instance, "2023-02-15", "2023-02-15").success
        key = ModelRegistry(storage, MODEL_NAME).file_key(1, "model.json")
        doc = json.loads(storage.read_bytes(key))
        doc["centres"][0][0] += 1.0
        storage.write_bytes(key, json.dumps(doc).encode())
        with pytest.raises(ChecksumMismatchError, match="refusing to load"):
            materialize_days(resources, instance, "2023-02-16", "2023-02-16")


def test_stuck_sensors_leave_profiles_empty_and_the_blocking_check_rejects_the_model(tmp_path):
    # A healthy day makes v1 the champion. Then 40 sensors are stuck all day at one of two
    # constants: two distinct sensor-days for k = 4, so k-means fills two profiles at most
    # (re-seeding an empty profile has no other point to move to).
    drop = tmp_path / "drop"
    write_days(drop, sensors=40, days=1, start=date(2023, 2, 15), seed=7)
    rows = [
        (s, f"2023-02-16 {h:02d}", 12.5 if s % 2 else 14.0) for s in range(40) for h in range(24)
    ]
    pd.DataFrame(rows, columns=["sensor_id", "timestamp", "temperature"]).to_csv(
        drop / "stuck.csv", index=False
    )
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = profile_resources(storage, drop, k=4)
    registry = ModelRegistry(storage, MODEL_NAME)
    with dg.instance_for_test() as instance:
        healthy = dg.materialize(
            profile_assets, resources=resources, instance=instance, partition_key="2023-02-15"
        )
        assert healthy.success and registry.champion().version == 1
        result = dg.materialize(
            profile_assets,
            resources=resources,
            instance=instance,
            partition_key="2023-02-16",
            raise_on_error=False,
        )
        assert not result.success
        [evaluation] = [
            e for e in result.get_asset_check_evaluations() if e.check_name == "no_empty_cluster"
        ]
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        sizes = evaluation.metadata["sizes"].value
        empty = [p for p, n in sizes.items() if n == 0]
        assert len(empty) == 2 and sorted(sizes.values()) == [0, 0, 20, 20]
        assert evaluation.description == f"empty profiles: {empty}"

        v1, v2 = registry.versions()
        assert (v1.status, v2.status) == ("champion", "candidate")  # never decided on
        assert v2.params["warm_start_from"] == 1  # warm-started, still empty
        assert v2.metrics["empty_profiles"] == 2
        assert registry.champion().version == 1  # the rejected model replaced nothing
        # Blocking: neither the champion nor the assignments step started for the stuck day.
        assert not result.asset_materializations_for_node("sensor_profile_assignments")
        assignments = dg.AssetKey("sensor_profile_assignments")
        assert instance.get_materialized_partitions(assignments) == {"2023-02-15"}
        started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        assert started == {"sensor_temperatures", "sensor_daily_features", "sensor_profile_model"}
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "sensor_profile_model"
        assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
