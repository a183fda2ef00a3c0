"""How the sensor-profile part sits in the wine location: policies, sensor, settings."""

import dagster as dg

from wine_assets.definitions import defs
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.partitions import CHAMPION
from wine_assets.profiles.resources import default_drop_dir, profiles_settings


def test_every_profile_asset_backfills_a_range_in_one_run():
    for asset in profile_assets:
        if asset.key == CHAMPION:  # the one decision of a run, whatever its days
            assert asset.partitions_def is None
            continue
        resolved = defs.resolve_assets_def(asset.key)
        assert resolved.backfill_policy == dg.BackfillPolicy.single_run(), asset.key
        assert isinstance(resolved.partitions_def, dg.DailyPartitionsDefinition)


def test_drop_sensor_runs_by_default_and_targets_the_profiles_job():
    sensor = defs.resolve_sensor_def("sensor_temperature_drop_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "sensor_profiles"
    blocking = {
        spec.name
        for asset in profile_assets
        for spec in defs.resolve_assets_def(asset.key).check_specs
        if spec.blocking
    }
    assert blocking == {"model_inputs_finite", "no_empty_cluster"}


def test_settings_come_from_the_environment_or_the_documented_defaults(monkeypatch, tmp_path):
    names = ("PROFILES_DROP_DIR", "PROFILES_DSN", "PROFILES_K", "PROFILES_MIN_READINGS")
    for name in (*names, "PROFILES_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    local = profiles_settings()
    assert (local.drop_dir, local.dsn, local.k, local.min_readings, local.source) == (
        default_drop_dir(),
        None,
        4,
        18,
        "drop",
    )
    assert default_drop_dir().endswith("mock_ml_pipeline")
    monkeypatch.setenv("PROFILES_DROP_DIR", str(tmp_path))
    monkeypatch.setenv("PROFILES_DSN", "postgresql://u:p@127.0.0.1:5/db")
    monkeypatch.setenv("PROFILES_K", "6")
    monkeypatch.setenv("PROFILES_SOURCE", "readings")
    configured = profiles_settings()
    assert configured.drop_dir == dg.EnvVar("PROFILES_DROP_DIR")
    assert configured.dsn == dg.EnvVar("PROFILES_DSN")
    assert configured.k == dg.EnvVar.int("PROFILES_K")
    assert configured.source == dg.EnvVar("PROFILES_SOURCE")
    resolved = configured.process_config_and_initialize()
    assert (resolved.drop_dir, resolved.k, resolved.source_name()) == (str(tmp_path), 6, "readings")
