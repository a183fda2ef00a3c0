"""Dagster's bookkeeping stays bounded: old successful runs of the high-frequency jobs go,
nothing else does; sensor and schedule ticks are purged by both instances' retention.

Runs are real runs on a real Dagster instance, of jobs carrying the high-frequency jobs' names
(a one-asset job each: what is deleted depends on the job name, status and age only), next to
failed runs of the same jobs and successful runs of another job.
"""

import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.run_request import InstigatorType  # noqa: PLC2701 (no public name)
from dagster._core.scheduler.instigation import TickStatus  # noqa: PLC2701 (no public name)

from platform_core.housekeeping import (
    HIGH_FREQUENCY_JOBS,
    RunRetention,
    delete_old_successful_runs,
    housekeeping_job,
    run_retention_resource,
)
from tests.conftest import REPO_ROOT
from wine_assets.definitions import defs as wine_defs

DAY_S = 86_400
KEY = dg.AssetKey("scored_window")


def build_jobs(data_dir: Path) -> dg.Definitions:
    """One-asset jobs named like the platform's; the asset writes a file (its "data")."""

    @dg.asset(name="scored_window", config_schema={"fail": bool})
    def scored_window(context: dg.AssetExecutionContext) -> None:
        if context.op_execution_context.op_config["fail"]:
            raise RuntimeError("bad window")
        (data_dir / context.run.run_id).write_text("scores")

    names = [*HIGH_FREQUENCY_JOBS, "sensor_profiles"]
    return dg.Definitions(
        assets=[scored_window],
        jobs=[dg.define_asset_job(name, selection=[scored_window]) for name in names],
    )


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, fail: bool = False) -> str:
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        run_config={"ops": {"scored_window": {"config": {"fail": fail}}}},
        raise_on_error=False,
    )
    assert result.success is not fail
    return result.run_id


@pytest.fixture
def history(tmp_path: Path):
    """Old runs (successful and failed, of every job), then, a moment later, new ones."""
    data = tmp_path / "data"
    data.mkdir()
    defs = build_jobs(data)
    with dg.instance_for_test() as instance:
        old = {
            "snapshot_ok": [run(defs, instance, "barrel_snapshot") for _ in range(3)],
            "drift_ok": [run(defs, instance, "wine_drift_report_job") for _ in range(2)],
            "snapshot_failed": [run(defs, instance, "barrel_snapshot", fail=True)],
            "drift_failed": [run(defs, instance, "wine_drift_report_job", fail=True)],
            "profiles_ok": [run(defs, instance, "sensor_profiles")],
        }
        time.sleep(1.1)
        boundary = time.time()
        time.sleep(0.1)
        new = {
            "snapshot_ok": [run(defs, instance, "barrel_snapshot")],
            "drift_ok": [run(defs, instance, "wine_drift_report_job")],
        }
        yield instance, old, new, boundary, data


def run_ids(instance: dg.DagsterInstance) -> set[str]:
    return {r.dagster_run.run_id for r in instance.get_run_records()}


def materialized_by(instance: dg.DagsterInstance) -> set[str]:
    records = instance.fetch_materializations(KEY, limit=100).records
    return {r.event_log_entry.run_id for r in records}


def test_deletes_exactly_the_old_successful_runs_of_the_high_frequency_jobs(history):
    instance, old, new, boundary, data = history
    before = run_ids(instance)
    expected_gone = set(old["snapshot_ok"] + old["drift_ok"])
    logs = Path(instance.root_directory) / "storage"  # the local compute log manager's folder
    assert all((logs / run_id).is_dir() for run_id in before)

    # Seven days after the boundary: the old runs are 7 days and a moment old, the new ones
    # a moment less than 7 days. batch_size=2 makes it go through several batches.
    deleted = delete_old_successful_runs(
        instance, HIGH_FREQUENCY_JOBS, 7, now=boundary + 7 * DAY_S, batch_size=2
    )

    assert deleted.by_job == {"barrel_snapshot": 3, "wine_drift_report_job": 2}
    assert deleted.capped == []
    assert run_ids(instance) == before - expected_gone
    for run_id in expected_gone:
        assert instance.get_run_by_id(run_id) is None
        # The run's event log went with it: its materialization no longer exists for Dagster…
        assert instance.get_records_for_run(run_id).records == []
        # …while what the run wrote stays where it wrote it.
        assert (data / run_id).read_text() == "scores"
        assert not (logs / run_id).exists()  # its captured stdout/stderr went too
    assert all((logs / run_id).is_dir() for run_id in before - expected_gone)
    kept_ok = set(new["snapshot_ok"] + new["drift_ok"] + old["profiles_ok"])
    assert materialized_by(instance) == kept_ok
    for run_id in old["snapshot_failed"] + old["drift_failed"]:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_nothing_is_deleted_before_its_time(history):
    instance, old, new, boundary, _ = history
    before = run_ids(instance)
    deleted = delete_old_successful_runs(
        instance, HIGH_FREQUENCY_JOBS, 7, now=boundary + 7 * DAY_S - 30
    )
    assert deleted.total == 0
    assert run_ids(instance) == before


def test_a_capped_pass_deletes_the_oldest_and_says_more_remain(history):
    instance, old, new, boundary, _ = history
    deleted = delete_old_successful_runs(
        instance, ["barrel_snapshot"], 7, now=boundary + 7 * DAY_S, batch_size=1, max_runs=2
    )
    assert deleted.by_job == {"barrel_snapshot": 2}
    assert deleted.capped == ["barrel_snapshot"]
    remaining = run_ids(instance)
    assert not set(old["snapshot_ok"][:2]) & remaining
    assert old["snapshot_ok"][2] in remaining


def test_the_housekeeping_job_deletes_with_the_configured_retention(history):
    instance, old, new, boundary, _ = history
    before = run_ids(instance)
    # RUN_RETENTION_DAYS=0: every successful run of the two jobs finished so far goes.
    result = housekeeping_job.execute_in_process(
        instance=instance, resources={"run_retention": RunRetention(days=0)}
    )
    assert result.success
    gone = set(old["snapshot_ok"] + old["drift_ok"] + new["snapshot_ok"] + new["drift_ok"])
    assert run_ids(instance) == (before - gone) | {result.run_id}
    (output,) = [
        e
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_OUTPUT and e.step_key == "delete_old_runs"
    ]
    metadata = output.event_specific_data.metadata
    assert metadata["deleted"].value == 7
    assert metadata["deleted_by_job"].value == {"barrel_snapshot": 4, "wine_drift_report_job": 3}


def test_the_wine_location_runs_housekeeping_daily_by_default(monkeypatch):
    schedule = wine_defs.resolve_schedule_def("dagster_housekeeping_daily")
    assert schedule.job_name == "dagster_housekeeping"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "15 3 * * *"
    job = wine_defs.resolve_job_def("dagster_housekeeping")
    assert job.run_tags["platform/lane"] == "background"
    assert wine_defs.resources["run_retention"].days == 7

    monkeypatch.setenv("RUN_RETENTION_DAYS", "30")
    assert run_retention_resource().days == dg.EnvVar.int("RUN_RETENTION_DAYS")
    with dg.instance_for_test() as instance, pytest.raises(ValueError, match="retention_days"):
        delete_old_successful_runs(instance, HIGH_FREQUENCY_JOBS, -1)


@pytest.mark.parametrize("path", ["dagster.yaml", "docker/dagster.yaml"])
def test_both_instances_purge_sensor_and_schedule_ticks(path, tmp_path):
    """The ``retention:`` section as Dagster reads it (its own schema and defaults)."""
    retention = yaml.safe_load((REPO_ROOT / path).read_text())["retention"]
    with dg.DagsterInstance.local_temp(
        str(tmp_path), overrides={"retention": retention}
    ) as instance:
        sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
    # Dagster's default keeps successful and failed ticks forever (-1).
    assert sensor == {
        TickStatus.SKIPPED: 1,
        TickStatus.SUCCESS: 7,
        TickStatus.FAILURE: 30,
        TickStatus.STARTED: 30,
    }
    assert set(schedule.values()) == {90}
