"""Alerts: someone hears about a failed run, a failed blocking check or a stale asset.

Three kinds of sensor, each posting from the sensor itself (they request no run):

* ``<location>_run_failure_alerts`` (``@dg.run_failure_sensor``): a failed run of one of the
  location's monitored jobs (wine: barrel scoring, drift reports, sensor profiles,
  housekeeping, retention; beer: the Punk API poll and crawl).
* ``<location>_blocking_check_alerts`` (``@dg.run_failure_sensor`` over every job of the
  location): a blocking check that failed with ERROR severity. Dagster fails the check's step,
  hence its run, so the failed run's check evaluations are where to look. Such a run gets this
  alert only, not a second "run failed" one.
* ``<location>_freshness_alerts`` (``@dg.sensor``): an asset whose last materialization is
  older than its freshness policy's ``fail_window`` (the rule Dagster's freshness daemon
  applies for the UI), once per stale spell: a new materialization ends it.

A failed run that Dagster will retry (``run_retries`` in ``docker/dagster.yaml``: the run
carries ``dagster/will_retry=true``) is not alerted; its retry is, if it fails too.

Alerts go to ``ALERT_WEBHOOK_URL`` as JSON (``AlertWebhook``): a Slack incoming-webhook body,
``{"text": "..."}``, with the same facts structured under ``"alert"`` for other receivers.
Without the variable nothing is posted (the sensors still move their cursors, so setting it
later does not replay old alerts). Each alert is sent once: the run-status sensors' cursor is
Dagster's own, the freshness sensor's holds the materialization each stale asset was alerted
on. A receiver that is down or answers an error is tried ``attempts`` times within the tick,
then the alert is **given up**, with an ERROR line in the sensor tick's log naming it; it is
not retried on a later tick (Dagster moves a run-status sensor's cursor past a run whatever the
sensor did with it), and the tick itself does not fail.
"""

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import requests
from pydantic import Field

from platform_core.settings import optional_setting, setting

#: Set by Dagster on a failed run when run retries are enabled: ``true`` if a retry follows.
WILL_RETRY_TAG = "dagster/will_retry"
#: Alert sensors tick at most this often: an alert a minute late is fine, a tick row is not free.
TICK_S = 60


@dataclass(frozen=True)
class Alert:
    """One alert: a one-line ``text`` for people, ``fields`` for machines."""

    kind: str  # run_failure | blocking_check_failure | asset_stale
    location: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    link: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body: Slack's ``text`` plus the structured alert."""
        text = f"{self.text}\n{self.link}" if self.link else self.text
        return {
            "text": text,
            "alert": {
                "kind": self.kind,
                "code_location": self.location,
                "link": self.link,
                **self.fields,
            },
        }


def _where(url: str) -> str:
    """The receiver's scheme and host: a Slack webhook's path is its secret, never logged."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _redact(text: str, url: str) -> str:
    """``text`` (an HTTP client's error) without the webhook's path and query."""
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    text = text.replace(url, _where(url) + "/…")
    return text.replace(secret, "/…") if secret.strip("/") else text


class AlertWebhook(dg.ConfigurableResource):
    """Where alerts go: ``ALERT_WEBHOOK_URL`` (unset: nowhere) and how the UI is reached."""

    url: str | None = Field(
        default=None,
        description="Webhook receiving alerts as JSON (a Slack incoming webhook works); "
        "None: alerts are not sent.",
    )
    ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="The Dagster UI's address, for links in alerts (DAGSTER_UI_URL).",
    )
    timeout_s: float = Field(default=5.0, description="Per attempt.")
    attempts: int = Field(default=3, description="Tries within one tick before giving up.")
    retry_wait_s: float = Field(default=1.0, description="Pause between two tries.")

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def asset_link(self, key: dg.AssetKey) -> str:
        return f"{self.ui_url.rstrip('/')}/assets/{'/'.join(key.path)}"

    def send(self, alert: Alert, log) -> bool:
        """Post ``alert``; True when the receiver accepted it (2xx). Never raises."""
        if not self.url:
            log.info(f"ALERT_WEBHOOK_URL unset, not sent: {alert.text}")
            return False
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = requests.post(
                    self.url,
                    data=json.dumps(alert.body()),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout_s,
                )
                if 200 <= response.status_code < 300:
                    log.info(f"alert sent to {_where(self.url)}: {alert.text}")
                    return True
                error = _redact(f"HTTP {response.status_code} {response.text[:200]!r}", self.url)
            except requests.RequestException as exc:
                error = _redact(f"{type(exc).__name__}: {exc}", self.url)
            if attempt < self.attempts:
                time.sleep(self.retry_wait_s)
        log.error(
            f"alert given up after {self.attempts} attempts to {_where(self.url)} "
            f"({error}); it will not be retried: {alert.text}"
        )
        return False


def alert_webhook_resource() -> AlertWebhook:
    """ALERT_WEBHOOK_URL (optional) and DAGSTER_UI_URL, read through the settings module."""
    return AlertWebhook(
        url=optional_setting("ALERT_WEBHOOK_URL"),
        ui_url=setting("DAGSTER_UI_URL", "http://127.0.0.1:3000"),
    )


def _first_line(text: str | None, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _root_error(error) -> str:
    """The innermost cause of a step error (Dagster wraps the user's exception)."""
    while error.cause is not None:
        error = error.cause
    return _first_line(error.message)


def _will_retry(run: dg.DagsterRun) -> bool:
    return run.tags.get(WILL_RETRY_TAG, "").lower() == "true"


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list:
    """The run's check evaluations that failed, with ERROR severity, on a blocking check."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    evaluations = [r.event_log_entry.asset_check_evaluation for r in records]
    return [
        e
        for e in evaluations
        if e is not None
        and not e.passed
        and e.blocking
        and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def _plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata values as JSON: their plain value, else their text."""
    plain = {}
    for key, value in metadata.items():
        value = getattr(value, "value", value)
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        plain[key] = value
    return plain


def _check_summary(evaluation) -> str:
    """What the check said: its description, else its metadata."""
    if evaluation.description:
        return _first_line(evaluation.description)
    metadata = _plain_metadata(evaluation.metadata)
    return (
        _first_line(", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in metadata.items()))
        or "failed"
    )


def _run_fields(run: dg.DagsterRun) -> dict[str, Any]:
    return {
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": run.tags.get("dagster/partition"),
    }


def _partition_text(run: dg.DagsterRun) -> str:
    partition = run.tags.get("dagster/partition")
    return f" (partition {partition})" if partition else ""


def build_run_failure_alert_sensor(location: str, jobs: Sequence) -> dg.SensorDefinition:
    """Posts a failed run of ``jobs`` (what ``dg.define_asset_job``/``dg.job`` return)."""

    @dg.run_failure_sensor(
        name=f"{location}_run_failure_alerts",
        monitored_jobs=list(jobs),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=TICK_S,
        description="Posts each failed run of "
        + ", ".join(sorted(job.name for job in jobs))
        + " to ALERT_WEBHOOK_URL (a failed blocking check is posted by the check alerts).",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
        run = context.dagster_run
        if _will_retry(run):
            context.log.info(f"run {run.run_id} of {run.job_name} will be retried: no alert")
            return None
        if failed_blocking_checks(context.instance, run.run_id):
            context.log.info(f"run {run.run_id} failed a blocking check: the check alert says so")
            return None
        steps = context.get_step_failure_events()
        errors = [
            f"{e.step_key}: {_root_error(e.step_failure_data.error)}"
            for e in steps
            if e.step_failure_data.error
        ]
        run_error = context.failure_event.job_failure_data.error
        if errors:
            reason = errors[0]
        elif run_error:
            reason = _root_error(run_error)
        else:
            reason = _first_line(context.failure_event.message)
        alert_webhook.send(
            Alert(
                kind="run_failure",
                location=location,
                text=f"[{location}] run of {run.job_name}{_partition_text(run)} failed: {reason}",
                fields={
                    **_run_fields(run),
                    "failed_steps": [e.step_key for e in steps],
                    "errors": errors,
                },
                link=alert_webhook.run_link(run.run_id),
            ),
            context.log,
        )
        return None

    return run_failure_alerts


def build_blocking_check_alert_sensor(location: str) -> dg.SensorDefinition:
    """Posts the failed blocking checks of any failed run of the location's jobs."""

    @dg.run_failure_sensor(
        name=f"{location}_blocking_check_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=TICK_S,
        description="Posts each blocking check that failed with ERROR severity (in any run of "
        "this location) to ALERT_WEBHOOK_URL, once per run.",
    )
    def blocking_check_alerts(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
        run = context.dagster_run
        failed = failed_blocking_checks(context.instance, run.run_id)
        if not failed:
            return None
        if _will_retry(run):
            context.log.info(f"run {run.run_id} of {run.job_name} will be retried: no alert")
            return None
        names = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in failed]
        detail = _check_summary(failed[0])
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        alert_webhook.send(
            Alert(
                kind="blocking_check_failure",
                location=location,
                text=f"[{location}] blocking check {names[0]}{more} failed in run of "
                f"{run.job_name}{_partition_text(run)}: {detail}; downstream assets did not run",
                fields={
                    **_run_fields(run),
                    "checks": [
                        {
                            "asset": e.asset_key.to_user_string(),
                            "check": e.check_name,
                            "partition": e.partition,
                            "description": e.description,
                            "metadata": _plain_metadata(e.metadata),
                        }
                        for e in failed
                    ],
                },
                link=alert_webhook.run_link(run.run_id),
            ),
            context.log,
        )
        return None

    return blocking_check_alerts


def fail_windows(assets_defs: Iterable[dg.AssetsDefinition]) -> dict[dg.AssetKey, timedelta]:
    """Each asset's freshness ``fail_window`` (time-window policies; others are not judged)."""
    windows = {}
    for assets_def in assets_defs:
        for spec in assets_def.specs:
            window = getattr(spec.freshness_policy, "fail_window", None)
            if window is not None:
                windows[spec.key] = window.to_timedelta()
    return windows


def build_freshness_alert_sensor(
    location: str, clock: Callable[[], float] = time.time
) -> dg.SensorDefinition:
    """Posts an asset of the location that went stale under its freshness policy.

    The policies are read from the location's own definitions, so what the UI shows as stale
    and what is alerted are one rule. ``clock`` is the time source (tests move it forward).
    """

    @dg.sensor(
        name=f"{location}_freshness_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=TICK_S,
        description="Posts each asset whose last materialization is older than its freshness "
        "policy's fail window to ALERT_WEBHOOK_URL, once per stale spell.",
    )
    def freshness_alerts(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook):
        windows = fail_windows(set(context.repository_def.assets_defs_by_key.values()))
        alerted: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        now = clock()
        kept: dict[str, float] = {}
        stale_now = []
        for key, window in sorted(windows.items(), key=lambda kv: kv[0].to_user_string()):
            event = context.instance.get_latest_materialization_event(key)
            if event is None:  # never materialized: Dagster's UNKNOWN, nothing to judge
                continue
            age = now - event.timestamp
            if age < window.total_seconds():
                continue
            name = key.to_user_string()
            stale_now.append(name)
            kept[name] = event.timestamp
            if alerted.get(name) == event.timestamp:
                continue  # this stale spell was already alerted
            last = datetime.fromtimestamp(event.timestamp, UTC)
            alert_webhook.send(
                Alert(
                    kind="asset_stale",
                    location=location,
                    text=f"[{location}] {name} is stale: last materialized "
                    f"{last:%Y-%m-%d %H:%M:%S}Z, {age / 60:.0f} min ago (freshness policy: "
                    f"every {window.total_seconds() / 60:g} min); is its sensor or the "
                    "daemon stopped?",
                    fields={
                        "asset": name,
                        "last_materialization": last.isoformat(),
                        "age_s": round(age, 1),
                        "fail_window_s": window.total_seconds(),
                        "partition": event.asset_materialization.partition
                        if event.asset_materialization
                        else None,
                    },
                    link=alert_webhook.asset_link(key),
                ),
                context.log,
            )
        context.update_cursor(json.dumps(kept, sort_keys=True))
        return dg.SkipReason(
            f"{len(windows)} assets with a freshness policy; stale: "
            + (", ".join(stale_now) if stale_now else "none")
        )

    return freshness_alerts


def alert_sensors(location: str, failure_jobs: Sequence, freshness: bool) -> list:
    """The location's alert sensors: failed runs of ``failure_jobs``, failed blocking checks,
    and (``freshness``) stale assets."""
    sensors = [
        build_run_failure_alert_sensor(location, failure_jobs),
        build_blocking_check_alert_sensor(location),
    ]
    if freshness:
        sensors.append(build_freshness_alert_sensor(location))
    return sensors
