"""Append-only raw landing of Punk API responses, and reading them back in order.

Each ingestion writes the response bodies exactly as received, before any parsing or
validation, under a folder partitioned by ingestion time::

    raw/punkapi/ingest_date=YYYY-MM-DD/ingested_at=YYYYMMDDTHHMMSSffffffZ-<mode>/page-0001.json

plus a ``manifest.json`` with request counts and checksums. Nothing there is ever replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from beer_assets.punkapi.client import FetchResult
from platform_core.storage import PlatformStorage

RAW_PREFIX = "raw/punkapi"


@dataclass(frozen=True)
class Landing:
    """One ingestion's folder and what went into it."""

    folder: str
    pages: int
    records: int
    size_bytes: int


@dataclass(frozen=True)
class RawPage:
    """One landed response body and where it came from."""

    landing: str  # the ingested_at=… folder name, which sorts by time
    page: str
    body: bytes


def landing_folder(mode: str, at: datetime) -> str:
    at = at.astimezone(UTC)
    stamp = at.strftime("%Y%m%dT%H%M%S%fZ")
    return f"{RAW_PREFIX}/ingest_date={at:%Y-%m-%d}/ingested_at={stamp}-{mode}"


def land(
    storage: PlatformStorage,
    result: FetchResult,
    *,
    mode: str,
    run_id: str,
    at: datetime | None = None,
) -> Landing:
    """Write every raw body of ``result`` append-only, then its manifest (written last)."""
    folder = landing_folder(mode, at or datetime.now(UTC))
    checksums, size = {}, 0
    for i, body in enumerate(result.raw_pages, start=1):
        written = storage.write_bytes(f"{folder}/page-{i:04d}.json", body, overwrite=False)
        checksums[f"page-{i:04d}.json"] = written.sha256
        size += written.size_bytes
    manifest = {
        "mode": mode,
        "run_id": run_id,
        "requests": result.requests,
        "retries": result.retries,
        "errors": result.errors,
        "records": len(result.records),
        "pages": checksums,
    }
    storage.write_bytes(
        f"{folder}/manifest.json", json.dumps(manifest, indent=1).encode(), overwrite=False
    )
    return Landing(
        folder=folder, pages=len(checksums), records=len(result.records), size_bytes=size
    )


def iter_raw_pages(storage: PlatformStorage) -> Iterator[RawPage]:
    """Every landed page, oldest ingestion first, so later versions of a beer win."""
    keys = [k for k in storage.list_keys(RAW_PREFIX) if k.rsplit("/", 1)[-1].startswith("page-")]
    for key in sorted(keys, key=lambda k: (k.split("/")[-2], k.split("/")[-1])):
        landing, page = key.split("/")[-2], key.split("/")[-1]
        yield RawPage(landing=landing, page=page, body=storage.read_bytes(key))
