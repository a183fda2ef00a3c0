"""The barrel readings store as a Dagster resource (WINE_READINGS_STORE)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from wine_assets.readings.store import ReadingsStore, open_store

#: Store URLs whose tables this process has already created or found. ``create()`` is
#: idempotent, but on DynamoDB it costs several control-plane calls (create attempts, describes),
#: and the sensor opens the store on every tick and each run twice: once per process is enough.
#: An in-memory SQLite store is a new database on each open, so it is never remembered.
_READY: set[str] = set()
_READY_LOCK = threading.Lock()


class ReadingsStoreResource(dg.ConfigurableResource):
    """``sqlite:///path.db`` (embedded default) or ``dynamodb://TABLE?region=…&endpoint=…``."""

    url: str = Field(description="Where the barrels' current readings live.")

    @contextmanager
    def open(self) -> Iterator[ReadingsStore]:
        store = open_store(self.url)
        try:
            if self.url not in _READY:
                store.create()
                if not self.url.endswith(":memory:"):
                    with _READY_LOCK:
                        _READY.add(self.url)
            yield store
        finally:
            store.close()
