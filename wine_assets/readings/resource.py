"""The barrel readings store as a Dagster resource (WINE_READINGS_STORE)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from wine_assets.readings.store import ReadingsStore, open_store


class ReadingsStoreResource(dg.ConfigurableResource):
    """``sqlite:///path.db`` (embedded default) or ``dynamodb://TABLE?region=…&endpoint=…``."""

    url: str = Field(description="Where the barrels' current readings live.")

    @contextmanager
    def open(self) -> Iterator[ReadingsStore]:
        store = open_store(self.url)
        try:
            store.create()
            yield store
        finally:
            store.close()
