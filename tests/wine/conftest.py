"""Fixtures for the wine tests: readings stores on both backends and valid reading payloads.

``store`` is parametrised over SQLite (a temporary file) and DynamoDB (a fresh table on the
session's moto server), so every behaviour test proves both backends agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wine_assets.monitoring.page import EXAMPLE
from wine_assets.readings.store import ReadingsStore, open_store

#: A real UCI red-wine row (the first line of winequality-red.csv) plus a temperature.
BASE_READING: dict[str, Any] = {
    "barrel_id": "barrel-0001",
    "wine_type": "red",
    **EXAMPLE,
    "temperature_c": 14.0,
}

ReadingFactory = Callable[..., dict[str, Any]]
#: Pass as a field's value to ``reading()`` to leave the field out.
DROP = object()


def reading(barrel_id: str = "barrel-0001", **changes: Any) -> dict[str, Any]:
    """A valid reading payload with some fields changed (or removed with ``field=DROP``)."""
    data = {**BASE_READING, "barrel_id": barrel_id, **changes}
    return {k: v for k, v in data.items() if v is not DROP}


@pytest.fixture
def make_reading() -> ReadingFactory:
    return reading


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'readings.db'}"


@pytest.fixture
def dynamodb_url(moto_endpoint: str) -> str:
    """A table name no other test uses, on the shared moto server."""
    return f"dynamodb://readings-{uuid.uuid4().hex[:10]}?region=us-east-1&endpoint={moto_endpoint}"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[ReadingsStore]:
    """A created, empty store on each backend."""
    s = open_store(store_url)
    s.create()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def champion_storage(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """Local storage holding the training table and a champion wine model (v1).

    The candidate spec fitted once on the UCI rows and promoted directly: tests that need *a*
    champion (the prediction service, drift reports) skip the graph's cross-validation.
    """
    from platform_core.storage import PlatformStorage
    from wine_assets.features import read_uci
    from wine_assets.quality.assets import register_champion

    storage = PlatformStorage.local(str(tmp_path_factory.mktemp("champion") / "storage"))
    uci = read_uci(data_dir)
    register_champion(storage, uci, "test fixture")
    storage.write_parquet("tables/wine_training_data.parquet", uci)
    return storage
