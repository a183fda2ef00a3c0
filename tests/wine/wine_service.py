"""The prediction service for tests: a real uvicorn server on a free loopback port.

The server runs in a thread of the test process (so tests can stop databases under it and
read its log directly); ``wine-api`` itself is started as a process in test_monitoring_api.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from platform_core.model_store import ModelStoreResource
from platform_core.storage import PlatformStorage
from tests.conftest import free_port
from tests.polling import wait_for
from wine_assets.monitoring.page import EXAMPLE
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.readings.resource import ReadingsStoreResource

#: A valid wine for the service: the first UCI red row.
WINE: dict[str, Any] = {"wine_type": "red", **EXAMPLE}


@contextmanager
def running_service(
    storage: PlatformStorage,
    log_dsn: str,
    readings_url: str | None = None,
    check_every_s: float = 0.2,
    token: str | None = None,
) -> Iterator[str]:
    """``create_app`` served by uvicorn on 127.0.0.1 (``token``: required of requests);
    yields its base URL."""
    import uvicorn

    from wine_assets.monitoring.api import create_app

    app = create_app(
        ModelStoreResource(storage=storage),
        PredictionLogResource(dsn=log_dsn),
        ReadingsStoreResource(url=readings_url) if readings_url else None,
        check_every_s=check_every_s,
        token=token,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="wine-api", daemon=True)
    thread.start()
    wait_for(
        lambda: server.started or not thread.is_alive(),
        30,
        "the prediction service to start",
        every_s=0.02,
    )
    if not server.started:
        raise RuntimeError("the prediction service stopped before it started (see the log)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def copy_storage(storage: PlatformStorage, dest: Path) -> PlatformStorage:
    """A private copy of a local storage (for tests that change the registry)."""
    shutil.copytree(storage.root, dest)
    return PlatformStorage.local(str(dest))


def predict(url: str, wine: dict[str, Any] | None = None, **changes: Any) -> requests.Response:
    return requests.post(f"{url}/predict", json={**(wine or WINE), **changes}, timeout=30)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp{,6}) of TCP sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found
