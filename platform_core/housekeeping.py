"""Dagster's own bookkeeping, bounded: old successful runs of the high-frequency jobs go.

The barrel history starts up to 25 runs a day (``barrel_snapshot``: today's partition
hourly, yesterday's close; the scoring itself runs outside Dagster runs, in ``wine-scorer``)
and drift reports one per burst; kept forever, their run rows
and event logs make the instance's database grow without end and its run lists slow. The
``dagster_housekeeping`` job (daily schedule, on by default) deletes, through Dagster's public
API (``instance.get_run_records`` + ``instance.delete_run``), the runs of those jobs that
**succeeded** and finished more than ``RUN_RETENTION_DAYS`` days ago (default 7), oldest
first, ``batch_size`` at a time, at most ``max_runs`` per job and run (the rest the next day),
with their captured stdout/stderr (the compute log manager's ``delete_logs``: local files, or
the S3 objects in production). Failed, canceled and running runs are never deleted, nor runs
of any other job.

What deleting a run means: Dagster deletes the run **and its event log**, which holds the
asset materializations, check evaluations and observations the run recorded. So for those
runs' partitions (barrel history days, drift hours) the asset's history disappears from the
UI: a partition's page shows no materialization or metadata, the Events and Plots tabs start
at the retention horizon, ``fetch_materializations`` no longer returns them (the partition
bar still counts them materialized: Dagster's status cache is incremental and does not see
deletions). The data the runs wrote stays in storage (snapshot and prediction parquet files,
drift reports and their summaries, scores written back to the readings store), and newer runs
are untouched, so the sensors' cursors, the latest snapshot window and the latest drift report
are unaffected.

Sensor and schedule *ticks* are bounded by Dagster itself: the ``retention:`` section of both
``dagster.yaml`` files. Not bounded here, for want of a public API: ``delete_run`` leaves the
run's check records (``asset_check_executions`` rows, on both storages), and on the local
SQLite instance (``make dev``) the run's event-log file (``history/runs/<run_id>.db``,
~130 KB), emptied but not removed.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from platform_core.run_tags import BACKGROUND, lane_tags, run_tags
from platform_core.settings import int_setting

#: The jobs whose successful runs are deleted after the retention period.
HIGH_FREQUENCY_JOBS = ("barrel_snapshot", "wine_drift_report_job")
DEFAULT_RETENTION_DAYS = 7
DAY_S = 86_400.0


@dataclass(frozen=True)
class Deleted:
    """What one housekeeping pass deleted, per job, and whether runs past the cap remain."""

    by_job: dict[str, int]
    capped: list[str]

    @property
    def total(self) -> int:
        return sum(self.by_job.values())


def delete_old_successful_runs(
    instance: dg.DagsterInstance,
    job_names: Sequence[str],
    retention_days: float,
    *,
    now: float | None = None,
    batch_size: int = 200,
    max_runs: int = 50_000,
    log: Callable[[str], None] = lambda _msg: None,
) -> Deleted:
    """Delete the successful runs of ``job_names`` that finished ``retention_days`` or more
    before ``now`` (default: the current time), oldest first, ``batch_size`` per query, at most
    ``max_runs`` per job."""
    if retention_days < 0:
        raise ValueError(f"retention_days: expected 0 or more, got {retention_days}")
    if batch_size < 1 or max_runs < 1:
        raise ValueError("batch_size and max_runs must be at least 1")
    now = time.time() if now is None else now
    cutoff = datetime.fromtimestamp(now - retention_days * DAY_S, UTC)
    by_job: dict[str, int] = {}
    capped: list[str] = []
    log_errors, last_log_error = 0, ""
    for job in job_names:
        old_successes = dg.RunsFilter(
            job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS], updated_before=cutoff
        )
        deleted = 0
        while deleted < max_runs:
            limit = min(batch_size, max_runs - deleted)
            records = instance.get_run_records(old_successes, limit=limit, ascending=True)
            for record in records:
                run_id = record.dagster_run.run_id
                try:  # the run's captured stdout/stderr (local files, or S3 in production)
                    instance.compute_log_manager.delete_logs(prefix=[run_id])
                except Exception as exc:  # noqa: BLE001 (logs are best effort; the run goes)
                    log_errors += 1
                    last_log_error = f"{type(exc).__name__}: {exc}"
                instance.delete_run(run_id)
            deleted += len(records)
            if len(records) < limit:
                break
        if deleted >= max_runs and instance.get_run_records(old_successes, limit=1):
            capped.append(job)
        by_job[job] = deleted
        log(f"{job}: deleted {deleted} successful runs finished before {cutoff:%Y-%m-%d %H:%M}Z")
    if log_errors:
        log(f"compute logs of {log_errors} deleted runs could not be deleted ({last_log_error})")
    return Deleted(by_job, capped)


class RunRetention(dg.ConfigurableResource):
    """How long successful runs of the high-frequency jobs are kept (``RUN_RETENTION_DAYS``)."""

    days: int = Field(
        default=DEFAULT_RETENTION_DAYS,
        description="Successful runs of the high-frequency jobs older than this are deleted.",
    )
    batch_size: int = Field(default=200, description="Runs read and deleted per query.")
    max_runs: int = Field(
        default=50_000, description="At most this many runs per job and housekeeping run."
    )


def run_retention_resource() -> RunRetention:
    return RunRetention(days=int_setting("RUN_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Delete successful runs of the high-frequency jobs (with their event logs) "
    "older than RUN_RETENTION_DAYS; failed runs and other jobs are kept.",
)
def delete_old_runs(context: dg.OpExecutionContext, run_retention: RunRetention) -> dg.Output:
    deleted = delete_old_successful_runs(
        context.instance,
        HIGH_FREQUENCY_JOBS,
        run_retention.days,
        batch_size=run_retention.batch_size,
        max_runs=run_retention.max_runs,
        log=context.log.info,
    )
    if deleted.capped:
        context.log.warning(
            f"more old runs of {', '.join(deleted.capped)} remain (max_runs "
            f"{run_retention.max_runs} per job): the next housekeeping run goes on"
        )
    return dg.Output(
        None,
        metadata={
            "deleted": deleted.total,
            "deleted_by_job": dg.MetadataValue.json(deleted.by_job),
            "retention_days": run_retention.days,
            "more_remaining": dg.MetadataValue.json(deleted.capped),
        },
    )


@dg.job(
    name="dagster_housekeeping",
    description="Deletes successful runs of barrel_snapshot and wine_drift_report_job older "
    "than RUN_RETENTION_DAYS (default 7) with their event logs: their partitions' history "
    "leaves the UI, their data stays in storage. Failed runs are kept.",
    tags=lane_tags(BACKGROUND),
)
def housekeeping_job():
    delete_old_runs()


housekeeping_schedule = dg.ScheduleDefinition(
    name="dagster_housekeeping_daily",
    job=housekeeping_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags=run_tags("schedule", BACKGROUND),
    description="Daily at 03:15 UTC: delete old successful runs of the high-frequency jobs.",
)
