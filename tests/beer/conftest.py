"""Shared fixtures for the beer tests: the Punk API dump and local Punk API servers.

The dump lives outside the repo at ``$PLATFORM_DATA_DIR/punkapi/beers.json`` (default: the
repo's ``data/`` folder). A missing dump fails the tests loudly instead of skipping them, so
a misconfigured CI run cannot pass by testing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beer_assets.punkapi.client import PunkApiClient
from beer_assets.punkapi.server import FaultPlan, PunkApiServer, serve

PUNKAPI_BEER_COUNT = 325


@pytest.fixture(scope="session")
def punkapi_dump_path(data_dir: Path) -> Path:
    """Path of the 325-beer Punk API dump; fails (never skips) when it is missing."""
    path = data_dir / "punkapi" / "beers.json"
    if not path.is_file():
        pytest.fail(
            f"Punk API dump not found at {path}. Set PLATFORM_DATA_DIR to the folder holding "
            "punkapi/beers.json (e.g. PLATFORM_DATA_DIR=/work/shared/data).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def punkapi_beers(punkapi_dump_path: Path) -> list[dict[str, Any]]:
    """The dump's records, parsed independently of the code under test."""
    beers = json.loads(punkapi_dump_path.read_text(encoding="utf-8"))
    assert len(beers) == PUNKAPI_BEER_COUNT, f"unexpected dump size {len(beers)}"
    return beers


@pytest.fixture(scope="session")
def punkapi_server(punkapi_dump_path: Path) -> Iterator[PunkApiServer]:
    """A fault-free server shared by read-only tests (do not assert on its request counts)."""
    with serve(punkapi_dump_path) as server:
        yield server


@pytest.fixture
def punkapi_server_factory(
    punkapi_dump_path: Path,
) -> Iterator[Callable[..., PunkApiServer]]:
    """Start servers with a given FaultPlan on free loopback ports; all stop at teardown."""
    started: list[PunkApiServer] = []

    def start(faults: FaultPlan | None = None) -> PunkApiServer:
        server = serve(punkapi_dump_path, host="127.0.0.1", port=0, faults=faults)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def punkapi_client_factory() -> Iterator[Callable[..., PunkApiClient]]:
    """Clients tuned for a local server: no rate limit, tiny backoff, short timeout."""
    clients: list[PunkApiClient] = []

    def make(base_url: str, **overrides: Any) -> PunkApiClient:
        options: dict[str, Any] = {
            "timeout_s": 2.0,
            "max_retries": 5,
            "backoff_s": 0.01,
            "max_requests_per_hour": None,
        }
        options.update(overrides)
        client = PunkApiClient(base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
