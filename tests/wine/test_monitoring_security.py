"""The prediction service's security defaults (issue 17 item 5): a token on every route but
``GET /health``, no open bind beyond loopback, a request body limit.

Real servers on loopback: ``create_app`` under uvicorn in a thread, and ``wine-api`` itself as a
process for the bind rules. ``wine-api`` on 127.0.0.1 without a token (the first-run test, the
other tests) stays open; that is what test_monitoring_api checks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from platform_core.model_store import ModelStoreResource
from tests.conftest import free_port, wait_http
from tests.polling import wait_for
from tests.wine.wine_service import WINE, listening_addresses
from wine_assets.monitoring.api import DEFAULT_MAX_BODY_BYTES, create_app, is_loopback
from wine_assets.monitoring.prediction_log import PredictionLogResource, open_log

TOKEN = "test-token-5f1c9a"  # noqa: S105 - a test's token
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
BIN = Path(sys.executable).parent


@contextmanager
def serving(storage, log_dsn: str, **options) -> Iterator[str]:
    """``create_app(..., **options)`` under uvicorn on 127.0.0.1; yields its base URL."""
    import uvicorn

    app = create_app(
        ModelStoreResource(storage=storage), PredictionLogResource(dsn=log_dsn), **options
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="wine-api-secured", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 30, "the service", every_s=0.02)
    assert server.started, "the prediction service stopped before it started"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def secured(champion_storage, tmp_path_factory):
    """One service with a token and the default body limit; yields (url, log DSN)."""
    log_dsn = f"sqlite:///{tmp_path_factory.mktemp('secured') / 'log.db'}"
    with serving(champion_storage, log_dsn, token=TOKEN) as url:
        yield url, log_dsn


def logged_rows(log_dsn: str) -> int:
    with open_log(log_dsn) as log:
        return len(log.window(*EVER))


#: Every route but /health, as (method, path): the API, the page, the docs and the reports.
GUARDED = [
    ("POST", "/predict"),
    ("POST", "/batch"),
    ("GET", "/barrels/barrel-0001/quality"),
    ("GET", "/"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/reports"),
    ("GET", "/reports/2026-03-04T1000Z/1-500"),
]


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", f"Token {TOKEN}"],
)
def test_every_route_but_health_needs_the_token(secured, method, path, authorization):
    url, log_dsn = secured
    before = logged_rows(log_dsn)
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.request(method, f"{url}{path}", json=WINE, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    challenges = response.headers["WWW-Authenticate"]
    assert challenges.startswith("Bearer") and "Basic" in challenges  # programs, browsers
    assert "WINE_API_TOKEN" in response.json()["detail"]
    assert logged_rows(log_dsn) == before  # nothing scored or logged


@pytest.mark.parametrize(("body", "status"), [(b"{not json", 422), (b'{"wine_type": "\xff"}', 400)])
def test_a_body_that_does_not_parse_is_a_401_too_without_the_token(secured, body, status):
    """FastAPI parses a body before the token's dependency runs: the refusal still says 401."""
    url, _ = secured
    for path in ("/predict", "/batch"):
        headers = {"Content-Type": "application/json"}
        response = requests.post(f"{url}{path}", data=body, headers=headers, timeout=10)
        assert response.status_code == 401 and "WINE_API_TOKEN" in response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        answer = requests.post(f"{url}{path}", data=body, headers=headers | BEARER, timeout=10)
        assert answer.status_code == status, answer.text  # with the token: why it was refused


def test_the_schema_declares_the_token_and_its_401_on_every_route_but_health(secured):
    url, _ = secured
    schema = requests.get(f"{url}/openapi.json", headers=BEARER, timeout=10).json()
    schemes = schema["components"]["securitySchemes"].values()
    assert {(s["type"], s["scheme"]) for s in schemes} == {("http", "bearer"), ("http", "basic")}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            guarded = path != "/health"
            assert bool(operation.get("security")) is guarded, path
            assert ("401" in operation["responses"]) is guarded, path


def test_the_token_opens_every_route_and_health_is_open(secured):
    url, log_dsn = secured
    health = requests.get(f"{url}/health", timeout=10)  # probes need no token
    assert health.status_code == 200 and health.json()["model_version"] == 1
    before = logged_rows(log_dsn)
    answer = requests.post(f"{url}/predict", json=WINE, headers=BEARER, timeout=10)
    assert answer.status_code == 200 and 0 <= answer.json()["predicted_quality"] <= 10
    batch = requests.post(f"{url}/batch", json=[WINE, WINE], headers=BEARER, timeout=10)
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 2
    assert logged_rows(log_dsn) == before + 3
    for path in ("/", "/docs", "/openapi.json", "/reports"):
        assert requests.get(f"{url}{path}", headers=BEARER, timeout=10).status_code == 200, path
    # the browser's login prompt: any user name, the token as password (HTTP Basic)
    assert requests.get(f"{url}/reports", auth=("wine", TOKEN), timeout=10).status_code == 200
    assert requests.get(f"{url}/reports", auth=("wine", "nope"), timeout=10).status_code == 401


def test_a_person_uses_the_page_with_the_token_typed_at_the_browser_prompt(secured):
    """The browser asks once (HTTP Basic, password = token) and sends it with the page's own
    ``POST /predict``; without it the page is not served."""
    from playwright.sync_api import Error as PlaywrightError

    from tests.browser import chromium

    url, _ = secured
    with chromium() as browser:
        no_login = browser.new_context()
        # headless Chromium answers a login prompt it cannot fill by failing the load
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            no_login.new_page().goto(f"{url}/")
        no_login.close()
        wrong = browser.new_context(http_credentials={"username": "me", "password": "wrong"})
        assert wrong.new_page().goto(f"{url}/").status == 401
        wrong.close()
        context = browser.new_context(http_credentials={"username": "me", "password": TOKEN})
        page = context.new_page()
        assert page.goto(f"{url}/").status == 200
        page.click("#predict")
        page.wait_for_selector("#verdict")
        assert 0 <= float(page.inner_text("#quality")) <= 10
        context.close()


def http_exchange(url: str, head: bytes, chunks: Iterable[bytes] = ()) -> bytes:
    """Send a raw request (``head`` then ``chunks``, stopping early if the server already
    closed) and return everything the server answers before it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def test_a_body_declared_too_large_gets_a_413_without_being_read(secured):
    """Content-Length 1 GB, no body sent: the 413 comes at once (a server reading the body
    first would wait for it, and the socket timeout fails the test)."""
    url, _ = secured
    head = (
        f"POST /batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    ).encode()
    answer = http_exchange(url, head)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert "WINE_API_MAX_BODY_BYTES" in json.loads(rest.partition(b"\r\n\r\n")[2])["detail"]
    assert requests.get(f"{url}/health", timeout=10).status_code == 200  # still answering


def test_a_chunked_body_gets_a_413_once_it_passes_the_limit(secured):
    """No Content-Length: the bytes are counted as they stream in; the server answers 413
    once the limit is passed, before the client finished, and keeps answering."""
    url, log_dsn = secured
    before = logged_rows(log_dsn)
    head = (
        f"POST /batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = json.dumps(WINE).encode() + b","
    chunk = b"[" + piece * (256 * 1024 // len(piece))  # ~256 KiB, never a complete document
    sent = []

    def chunks() -> Iterator[bytes]:
        # just past the limit, then no more: the server has read all it was sent, so its
        # close is a clean one and the 413 is readable
        for _ in range(DEFAULT_MAX_BODY_BYTES // len(chunk) + 1):
            sent.append(len(chunk))
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    answer = http_exchange(url, head, chunks())
    assert sum(sent) > DEFAULT_MAX_BODY_BYTES
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"WINE_API_MAX_BODY_BYTES" in answer
    assert logged_rows(log_dsn) == before
    ok = requests.post(f"{url}/predict", json=WINE, headers=BEARER, timeout=10)
    assert ok.status_code == 200  # the service still answers


def test_the_default_limit_takes_a_10000_wine_batch(secured):
    url, _ = secured
    wines = [WINE] * 10_000
    assert len(json.dumps(wines)) < DEFAULT_MAX_BODY_BYTES
    response = requests.post(f"{url}/batch", json={"wines": wines}, headers=BEARER, timeout=120)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 10_000


def test_the_limit_is_a_setting(champion_storage, tmp_path):
    with serving(champion_storage, f"sqlite:///{tmp_path / 'log.db'}", max_body_bytes=2000) as url:
        assert requests.post(f"{url}/predict", json=WINE, timeout=10).status_code == 200
        response = requests.post(f"{url}/batch", json=[WINE] * 10, timeout=10)  # ~3.3 kB
        assert response.status_code == 413 and "2000 bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("", False), ("192.0.2.10", False),
     ("wine.example.com", False)],
)  # fmt: skip
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def wine_api_env(champion_storage, tmp_path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WINE_API_TOKEN"}
    env |= {
        "PLATFORM_STORAGE_ROOT": champion_storage.root,
        "PREDICTION_LOG_DSN": f"sqlite:///{tmp_path / 'log.db'}",
        "WINE_READINGS_STORE": f"sqlite:///{tmp_path / 'readings.db'}",
    }
    return env | ({"WINE_API_TOKEN": token} if token is not None else {})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "with no token"), ("", "with no token"), ("short-123456789", "shorter than 16"),
     ("change-me-to-a-long-random-token", "example token")],
)  # fmt: skip
def test_wine_api_refuses_a_non_loopback_bind_without_a_strong_token(
    champion_storage, tmp_path, host, token, reason
):
    port = free_port()
    done = subprocess.run(
        [str(BIN / "wine-api"), "--host", host, "--port", str(port)],
        env=wine_api_env(champion_storage, tmp_path, token),
        capture_output=True,
        text=True,
        timeout=30,  # refused at once; a server that started is killed and fails the test
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""  # refused before the banner: nothing served, nothing promised
    (line,) = done.stderr.splitlines()
    assert "WINE_API_TOKEN" in line and "--host 127.0.0.1" in line and host in line
    assert reason in line


def test_wine_api_binds_every_interface_with_a_token_and_send_batch_uses_it(
    champion_storage, tmp_path
):
    port = free_port()
    env = wine_api_env(champion_storage, tmp_path, TOKEN)
    proc = subprocess.Popen(
        [str(BIN / "wine-api"), "--host", "0.0.0.0", "--port", str(port), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        assert "00000000" in listening_addresses(port)  # 0.0.0.0: every interface
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        assert requests.post(f"{url}/predict", json=WINE, timeout=10).status_code == 401
        ok = requests.post(f"{url}/predict", json=WINE, headers=BEARER, timeout=10)
        assert ok.status_code == 200
        send = [str(BIN / "wine-send-batch"), "normal", "--rows", "20", "--url", url, "--seed", "1"]
        sent = subprocess.run(send, env=env, capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0 and '"answered": 20' in sent.stdout, sent.stderr
        no_token = {k: v for k, v in env.items() if k != "WINE_API_TOKEN"}
        refused = subprocess.run(send, env=no_token, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "401" in refused.stderr, refused.stderr
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "Traceback" not in output, output
