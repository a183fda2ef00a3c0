"""Drift monitoring in Dagster: report partitions, their checks, the sensor, the HTML report.

The README's walkthrough on defaults: a ``normal`` batch of 500 rows gets a passing report
once it is over, a ``corrupted`` one sent later in the same hour a failing report of its own
(not one report over both); hours without predictions have no partition.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from platform_core.model_store import ModelStoreResource
from platform_core.resources import shared_resources
from platform_core.storage import PlatformStorage
from tests.wine.wine_service import copy_storage, running_service
from wine_assets.definitions import defs
from wine_assets.features import FEATURES
from wine_assets.monitoring.assets import (
    POSITIONS_TAG,
    WineApiResource,
    drift_checks,
    drift_partitions,
    read_summary,
    report_folder,
    wine_drift_report,
)
from wine_assets.monitoring.prediction_log import LoggedPrediction, PredictionLogResource, open_log
from wine_assets.monitoring.report_html import external_resources
from wine_assets.monitoring.reports import WHOLE_HOUR, hour_key
from wine_assets.monitoring.resources import DriftSensorSettings, drift_sensor_settings
from wine_assets.monitoring.send_batch import make_batch, send
from wine_assets.monitoring.sensor import build_drift_sensor
from wine_assets.monitoring.thresholds import DriftThresholds
from wine_assets.quality.training import wine_training_data

ASSETS = [wine_training_data, wine_drift_report, *drift_checks]
SENSOR = build_drift_sensor(defs.resolve_job_def("wine_drift_report_job"))
REPORT = dg.AssetSelection.assets("wine_drift_report")
#: Three past hours, one per kind of batch.
HOURS = {
    "normal": datetime(2026, 3, 1, 10, tzinfo=UTC),
    "noisy": datetime(2026, 3, 1, 11, tzinfo=UTC),
    "corrupted": datetime(2026, 3, 1, 12, tzinfo=UTC),
}


API_URL = "http://127.0.0.1:8765"


def resources(storage: PlatformStorage, log_dsn: str, **sensor: int) -> dict:
    return {
        **shared_resources(storage=storage),
        "prediction_log": PredictionLogResource(dsn=log_dsn),
        "drift_thresholds": DriftThresholds(),
        "drift_sensor_settings": DriftSensorSettings(**sensor),
        "wine_api": WineApiResource(url=API_URL),
    }


def log_batch(
    log_dsn: str, kind: str, rows: int, start: datetime, seed: int = 0, spread_s: float = 3000
) -> None:
    """System B's batch of ``kind`` logged as if answered over ``spread_s`` from ``start``."""
    wines = make_batch(kind, rows, seed=seed)
    with open_log(log_dsn) as log:
        log.create()
        log.write(
            [
                LoggedPrediction(
                    request_id=f"{kind}-{seed}",
                    item=i,
                    endpoint="batch",
                    barrel_id=None,
                    wine_type=w["wine_type"],
                    features=tuple(w[f] for f in FEATURES),
                    predicted_quality=5.5,
                    good=False,
                    model_version=1,
                    logged_at=start + timedelta(seconds=spread_s * i / len(wines)),
                )
                for i, w in enumerate(wines)
            ]
        )


def evaluate_sensor(storage, log_dsn, cursor, instance=None, **settings):
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.instance_for_test())
        context = stack.enter_context(
            dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=resources(storage, log_dsn, **settings)
            )
        )
        return SENSOR(context)


def partition_key(start: datetime) -> str:
    return hour_key(start)


def run_report(instance, storage, log_dsn, key, tags=None) -> dg.ExecuteInProcessResult:
    """One run of the report job's asset and checks, as the daemon would launch it."""
    instance.add_dynamic_partitions(drift_partitions.name, [key])
    return dg.materialize(
        ASSETS,
        selection=REPORT,
        partition_key=key,
        resources=resources(storage, log_dsn),
        instance=instance,
        tags=tags,
    )


def run_requested(instance, storage, log_dsn, request: dg.RunRequest):
    return run_report(instance, storage, log_dsn, request.partition_key, request.tags)


def outcome(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}


OK = (True, dg.AssetCheckSeverity.WARN)
ERROR = (False, dg.AssetCheckSeverity.ERROR)


@pytest.fixture(scope="module")
def drift_storage(champion_storage, tmp_path_factory) -> PlatformStorage:
    return copy_storage(champion_storage, tmp_path_factory.mktemp("drift") / "storage")


@pytest.mark.slow
def test_normal_batch_passes_corrupted_fails_as_error_and_noisy_is_flagged_too(
    drift_storage, tmp_path
):
    """Whole-hour reports (runs by hand, no positions tag): one kind of batch per hour."""
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    for seed, (kind, start) in enumerate(HOURS.items()):
        log_batch(log_dsn, kind, 800, start, seed=seed)
    outcomes, auc = {}, {}
    with dg.instance_for_test() as instance:
        for kind, start in HOURS.items():
            result = run_report(instance, drift_storage, log_dsn, partition_key(start))
            (mat,) = result.asset_materializations_for_node("wine_drift_report")
            auc[kind] = mat.metadata["drift_auc"].value
            outcomes[kind] = outcome(result)
            rows = 400 if kind == "noisy" else 800  # noisy keeps the first half of the rows
            assert mat.metadata["rows"].value == rows
            assert mat.metadata["covers"].value == "every row of the hour"
    assert outcomes["normal"] == {"drift_auc_below_threshold": OK, "drifting_features_share": OK}
    assert outcomes["corrupted"]["drift_auc_below_threshold"] == ERROR
    # three of twelve columns rejected: above DRIFT_FEATURES_WARN, below _ERROR
    assert outcomes["corrupted"]["drifting_features_share"] == (
        False,
        dg.AssetCheckSeverity.WARN,
    )
    # noisy (+N(0.1, 0.01) on every feature) moves density by ~30 of its standard deviations
    assert outcomes["noisy"] == {
        "drift_auc_below_threshold": ERROR,
        "drifting_features_share": ERROR,
    }
    assert auc["normal"] <= 0.6 and auc["corrupted"] >= 0.95 and auc["noisy"] >= 0.95
    # every report's summary is kept for the AUC-over-time plot
    summaries = [read_summary(drift_storage, start, WHOLE_HOUR) for start in HOURS.values()]
    assert [s["drift_auc"] for s in summaries] == [auc[k] for k in HOURS]


@pytest.mark.slow
def test_walkthrough_normal_then_corrupted_in_one_hour_get_a_report_each(drift_storage, tmp_path):
    """The README's walkthrough on the default sensor settings: `wine-send-batch normal`
    (500 rows) is reported once it is over and passes; `corrupted` sent later in the same
    hour gets a report of its own over its rows only, AUC ~1, ERROR (not one warning at
    ~0.75 over both); replayed ticks request nothing new."""
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    hour = datetime(2026, 3, 4, 10, tzinfo=UTC)
    log_batch(log_dsn, "normal", 500, hour + timedelta(minutes=5), seed=11, spread_s=0)
    with dg.instance_for_test() as instance:
        first = evaluate_sensor(drift_storage, log_dsn, None, instance)  # defaults
        (request,) = first.run_requests
        assert request.partition_key == "2026-03-04-10:00" and first.cursor == "500"
        assert (
            request.tags[POSITIONS_TAG] == "1-500" and request.run_key == "2026-03-04-10:00@1-500"
        )
        # the hour becomes a partition only now: it holds predictions
        (added,) = first.dynamic_partitions_requests
        assert list(added.partition_keys) == ["2026-03-04-10:00"]
        normal = run_requested(instance, drift_storage, log_dsn, request)
        assert outcome(normal) == {"drift_auc_below_threshold": OK, "drifting_features_share": OK}

        log_batch(log_dsn, "corrupted", 500, hour + timedelta(minutes=20), seed=12, spread_s=0)
        second = evaluate_sensor(drift_storage, log_dsn, first.cursor, instance)
        (request2,) = second.run_requests
        assert request2.partition_key == request.partition_key  # the same hour...
        assert request2.tags[POSITIONS_TAG] == "501-1000"  # ...but only the new rows
        assert second.cursor == "1000" and request2.run_key != request.run_key
        # the hour's partition exists already: not added twice
        assert not second.dynamic_partitions_requests
        # a replayed tick (same cursor) asks for the same run key: Dagster drops it
        again = evaluate_sensor(drift_storage, log_dsn, first.cursor, instance)
        assert [r.run_key for r in again.run_requests] == [request2.run_key]
        corrupted = run_requested(instance, drift_storage, log_dsn, request2)
    assert outcome(corrupted)["drift_auc_below_threshold"] == ERROR
    (mat,) = corrupted.asset_materializations_for_node("wine_drift_report")
    assert mat.metadata["rows"].value == 500 and mat.metadata["positions"].value == "501-1000"
    assert mat.metadata["drift_auc"].value >= 0.95
    # each report is kept and linked on its own; the hour's newest is the corrupted one
    assert mat.metadata["report"].value == f"{API_URL}/reports/2026-03-04T1000Z/501-1000"
    (normal_mat,) = normal.asset_materializations_for_node("wine_drift_report")
    assert normal_mat.metadata["report"].value == f"{API_URL}/reports/2026-03-04T1000Z/1-500"
    assert normal_mat.metadata["drift_auc"].value <= 0.6
    assert read_summary(drift_storage, hour, "1-500")["drift_auc"] <= 0.6
    assert read_summary(drift_storage, hour)["positions"] == "501-1000"
    for label in ("1-500", "501-1000"):
        assert drift_storage.exists(f"{report_folder(hour, label)}/report.html")


@pytest.mark.slow
def test_report_is_self_contained_and_written_on_all_numeric_data(drift_storage, tmp_path):
    """Eurybia 1.4.2 cannot draw its report when every column is numeric, and links its
    scripts from CDNs; the asset's report is drawn, and loads nothing from the network."""
    from eurybia import SmartDrift

    from wine_assets.monitoring.drift import DeployedModel, drift_frame
    from wine_assets.quality import model as wine_model

    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    log_batch(log_dsn, "normal", 300, start, seed=7)
    with dg.instance_for_test() as instance:
        result = run_report(instance, drift_storage, log_dsn, partition_key(start))
    (mat,) = result.asset_materializations_for_node("wine_drift_report")
    key = f"{report_folder(start, WHOLE_HOUR)}/report.html"
    assert mat.metadata["report"].value == f"{API_URL}/reports/2026-03-02T0900Z/hour"
    assert mat.metadata["report_file"].value == str(drift_storage.path(key))
    html = drift_storage.read_bytes(key).decode()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:2000]
    assert "Wine prediction drift" in html and "volatile_acidity" in html
    assert "K-Smirnov" in html and "__placeholder__" not in html
    # self-contained: no script, stylesheet or image from a CDN (it opened blank offline)
    assert external_resources(html) == [] and mat.metadata["report_offline"].value is True
    assert "cdn.bokeh.org" not in html and "cdn.holoviz.org" not in html
    assert "Plotly" in html  # plotly.js itself is in the page
    assert mat.metadata["report_bytes"].value == len(html.encode())
    assert mat.metadata["drift_auc_history"].value.startswith("![")  # the AUC-over-time plot
    tests = mat.metadata["feature_tests"].value.records
    assert len(tests) == 12 and {r.data["test"] for r in tests} == {"K-Smirnov"}

    training = drift_storage.read_parquet("tables/wine_training_data.parquet")
    _, files = ModelStoreResource(storage=drift_storage).champion_files("wine_quality")
    plain = SmartDrift(
        df_current=drift_frame(training.sample(300, random_state=1)),
        df_baseline=drift_frame(training),
        deployed_model=DeployedModel(wine_model.from_files(files)),
    )
    with contextlib.chdir(tmp_path):  # CatBoost writes ./catboost_info
        plain.compile()
    with pytest.raises(ValueError, match="zip"):
        plain.generate_report(output_file=str(tmp_path / "plain.html"))


def test_external_resources_finds_what_a_browser_would_fetch():
    page = (
        '<script src="https://cdn.example.org/x.js"></script><link href="https://h/a.css">'
        '<script type="application/json">{"url":"https://cdn.holoviz.org/p/1/dist/c.css"}'
        '</script><script>var u = "https://in.code/only";</script>'
        '<a href="https://example.org/docs">docs</a> see https://text.example/'
    )
    found = external_resources(page)
    assert "https://cdn.example.org/x.js" in found and "https://h/a.css" in found
    assert "https://cdn.holoviz.org/p/1/dist/c.css" in found
    assert "https://in.code/only" not in found and "https://text.example/" not in found


def test_default_settings_report_a_500_row_batch_within_a_minute(monkeypatch):
    """The walkthrough's promise on defaults: 500 rows are enough, and a pause of well under
    a minute ends a burst (the sensor ticks every 15 s)."""
    for name in ("DRIFT_REPORT_MIN_ROWS", "DRIFT_REPORT_QUIET_S", "DRIFT_REPORT_MAX_ROWS"):
        monkeypatch.delenv(name, raising=False)
    for settings in (DriftSensorSettings(), drift_sensor_settings()):
        assert settings.min_rows <= 500 and settings.quiet_s + SENSOR.minimum_interval_seconds <= 45
    assert isinstance(drift_partitions, dg.DynamicPartitionsDefinition)


def test_sensor_requests_a_report_per_burst_of_new_rows(drift_storage, tmp_path):
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    now = datetime.now(UTC)

    def tick(cursor, **settings):
        return evaluate_sensor(drift_storage, log_dsn, cursor, **settings)

    with open_log(log_dsn) as log:
        log.create()
    assert "no new predictions" in tick(None).skip_message
    # a burst still arriving (last row 2 s ago) waits, however many rows it has
    log_batch(log_dsn, "normal", 40, now - timedelta(seconds=2), seed=1, spread_s=0)
    skipped = tick(None, min_rows=10, quiet_s=15)
    assert (
        isinstance(skipped, dg.SkipReason) and "waiting for a pause of 15s" in skipped.skip_message
    )
    # over (no row for quiet_s) but fewer than min_rows: waits for more, or for max_wait_s
    skipped = tick(None, min_rows=100, quiet_s=0, settle_s=0)
    assert isinstance(skipped, dg.SkipReason) and "40 new rows" in skipped.skip_message
    # over and enough rows: one request per hour holding them, positions cursor+1..newest
    result = tick(None, min_rows=40, quiet_s=0, settle_s=0)
    keys = {partition_key(now - timedelta(seconds=2)), partition_key(now)}
    assert {r.partition_key for r in result.run_requests} <= keys and result.cursor == "40"
    assert all(r.tags[POSITIONS_TAG] == "1-40" for r in result.run_requests)
    assert all(r.run_key == f"{r.partition_key}@1-40" for r in result.run_requests)
    assert "no new predictions after position 40" in tick("40").skip_message
    # few rows, but the oldest has waited long enough (a quiet hour still gets its report);
    # rows weeks apart request exactly the two hours holding them, not everything between
    old = datetime(2026, 3, 3, 8, tzinfo=UTC)
    log_batch(log_dsn, "normal", 5, old, seed=2)
    log_batch(log_dsn, "normal", 3, now - timedelta(minutes=1), seed=3, spread_s=0)
    result = tick("40", min_rows=1000, max_wait_s=600)
    assert result.cursor == "48"
    assert [r.partition_key for r in result.run_requests] == [
        partition_key(old),
        partition_key(now - timedelta(minutes=1)),
    ]
    assert {r.tags[POSITIONS_TAG] for r in result.run_requests} == {"41-48"}
    (added,) = result.dynamic_partitions_requests  # only the hours holding rows
    assert sorted(added.partition_keys) == sorted(r.partition_key for r in result.run_requests)
    # steady traffic that never pauses: max_rows new rows are reported without a pause;
    # rows younger than settle_s may still be committing out of order: left for a later tick
    log_batch(log_dsn, "normal", 50, datetime.now(UTC) - timedelta(seconds=30), seed=4,
              spread_s=0)  # fmt: skip
    log_batch(log_dsn, "normal", 5, datetime.now(UTC), seed=5, spread_s=0)
    assert "waiting for a pause" in tick("48", min_rows=1, max_rows=100).skip_message
    steady = tick("48", min_rows=1, max_rows=50)
    assert steady.cursor == "98" and {r.tags[POSITIONS_TAG] for r in steady.run_requests} == {
        "49-98"
    }
    assert tick("48", min_rows=1, max_rows=50, settle_s=0).cursor == "103"
    # no champion: nothing requested and the cursor stays where it was
    empty = PlatformStorage.local(str(tmp_path / "empty"))
    waiting = evaluate_sensor(empty, log_dsn, "40", min_rows=1, quiet_s=0, settle_s=0)
    assert "no champion" in waiting.skip_message


@pytest.mark.slow
def test_service_to_sensor_to_report(drift_storage, tmp_path):
    """Predictions answered by the service reach a report through the sensor's run request,
    filed under the hour wine-send-batch names."""
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with running_service(drift_storage, log_dsn) as url:
        summary = send(make_batch("normal", 300, seed=5), url, chunk=100)
    assert summary["answered"] == 300
    requested = evaluate_sensor(drift_storage, log_dsn, None, quiet_s=0, settle_s=0)
    assert requested.cursor == "300"
    assert {r.partition_key for r in requested.run_requests} == set(summary["drift_partitions"])
    with dg.instance_for_test() as instance:
        compared = 0
        for request in requested.run_requests:
            result = run_requested(instance, drift_storage, log_dsn, request)
            (mat,) = result.asset_materializations_for_node("wine_drift_report")
            compared += mat.metadata["rows"].value
            assert all(e.passed for e in result.get_asset_check_evaluations())
    assert compared == 300


def test_wine_location_wires_monitoring_and_one_click_retraining():
    sensor = defs.resolve_sensor_def("wine_drift_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "wine_drift_report_job"
    graph = defs.resolve_asset_graph()
    checks = {k.name for k in graph.asset_check_keys if k.asset_key.path == ["wine_drift_report"]}
    assert checks == {"drift_auc_below_threshold", "drifting_features_share"}
    retrain = defs.resolve_job_def("wine_retrain")
    assert {k.path[-1] for k in retrain.asset_layer.executable_asset_keys} >= {
        "wine_training_data",
        "wine_quality_model_candidate",
        "wine_quality_champion",
    }
    gate = [k for k in graph.asset_check_keys if k.name == "candidate_gate"]
    assert any(k.asset_key.path == ["wine_quality_model_candidate"] for k in gate)
    # The drift report compares the champion's outputs: the lineage says so.
    report = graph.get(dg.AssetKey("wine_drift_report"))
    assert dg.AssetKey("wine_quality_champion") in report.parent_keys
