"""Alerts reach a real webhook receiver once: failed runs, failed blocking checks, stale assets.

The receiver is an HTTP server on loopback; runs are real runs of the wine location's own jobs
(its assets, checks and jobs, storage pointed at a temporary folder) on a real Dagster
instance; the sensors are the location's own, evaluated tick after tick with their cursor as
the daemon would.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from beer_assets.definitions import defs as beer_defs
from platform_core.alerts import (
    AlertWebhook,
    alert_webhook_resource,
    build_freshness_alert_sensor,
    build_run_failure_alert_sensor,
)
from platform_core.resources import shared_resources
from platform_core.storage import PlatformStorage
from wine_assets.datasets import SHIPPED_WINE_QUALITY
from wine_assets.definitions import defs as wine_defs
from wine_assets.monitoring.jobs import drift_job
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.profiles.jobs import profiles_job
from wine_assets.profiles.resources import SensorProfilesSettings
from wine_assets.quality.jobs import retrain_job, snapshot_job
from wine_assets.readings.resource import ReadingsStoreResource

RUN_FAILURES = wine_defs.resolve_sensor_def("wine_run_failure_alerts")
CHECK_FAILURES = wine_defs.resolve_sensor_def("wine_blocking_check_alerts")
SNAPSHOT = "2026-01-01"  # a day of the barrel history


class Receiver:
    """A webhook receiver on loopback that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def hook(url: str | None) -> AlertWebhook:
    return AlertWebhook(url=url, retry_wait_s=0.05, timeout_s=2)


class Ticker:
    """Evaluates sensors tick after tick on one instance, carrying each one's cursor."""

    def __init__(self, instance: dg.DagsterInstance, webhook: AlertWebhook, repository_def=None):
        self.instance = instance
        self.webhook = webhook
        self.repository_def = repository_def
        self.cursors: dict[int, str | None] = {}  # per sensor object: two may share a name

    def tick(self, sensor: dg.SensorDefinition):
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(id(sensor)),
            resources={"alert_webhook": self.webhook},
            repository_def=self.repository_def,
        ) as context:
            data = sensor.evaluate_tick(context)
        self.cursors[id(sensor)] = data.cursor
        # A run-status sensor reports its function's exception here instead of raising.
        for reaction in data.dagster_run_reactions or []:
            assert reaction.error is None, reaction.error
        return data


@pytest.fixture
def location(tmp_path: Path) -> dg.Definitions:
    """The wine location's assets, checks and jobs on a temporary, empty storage."""
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    resources = {
        **wine_defs.resources,
        **shared_resources(storage=storage),
        "readings_store": ReadingsStoreResource(url=f"sqlite:///{tmp_path / 'readings.db'}"),
        "prediction_log": PredictionLogResource(dsn=f"sqlite:///{tmp_path / 'predictions.db'}"),
        "sensor_profiles": SensorProfilesSettings(drop_dir=str(tmp_path / "no-drop-folder")),
    }
    return dg.Definitions(
        assets=list(wine_defs.assets),
        asset_checks=list(wine_defs.asset_checks),
        jobs=[snapshot_job, retrain_job, drift_job, profiles_job],
        resources=resources,
        executor=dg.in_process_executor,
    )


def fail_scoring_run(location: dg.Definitions, instance: dg.DagsterInstance, **kw):
    """A real barrel_snapshot run that fails: the readings file is not a database."""
    url = location.resources["readings_store"].url
    Path(url.removeprefix("sqlite:///")).write_text("not a database")
    result = location.resolve_job_def("barrel_snapshot").execute_in_process(
        instance=instance, partition_key=SNAPSHOT, raise_on_error=False, **kw
    )
    assert not result.success
    return result


def bad_training_files(folder: Path) -> Path:
    """UCI files (20 rows each), each with one quality of 42: the blocking range check fails."""
    folder.mkdir()
    for wine_type in ("red", "white"):
        name = f"winequality-{wine_type}.csv"
        lines = (SHIPPED_WINE_QUALITY / name).read_text().splitlines()[:21]
        row = lines[1].split(";")
        row[-1] = "42"
        lines[1] = ";".join(row)
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def fail_blocking_check(location: dg.Definitions, instance: dg.DagsterInstance, tmp_path: Path):
    config = {"ops": {"wine_training_data": {"config": {"source": str(tmp_path / "bad")}}}}
    bad_training_files(tmp_path / "bad")
    result = location.resolve_job_def("wine_retrain").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False
    )
    assert not result.success
    return result


def failing_run(job: str, location: dg.Definitions, instance: dg.DagsterInstance):
    """A real run of ``job`` that fails on the empty storage / missing drop folder."""
    if job == "barrel_snapshot":
        return fail_scoring_run(location, instance)
    if job == "wine_drift_report_job":
        hour = "2026-01-01-10:00"
        instance.add_dynamic_partitions("wine_drift_hours", [hour])
        result = location.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=hour, raise_on_error=False
        )
    else:
        result = location.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key="2023-02-15", raise_on_error=False
        )
    assert not result.success
    return result


@pytest.mark.parametrize("job", ["barrel_snapshot", "wine_drift_report_job", "sensor_profiles"])
def test_a_failed_scoring_drift_or_profile_run_posts_once(job, location, receiver):
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(receiver.url))
        ticker.tick(RUN_FAILURES)  # the first tick only sets the cursor
        result = failing_run(job, location, instance)

        ticker.tick(RUN_FAILURES)
        ticker.tick(CHECK_FAILURES)
        ticker.tick(RUN_FAILURES)  # the next tick must not send it again

        assert len(receiver.bodies) == 1, receiver.bodies
        body = receiver.bodies[0]
        alert = body["alert"]
        assert alert["kind"] == "run_failure"
        assert alert["code_location"] == "wine"
        assert alert["job"] == job
        assert alert["run_id"] == result.run_id
        assert alert["failed_steps"] and alert["errors"]
        assert body["text"].startswith(f"[wine] run of {job}")
        assert alert["errors"][0].split(": ", 1)[1] in body["text"]  # the root cause, in words
        assert body["text"].endswith(f"http://127.0.0.1:3000/runs/{result.run_id}")


def test_the_scoring_alert_names_the_partition_and_the_root_cause(location, receiver):
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(receiver.url))
        ticker.tick(RUN_FAILURES)
        fail_scoring_run(location, instance)
        ticker.tick(RUN_FAILURES)
    (body,) = receiver.bodies
    assert body["alert"]["partition"] == SNAPSHOT
    assert f"(partition {SNAPSHOT})" in body["text"]
    # Dagster wraps the asset's error; the alert says what actually went wrong.
    assert "file is not a database" in body["text"]
    assert "DagsterExecution" not in body["text"]


def test_a_failed_blocking_check_posts_once_and_not_again_as_a_run_failure(
    location, receiver, tmp_path
):
    # The run-failure sensor watching this very job too: the check alert is the only one.
    also_watching_retrain = build_run_failure_alert_sensor("wine", [snapshot_job, retrain_job])
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(receiver.url))
        for sensor in (CHECK_FAILURES, RUN_FAILURES, also_watching_retrain):
            ticker.tick(sensor)
        result = fail_blocking_check(location, instance, tmp_path)

        for _ in range(2):
            for sensor in (CHECK_FAILURES, RUN_FAILURES, also_watching_retrain):
                ticker.tick(sensor)

    assert len(receiver.bodies) == 1, receiver.bodies
    body = receiver.bodies[0]
    alert = body["alert"]
    assert alert["kind"] == "blocking_check_failure"
    assert alert["job"] == "wine_retrain"
    assert alert["run_id"] == result.run_id
    assert alert["checks"] == [
        {
            "asset": "wine_training_data",
            "check": "training_values_in_range",
            "partition": None,
            "description": None,
            "metadata": {"rows_out_of_range": {"quality": 2}},
        }
    ]
    assert "blocking check wine_training_data:training_values_in_range failed" in body["text"]
    assert 'rows_out_of_range={"quality": 2}' in body["text"]


def test_nothing_is_posted_when_the_url_is_unset(location, receiver, monkeypatch, capfd):
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    unset = alert_webhook_resource()
    assert unset.url is None
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, unset)
        ticker.tick(RUN_FAILURES)
        fail_scoring_run(location, instance)
        capfd.readouterr()
        ticker.tick(RUN_FAILURES)
        assert receiver.bodies == []
        log = capfd.readouterr().err
        assert "ALERT_WEBHOOK_URL unset, not sent: [wine] run of barrel_snapshot" in log
        assert "given up" not in log  # not an attempt that failed: no attempt at all

        # Set later, it alerts what fails from then on, not what failed before.
        monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
        ticker.webhook = alert_webhook_resource()
        ticker.tick(RUN_FAILURES)
        assert receiver.bodies == []
        second = fail_scoring_run(location, instance)
        ticker.tick(RUN_FAILURES)
    assert [b["alert"]["run_id"] for b in receiver.bodies] == [second.run_id]


def test_the_url_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000")
    resource = alert_webhook_resource()
    assert resource.url == dg.EnvVar("ALERT_WEBHOOK_URL")
    assert resource.ui_url == dg.EnvVar("DAGSTER_UI_URL")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " - dagster - ERROR - " in line]


def test_a_receiver_that_is_down_is_given_up_with_a_clear_log(location, capfd):
    url = f"http://127.0.0.1:{closed_port()}/services/T0/B0/secret-token"
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(url))
        ticker.tick(RUN_FAILURES)
        fail_scoring_run(location, instance)
        capfd.readouterr()
        ticker.tick(RUN_FAILURES)  # Ticker asserts the tick reported no error
        log = capfd.readouterr().err
        ticker.tick(RUN_FAILURES)
        assert "given up" not in capfd.readouterr().err  # not tried again on the next tick
    given_up = [line for line in error_lines(log) if "alert given up after 3 attempts" in line]
    assert len(given_up) == 1, log
    assert "ConnectionError" in given_up[0]
    assert "will not be retried" in given_up[0]
    assert "[wine] run of barrel_snapshot" in given_up[0]
    assert "secret-token" not in log  # a Slack webhook's path is its secret


def test_a_receiver_answering_errors_gets_three_attempts_then_the_alert_is_given_up(
    location, receiver, capfd
):
    receiver.status = 500
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(receiver.url))
        ticker.tick(RUN_FAILURES)
        fail_scoring_run(location, instance)
        capfd.readouterr()
        ticker.tick(RUN_FAILURES)
        assert len(receiver.bodies) == 3  # three attempts within the tick
        (given_up,) = error_lines(capfd.readouterr().err)
        assert "alert given up after 3 attempts" in given_up
        assert "HTTP 500" in given_up

        receiver.status = 200
        ticker.tick(RUN_FAILURES)  # given up means given up: not sent on the next tick
        assert len(receiver.bodies) == 3


def test_a_failed_run_that_dagster_will_retry_waits_for_its_retry(location, receiver):
    """With run retries on (production), Dagster tags each failed run with whether a retry
    follows; only a failure with no retry to come is alerted (a retry whose run group has used
    up max_retries gets ``false`` the same way)."""
    overrides = {"run_retries": {"enabled": True, "max_retries": 1}}
    with dg.instance_for_test(overrides=overrides) as instance:
        ticker = Ticker(instance, hook(receiver.url))
        for sensor in (RUN_FAILURES, CHECK_FAILURES):
            ticker.tick(sensor)
        first = fail_scoring_run(location, instance)
        assert instance.get_run_by_id(first.run_id).tags["dagster/will_retry"] == "true"
        ticker.tick(RUN_FAILURES)
        assert receiver.bodies == []

        last = fail_scoring_run(location, instance, tags={"dagster/max_retries": "0"})
        assert instance.get_run_by_id(last.run_id).tags["dagster/will_retry"] == "false"
        ticker.tick(RUN_FAILURES)
    assert [b["alert"]["run_id"] for b in receiver.bodies] == [last.run_id]


def test_each_location_runs_its_alert_sensors_by_default():
    for location, defs, names in (
        ("wine", wine_defs, ("run_failure", "blocking_check", "freshness")),
        ("beer", beer_defs, ("run_failure", "blocking_check")),
    ):
        for name in names:
            sensor = defs.resolve_sensor_def(f"{location}_{name}_alerts")
            assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
            assert sensor.required_resource_keys == {"alert_webhook"}
            assert not sensor.targets  # alerts post from the sensor; no run is requested
        assert isinstance(defs.resources["alert_webhook"], AlertWebhook)


# --- freshness ------------------------------------------------------------------------------

LIVE_ASSETS = {
    "wine_sensor_snapshot": 15 * 60,
    "barrel_quality_predictions": 15 * 60,
    "wine_drift_report": 24 * 3600,
    "sensor_temperatures": 30 * 3600,
    "sensor_daily_features": 30 * 3600,
    "sensor_profile_model": 30 * 3600,
    "sensor_profile_assignments": 30 * 3600,
}


def test_the_live_wine_assets_carry_freshness_policies():
    specs = {s.key.to_user_string(): s for s in wine_defs.resolve_all_asset_specs()}
    for name, fail_s in LIVE_ASSETS.items():
        policy = specs[name].freshness_policy
        assert policy is not None, name
        assert policy.fail_window.to_timedelta().total_seconds() == fail_s, name
        assert policy.warn_window.to_timedelta() < policy.fail_window.to_timedelta(), name


def test_a_stale_asset_is_posted_once_per_stale_spell(receiver):
    clock = [time.time()]
    sensor = build_freshness_alert_sensor("wine", clock=lambda: clock[0])
    snapshot = dg.AssetKey("wine_sensor_snapshot")
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, hook(receiver.url), wine_defs.get_repository_def())
        assert ticker.tick(sensor).skip_message.endswith("stale: none")  # nothing materialized

        instance.report_runless_asset_event(dg.AssetMaterialization(snapshot, partition=SNAPSHOT))
        materialized = instance.get_latest_materialization_event(snapshot).timestamp
        clock[0] = materialized + 14 * 60  # within the 15 minutes
        ticker.tick(sensor)
        assert receiver.bodies == []

        clock[0] = materialized + 16 * 60  # the readings sensor stopped, say
        data = ticker.tick(sensor)
        assert data.skip_message.endswith("stale: wine_sensor_snapshot")
        ticker.tick(sensor)
        clock[0] += 3600
        ticker.tick(sensor)  # still the same stale spell: no second alert
        assert len(receiver.bodies) == 1, receiver.bodies
        alert = receiver.bodies[0]["alert"]
        assert alert["kind"] == "asset_stale"
        assert alert["asset"] == "wine_sensor_snapshot"
        assert alert["fail_window_s"] == 900
        assert alert["partition"] == SNAPSHOT
        assert "wine_sensor_snapshot is stale" in receiver.bodies[0]["text"]
        assert receiver.bodies[0]["text"].endswith(
            "http://127.0.0.1:3000/assets/wine_sensor_snapshot"
        )

        # Scoring resumes: fresh again; then stops again: a new spell, a new alert.
        instance.report_runless_asset_event(dg.AssetMaterialization(snapshot))
        clock[0] = instance.get_latest_materialization_event(snapshot).timestamp + 60
        assert ticker.tick(sensor).skip_message.endswith("stale: none")
        clock[0] += 15 * 60
        ticker.tick(sensor)
        assert len(receiver.bodies) == 2
