"""Drift monitoring in Dagster: report partitions, their checks, the sensor, the HTML report."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from platform_core.model_store import ModelStoreResource
from platform_core.storage import PlatformStorage
from platform_core.tables import ParquetTableIOManager
from tests.wine.wine_service import copy_storage, running_service
from wine_assets.definitions import defs
from wine_assets.features import FEATURES
from wine_assets.monitoring.assets import (
    drift_partitions,
    read_summary,
    window_folder,
    wine_drift_report,
)
from wine_assets.monitoring.checks import drift_checks
from wine_assets.monitoring.prediction_log import LoggedPrediction, PredictionLogResource, open_log
from wine_assets.monitoring.resources import DriftSensorSettings
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


def resources(storage: PlatformStorage, log_dsn: str, **sensor: int) -> dict:
    return {
        "storage": storage,
        "io_manager": ParquetTableIOManager(storage=storage),
        "model_store": ModelStoreResource(storage=storage),
        "prediction_log": PredictionLogResource(dsn=log_dsn),
        "drift_thresholds": DriftThresholds(),
        "drift_sensor_settings": DriftSensorSettings(**sensor),
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


def evaluate_sensor(storage, log_dsn, cursor, **settings):
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources(storage, log_dsn, **settings)
        ) as context,
    ):
        return SENSOR(context)


def partition_key(start: datetime) -> str:
    return drift_partitions.get_partition_key_for_timestamp(start.timestamp())


def run_report(instance, storage, log_dsn, key) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=REPORT,
        partition_key=key,
        resources=resources(storage, log_dsn),
        instance=instance,
    )


@pytest.fixture(scope="module")
def drift_storage(champion_storage, tmp_path_factory) -> PlatformStorage:
    return copy_storage(champion_storage, tmp_path_factory.mktemp("drift") / "storage")


@pytest.mark.slow
def test_normal_batch_passes_corrupted_fails_as_error_and_noisy_is_flagged_too(
    drift_storage, tmp_path
):
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    for seed, (kind, start) in enumerate(HOURS.items()):
        log_batch(log_dsn, kind, 800, start, seed=seed)
    outcomes, auc = {}, {}
    with dg.instance_for_test() as instance:
        for kind, start in HOURS.items():
            result = run_report(instance, drift_storage, log_dsn, partition_key(start))
            (mat,) = result.asset_materializations_for_node("wine_drift_report")
            auc[kind] = mat.metadata["drift_auc"].value
            outcomes[kind] = {
                e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()
            }
            rows = 400 if kind == "noisy" else 800  # noisy keeps the first half of the rows
            assert mat.metadata["rows"].value == rows
    ok = (True, dg.AssetCheckSeverity.WARN)
    error = (False, dg.AssetCheckSeverity.ERROR)
    assert outcomes["normal"] == {"drift_auc_below_threshold": ok, "drifting_features_share": ok}
    assert outcomes["corrupted"]["drift_auc_below_threshold"] == error
    # three of twelve columns rejected: above DRIFT_FEATURES_WARN, below _ERROR
    assert outcomes["corrupted"]["drifting_features_share"] == (
        False,
        dg.AssetCheckSeverity.WARN,
    )
    # noisy (+N(0.1, 0.01) on every feature) moves density by ~30 of its standard deviations
    assert outcomes["noisy"] == {
        "drift_auc_below_threshold": error,
        "drifting_features_share": error,
    }
    assert auc["normal"] <= 0.6 and auc["corrupted"] >= 0.95 and auc["noisy"] >= 0.95
    # every window's summary is kept for the AUC-over-time plot, in time order
    summaries = [read_summary(drift_storage, start) for start in HOURS.values()]
    assert [s["drift_auc"] for s in summaries] == [auc[k] for k in HOURS]


@pytest.mark.slow
def test_report_is_written_on_all_numeric_data_where_plain_eurybia_crashes(drift_storage, tmp_path):
    """Eurybia 1.4.2 cannot draw its report when every column is numeric; the asset can."""
    from eurybia import SmartDrift

    from wine_assets.monitoring.drift import DeployedModel, drift_frame
    from wine_assets.quality import model as wine_model

    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    log_batch(log_dsn, "normal", 300, start, seed=7)
    with dg.instance_for_test() as instance:
        result = run_report(instance, drift_storage, log_dsn, partition_key(start))
    (mat,) = result.asset_materializations_for_node("wine_drift_report")
    key = f"{window_folder(start)}/report.html"
    assert mat.metadata["report"].value == str(drift_storage.path(key))
    html = drift_storage.read_bytes(key).decode()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:2000]
    assert "Wine prediction drift" in html and "volatile_acidity" in html
    assert "K-Smirnov" in html and "__placeholder__" not in html
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


def test_sensor_requests_reports_on_enough_rows_or_enough_waiting(drift_storage, tmp_path):
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    now = datetime.now(UTC)

    def tick(cursor, **settings):
        return evaluate_sensor(drift_storage, log_dsn, cursor, **settings)

    with open_log(log_dsn) as log:
        log.create()
    assert "no new predictions" in tick(None).skip_message
    log_batch(log_dsn, "normal", 40, now - timedelta(minutes=1), seed=1, spread_s=30)
    skipped = tick(None, min_rows=100, max_wait_s=3600)
    assert isinstance(skipped, dg.SkipReason) and "40 new rows" in skipped.skip_message
    # enough rows: one request per window holding them, cursor = highest position observed
    result = tick(None, min_rows=40, max_wait_s=3600)
    keys = {partition_key(now - timedelta(minutes=1)), partition_key(now + timedelta(minutes=1))}
    assert {r.partition_key for r in result.run_requests} <= keys
    assert result.cursor == "40"
    assert all(r.run_key == f"{r.partition_key}@40" for r in result.run_requests)
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
    # rows younger than settle_s may still be committing out of order: left for a later tick
    log_batch(log_dsn, "normal", 50, datetime.now(UTC), seed=4, spread_s=0)
    assert "no new predictions after position 48" in tick("48", min_rows=1).skip_message
    assert tick("48", min_rows=1, settle_s=0).cursor == "98"
    # no champion: nothing requested and the cursor stays where it was
    empty = PlatformStorage.local(str(tmp_path / "empty"))
    waiting = evaluate_sensor(empty, log_dsn, "40", min_rows=1)
    assert "no champion" in waiting.skip_message


@pytest.mark.slow
def test_service_to_sensor_to_report(drift_storage, tmp_path):
    """Predictions answered by the service reach a report through the sensor's run request."""
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with running_service(drift_storage, log_dsn) as url:
        summary = send(make_batch("normal", 300, seed=5), url, chunk=100)
    assert summary["answered"] == 300
    requested = evaluate_sensor(drift_storage, log_dsn, None, min_rows=300, settle_s=0)
    assert requested.cursor == "300"
    with dg.instance_for_test() as instance:
        compared = 0
        for request in requested.run_requests:
            result = run_report(instance, drift_storage, log_dsn, request.partition_key)
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
    }
    promotion = [k for k in graph.asset_check_keys if k.name == "candidate_promotion"]
    assert any(k.asset_key.path == ["wine_quality_model_candidate"] for k in promotion)
