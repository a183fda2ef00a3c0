"""Fixtures shared by every test folder: data location, real servers on loopback, storage.

Servers are real processes (moto's standalone server for S3/DynamoDB) so the boto3, s3fs and
dagster-aws code paths run exactly as against AWS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from platform_core import settings
from platform_core.storage import PlatformStorage
from tests.pg_server import PostgresServer
from tests.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers (any status: the server is up) or fail with the last
    error."""
    wait_for(lambda: requests.get(url, timeout=1).status_code, timeout_s, f"{url} to answer", 0.1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """PLATFORM_DATA_DIR, checked: tests fail (never skip) when the datasets are missing."""
    path = settings.data_dir()
    if not (path / "punkapi" / "beers.json").is_file():
        pytest.fail(
            f"datasets not found under {path}: set PLATFORM_DATA_DIR (make data fills ./data)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone server (S3, DynamoDB, …) as a separate process on loopback."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    try:
        wait_http(url + "/moto-api/")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (installed binaries, loopback, free port)."""
    server = PostgresServer()
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server: ``postgresql://user:pw@127.0.0.1:port/db``."""
    return postgres_server.create_database()


def s3_storage(endpoint: str, bucket: str | None = None) -> PlatformStorage:
    """PlatformStorage on a fresh bucket of the moto server."""
    from dagster_aws.s3 import S3Resource

    bucket = bucket or f"platform-{uuid.uuid4().hex[:10]}"
    storage = PlatformStorage(
        root=f"s3://{bucket}/platform",
        s3=S3Resource(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ),
    )
    storage.ensure_bucket()
    return storage


@pytest.fixture
def local_storage(tmp_path: Path) -> PlatformStorage:
    return PlatformStorage.local(str(tmp_path / "storage"))


@pytest.fixture(params=["local", "s3"])
def any_storage(request, tmp_path: Path) -> PlatformStorage:
    """The same tests on the embedded local folder and on S3 (moto server)."""
    if request.param == "local":
        return PlatformStorage.local(str(tmp_path / "storage"))
    return s3_storage(request.getfixturevalue("moto_endpoint"))
