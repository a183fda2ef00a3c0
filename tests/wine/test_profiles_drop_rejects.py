"""A malformed file in the drop location is rejected, logged and reported, not fatal: the
sensor reports it once, but it stays there, so every later run reads it again."""

import logging
from datetime import date

import dagster as dg

from platform_core.storage import PlatformStorage
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.profiles.assets import sensor_temperatures
from wine_assets.profiles.generate import write_days
from wine_assets.profiles.partitions import TEMPERATURES, read_days

BAD = "readings-bad.csv"


def write_bad(drop) -> None:
    (drop / BAD).write_text(
        "sensor_id,timestamp,temperature\n1,2023-02-15 00,12.5\n2,not-a-time,13.0\n"
    )


def test_a_malformed_file_is_skipped_and_reported_the_good_ones_are_used(tmp_path):
    drop = tmp_path / "drop"
    good = write_days(drop, sensors=20, days=2, seed=5, fmt="csv")
    write_bad(drop)
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    with dg.instance_for_test() as instance:
        result = materialize_days(
            profile_resources(storage, drop), instance, "2023-02-15", "2023-02-16"
        )
        logged = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if e.level == logging.WARNING and not e.is_dagster_event
        ]
    assert result.success
    meta = result.asset_materializations_for_node("sensor_temperatures")[0].metadata
    assert meta["dagster/row_count"].value == good.rows
    assert meta["files_used"].value == [p.name for p in good.files]
    assert meta["files_rejected"].value == 1
    [reason] = meta["files_rejected_list"].value
    assert reason.startswith(f"{BAD}: field 'timestamp' row 2: 'not-a-time' is not a time")
    assert meta["empty_days"].value == 0
    stored = read_days(storage, TEMPERATURES, ["2023-02-15", "2023-02-16"])
    assert len(stored) == good.rows
    assert any(f"drop file {BAD} rejected" in m and "not-a-time" in m for m in logged)
    for name in ("sensor_daily_features", "sensor_profile_model", "sensor_profile_assignments"):
        assert result.asset_materializations_for_node(name), name


def test_without_a_usable_file_for_the_days_the_run_fails_naming_the_rejected_one(tmp_path):
    drop = tmp_path / "drop"
    write_days(drop, sensors=20, days=1, start=date(2023, 2, 16), seed=5, fmt="csv")
    write_bad(drop)
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [sensor_temperatures],
            resources=profile_resources(storage, drop),
            instance=instance,
            partition_key="2023-02-15",
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "no readings for 2023-02-15..2023-02-15" in message
    assert "2 files looked at, 1 rejected" in message
    assert f"{BAD}: field 'timestamp' row 2" in message
    assert failure.step_failure_data.user_failure_data.metadata["files_rejected"].value == 1
