"""The prediction service over HTTP: answers, 422s naming fields, the log, champion changes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from platform_core.model_store import ModelStoreResource
from platform_core.registry import ModelRegistry, Status
from tests.conftest import free_port, wait_http
from tests.polling import wait_for
from tests.wine.conftest import reading
from tests.wine.wine_service import (
    WINE,
    copy_storage,
    listening_addresses,
    predict,
    running_service,
)
from wine_assets.features import FEATURES
from wine_assets.monitoring.assets import report_folder
from wine_assets.monitoring.prediction_log import open_log
from wine_assets.monitoring.service import ChampionCache, PredictionBatcher, new_request_id
from wine_assets.quality import MODEL_NAME
from wine_assets.quality.trust import annotate
from wine_assets.readings.schema import PHYSICAL_BOUNDS
from wine_assets.readings.store import open_store

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def readings_url(tmp_path_factory) -> str:
    """A SQLite readings store holding one barrel."""
    url = f"sqlite:///{tmp_path_factory.mktemp('readings') / 'readings.db'}"
    with open_store(url) as store:
        store.create()
        store.put([reading("barrel-0007", alcohol=12.5)])
    return url


@pytest.fixture(scope="module")
def service(champion_storage, tmp_path_factory, readings_url):
    """One service for the module: SQLite log and the readings store above."""
    root = tmp_path_factory.mktemp("service")
    log_dsn = f"sqlite:///{root / 'log.db'}"
    with running_service(champion_storage, log_dsn, readings_url) as url:
        yield url, log_dsn


def logged(log_dsn: str):
    with open_log(log_dsn) as log:
        return log.window(*EVER)


def test_predict_answers_after_logging_inputs_output_version_and_request_id(service):
    url, log_dsn = service
    response = predict(url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "request_id", "model_version", "predicted_quality", "good", "p_good", "interval_90"
    }  # fmt: skip
    assert body["model_version"] == 1
    assert 0 <= body["predicted_quality"] <= 10
    assert body["good"] == (body["predicted_quality"] >= 6)
    low, high = body["interval_90"]
    assert 0 <= low <= body["predicted_quality"] <= high <= 10
    assert 0 <= body["p_good"] <= 1
    assert response.headers["X-Request-ID"] == body["request_id"]
    rows = logged(log_dsn)
    (row,) = rows[rows["request_id"] == body["request_id"]].itertuples()
    assert row.endpoint == "predict" and row.item == 0 and row.wine_type == "red"
    assert [getattr(row, f) for f in FEATURES] == [WINE[f] for f in FEATURES]
    assert round(row.predicted_quality, 4) == body["predicted_quality"]
    assert row.model_version == 1 and bool(row.good) == body["good"]
    assert abs((datetime.now(UTC) - row.logged_at).total_seconds()) < 60


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"ph": 9.5}, {"ph"}),  # outside the physical range
        ({"alcohol": "12.5"}, {"alcohol"}),  # numeric string: not a number
        ({"density": None, "chlorides": True}, {"density", "chlorides"}),
        ({"wine_type": "rosé"}, {"wine_type"}),
        ({"colour": "red", "temperature_c": 14.0}, {"colour", "temperature_c"}),  # unknown
    ],
)
def test_bad_wine_gets_a_422_naming_each_bad_field_and_is_not_logged(service, changes, fields):
    url, log_dsn = service
    before = len(logged(log_dsn))
    response = predict(url, **changes)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]  # FastAPI's list: one entry per bad field
    assert sorted(tuple(e["loc"]) for e in detail) == sorted(("body", f) for f in fields)
    assert all(e["msg"] for e in detail)
    assert len(logged(log_dsn)) == before


def test_missing_fields_and_broken_json_are_422s(service):
    url, _ = service
    partial = {k: v for k, v in WINE.items() if k not in {"ph", "alcohol"}}
    detail = requests.post(f"{url}/predict", json=partial, timeout=10).json()["detail"]
    assert {(e["loc"][-1], e["type"]) for e in detail} == {
        ("ph", "missing"),
        ("alcohol", "missing"),
    }
    as_json = {"Content-Type": "application/json"}
    response = requests.post(f"{url}/predict", data=b"{not json", headers=as_json, timeout=10)
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    response = requests.post(f"{url}/predict", json=[WINE], timeout=10)
    assert response.status_code == 422 and "valid dictionary" in response.text
    # Python's JSON (and many clients) write NaN/Infinity: parsed, then refused as not finite
    body = json.dumps({**WINE, "sulphates": float("nan"), "ph": float("inf")})
    response = requests.post(f"{url}/predict", data=body, headers=as_json, timeout=10)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {e["loc"][-1] for e in detail} == {"sulphates", "ph"}
    assert all("finite" in e["msg"] for e in detail)


def test_batch_scores_and_logs_every_wine_or_none(service, champion_storage):
    url, log_dsn = service
    wines = [WINE, {**WINE, "wine_type": "white", "alcohol": 13.0}, {**WINE, "alcohol": 8.5}]
    response = requests.post(f"{url}/batch", json={"wines": wines}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 3
    rows = logged(log_dsn)
    mine = rows[rows["request_id"] == body["request_id"]].sort_values("item")
    assert list(mine["item"]) == [0, 1, 2] and set(mine["endpoint"]) == {"batch"}
    assert list(mine["alcohol"]) == [9.4, 13.0, 8.5]
    assert list(mine["wine_type"]) == ["red", "white", "red"]
    assert [round(q, 4) for q in mine["predicted_quality"]] == [
        p["predicted_quality"] for p in body["predictions"]
    ]
    # P(good) and the interval are the champion's own calibration, per wine type
    _, model = ChampionCache(ModelStoreResource(storage=champion_storage)).current()
    kinds = np.array([w["wine_type"] for w in wines])
    scores = np.array([p["predicted_quality"] for p in body["predictions"]])
    p_good, bounds = annotate(model.trust, kinds, scores)
    np.testing.assert_allclose([p["p_good"] for p in body["predictions"]], p_good, atol=1e-3)
    np.testing.assert_allclose([p["interval_90"] for p in body["predictions"]], bounds, atol=1e-3)
    assert [p["good"] for p in body["predictions"]] == [bool(q >= 6) for q in scores]
    # one bad wine: the whole batch is refused, each problem named with its index
    before = len(rows)
    bad = [WINE, {**WINE, "ph": -1}, {**WINE, "citric_acid": "x", "extra": 1}]
    response = requests.post(f"{url}/batch", json=bad, timeout=10)
    assert response.status_code == 422
    named = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert named == {
        ("body", "array", 1, "ph"),
        ("body", "array", 2, "citric_acid"),
        ("body", "array", 2, "extra"),
    }
    response = requests.post(f"{url}/batch", json={"wines": [WINE, {**WINE, "ph": -1}]}, timeout=10)
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "object", "wines", 1, "ph"]]
    assert len(logged(log_dsn)) == before
    # an empty batch, in either form, is refused as the schema says (minItems 1)
    for empty in ([], {"wines": []}):
        response = requests.post(f"{url}/batch", json=empty, timeout=10)
        assert response.status_code == 422 and response.json()["detail"][0]["type"] == "too_short"
    response = requests.post(f"{url}/batch", json=[WINE] * 10_001, timeout=60)  # over the limit
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "too_long"
    assert len(logged(log_dsn)) == before


def test_barrel_quality_scores_the_current_reading(service, readings_url):
    url, log_dsn = service
    response = requests.get(f"{url}/barrels/barrel-0007/quality", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["barrel_id"] == "barrel-0007" and body["reading_seq"] == 1
    rows = logged(log_dsn)
    (row,) = rows[rows["request_id"] == body["request_id"]].itertuples()
    assert row.barrel_id == "barrel-0007" and row.endpoint == "barrel" and row.alcohol == 12.5
    assert requests.get(f"{url}/barrels/nobody/quality", timeout=10).status_code == 404
    response = requests.get(f"{url}/barrels/bad%20id/quality", timeout=10)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
        "path",
        "barrel_id",
    ]
    # The service keeps one store open: a reading written since by another process is seen.
    with open_store(readings_url) as store:
        (newer,) = store.put([reading("barrel-0007", alcohol=13.0)])
    body = requests.get(f"{url}/barrels/barrel-0007/quality", timeout=10).json()
    assert body["reading_seq"] == newer
    rows = logged(log_dsn)
    assert rows.loc[rows["request_id"] == body["request_id"], "alcohol"].tolist() == [13.0]


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_a_readings_store_without_tables_has_no_barrel(
    champion_storage, tmp_path, request, backend
):
    """A store nothing was written to yet (no tables): a 404 as the schema says, not a 500."""
    empty = request.getfixturevalue(f"{backend}_url")  # a new file / a table never created
    with running_service(champion_storage, f"sqlite:///{tmp_path / 'log.db'}", empty) as url:
        for _ in range(2):
            response = requests.get(f"{url}/barrels/0/quality", timeout=10)
            assert response.status_code == 404, response.text
            assert response.json() == {"detail": "no barrel '0' in the readings store"}


def test_the_readings_store_is_opened_once_for_the_service_life(
    champion_storage, readings_url, tmp_path, monkeypatch
):
    """Barrel lookups share the store opened at start-up (not a connection per request)."""
    import wine_assets.monitoring.api as api

    opened: list[str] = []

    def counting_open_store(url: str):
        opened.append(url)
        return open_store(url)

    monkeypatch.setattr(api, "open_store", counting_open_store)
    with running_service(champion_storage, f"sqlite:///{tmp_path / 'log.db'}", readings_url) as url:
        for _ in range(3):
            response = requests.get(f"{url}/barrels/barrel-0007/quality", timeout=10)
            assert response.status_code == 200, response.text
    assert opened == [readings_url]


def test_health_and_openapi_schema(service):
    url, _ = service
    health = requests.get(f"{url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model_version"] == 1
    schema = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/predict", "/batch", "/barrels/{barrel_id}/quality", "/health"} <= set(schema["paths"])
    assert "securitySchemes" not in schema["components"] and '"401"' not in json.dumps(schema)
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Wine"}
    wine = schema["components"]["schemas"]["Wine"]
    for name, (low, high) in PHYSICAL_BOUNDS.items():  # from the one table of bounds
        if name in FEATURES:
            assert (wine["properties"][name]["minimum"], wine["properties"][name]["maximum"]) == (
                low,
                high,
            )
    assert wine["additionalProperties"] is False and set(wine["required"]) == {
        "wine_type",
        *FEATURES,
    }
    batch = schema["paths"]["/batch"]["post"]["requestBody"]["content"]["application/json"]
    array, _ = batch["schema"]["oneOf"]
    wines = schema["components"]["schemas"]["WineBatch"]["properties"]["wines"]
    assert array["minItems"] == wines["minItems"] == 1
    assert array["maxItems"] == wines["maxItems"] == 10_000


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_their_scripts_from_the_service_not_a_cdn(service, page):
    """/docs opened blank without internet: Swagger UI came from a CDN (the browser test in
    test_monitoring_page renders it with the network cut)."""
    url, _ = service
    response = requests.get(f"{url}{page}", timeout=10)
    assert response.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert requests.get(f"{url}{asset}", timeout=10).status_code == 200, asset


def test_batch_answer_names_when_it_was_logged(service):
    url, log_dsn = service
    body = requests.post(f"{url}/batch", json=[WINE], timeout=10).json()
    rows = logged(log_dsn)
    (row,) = rows[rows["request_id"] == body["request_id"]].itertuples()
    assert datetime.fromisoformat(body["logged_at"]) == row.logged_at


def test_reports_are_listed_and_served_from_storage(champion_storage, tmp_path):
    """The Dagster UI links each report to /reports/<hour>/<positions>; /reports lists them."""
    storage = copy_storage(champion_storage, tmp_path / "storage")
    hour = datetime(2026, 3, 4, 10, tzinfo=UTC)
    html = b"<!doctype html><title>report 1-500</title>"
    summary = {"partition": "2026-03-04-10:00", "positions": "1-500", "rows": 500,
               "drift_auc": 0.52, "model_version": 1}  # fmt: skip
    storage.write_bytes(f"{report_folder(hour, '1-500')}/report.html", html)
    storage.write_bytes(
        f"{report_folder(hour, '1-500')}/summary.json", json.dumps(summary).encode()
    )
    storage.write_bytes(
        f"{report_folder(hour, '501-520')}/summary.json",
        json.dumps({**summary, "positions": "501-520", "rows": 20, "drift_auc": None}).encode(),
    )
    with running_service(storage, f"sqlite:///{tmp_path / 'log.db'}") as url:
        response = requests.get(f"{url}/reports/2026-03-04T1000Z/1-500", timeout=10)
        assert response.status_code == 200 and response.content == html
        assert response.headers["content-type"].startswith("text/html")
        listing = requests.get(f"{url}/reports", timeout=10).text
        assert 'href="/reports/2026-03-04T1000Z/1-500"' in listing and "0.520" in listing
        assert listing.index("501-520") < listing.index("1-500")  # newest first
        assert "not compared" in listing
        missing = requests.get(f"{url}/reports/2026-03-04T1000Z/501-520", timeout=10)
        assert missing.status_code == 404
        for bad in ("2026-03-04T1000Z/..%2F..%2Fregistry", "x/1-500", "2026-03-04T1000Z/0-5"):
            assert requests.get(f"{url}/reports/{bad}", timeout=10).status_code in (404, 422)


def test_a_new_champion_is_served_without_a_restart(champion_storage, tmp_path):
    storage = copy_storage(champion_storage, tmp_path / "storage")
    registry = ModelRegistry(storage, MODEL_NAME)
    with running_service(storage, f"sqlite:///{tmp_path / 'log.db'}", check_every_s=0.1) as url:
        assert predict(url).json()["model_version"] == 1
        files = registry.verify(registry.champion())
        v2 = registry.register(files, metrics={}, params={})
        registry.set_status(v2.version, Status.CHAMPION, "test: promoted while serving")
        wait_for(
            lambda: predict(url).json()["model_version"],
            10,
            "the new champion (v2) served",
            every_s=0.05,
            until=lambda version: version == 2,
        )
        versions = set(logged(f"sqlite:///{tmp_path / 'log.db'}")["model_version"])
    assert versions == {1, 2}


def test_without_a_champion_nothing_is_answered_or_logged(tmp_path):
    from platform_core.storage import PlatformStorage

    empty = PlatformStorage.local(str(tmp_path / "empty"))
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with running_service(empty, log_dsn) as url:
        response = predict(url)
        assert response.status_code == 503 and "wine_retrain" in response.text
        assert requests.get(f"{url}/health", timeout=10).status_code == 503
    assert len(logged(log_dsn)) == 0


def test_wine_api_command_binds_loopback_and_takes_its_settings_from_the_environment(
    champion_storage, tmp_path
):
    """`wine-api` as a process: PLATFORM_STORAGE_ROOT, PREDICTION_LOG_DSN, loopback only;
    `wine-send-batch` sends a corrupted batch that lands in the log as sent."""
    port = free_port()
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    env = {
        **os.environ,
        "PLATFORM_STORAGE_ROOT": champion_storage.root,
        "PREDICTION_LOG_DSN": log_dsn,
        "WINE_READINGS_STORE": f"sqlite:///{tmp_path / 'readings.db'}",
    }
    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [str(bin_dir / "wine-api"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        assert requests.get(f"{url}/health", timeout=10).json()["model_version"] == 1
        sent = subprocess.run(
            [str(bin_dir / "wine-send-batch"), "corrupted", "--rows", "40", "--url", url,
             "--chunk", "15", "--seed", "3"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert '"answered": 40' in sent.stdout and '"requests": 3' in sent.stdout
        # it says where it sends, and under which drift report partition the rows will be
        assert f"to {url}/batch" in sent.stderr and "Ctrl+C" in sent.stderr
        (hour,) = json.loads(sent.stdout)["drift_partitions"]
        assert f"partition {hour}" in sent.stderr and f"{url}/reports" in sent.stderr
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in output, output
    # on start it says where it serves and how to stop; then one access-log line per request
    assert f"serving the champion wine model on {url}" in output, output
    assert f"API docs {url}/docs" in output and "Ctrl+C" in output
    assert log_dsn in output  # no password in a SQLite DSN to mask
    assert output.count('"POST /batch HTTP/1.1" 200') == 3, output
    assert '"GET /health HTTP/1.1" 200' in output
    rows = logged(log_dsn)
    assert len(rows) == 40 and rows["request_id"].nunique() == 3
    assert (rows["alcohol"] == 20.0).all() and (rows["volatile_acidity"] > 3.0).all()


def test_small_groups_read_the_registry_off_the_event_loop(champion_storage, tmp_path, monkeypatch):
    """A small group is scored on the event loop, but the champion check before it (a registry
    read, on S3 a network call, and a model load on promotion) runs on the worker thread."""
    reads: list[str] = []
    registry = ModelStoreResource.registry

    def recorded(self, name):
        reads.append(threading.current_thread().name)
        return registry(self, name)

    monkeypatch.setattr(ModelStoreResource, "registry", recorded)
    champion = ChampionCache(ModelStoreResource(storage=champion_storage), check_every_s=0.2)
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    log.create()
    batcher = PredictionBatcher(champion, log)

    async def three_requests() -> list[int]:
        await batcher.start()
        try:
            versions = []
            for _ in range(3):
                scored = await batcher.score([dict(WINE)], "predict", new_request_id())
                versions.append(scored.model_version)
                await asyncio.sleep(0.3)  # the next check is due
            return versions
        finally:
            await batcher.stop()

    assert asyncio.run(three_requests()) == [1, 1, 1]
    log.close()
    assert len(reads) == 3 and all(name.startswith("score") for name in reads), reads
