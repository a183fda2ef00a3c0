"""Append-only raw landing of Punk API responses, and reading them back in order.

Each ingestion writes the response bodies exactly as received, before any parsing or
validation, under a folder partitioned by ingestion time::

    raw/punkapi/ingest_date=YYYY-MM-DD/ingested_at=YYYYMMDDTHHMMSSffffffZ-<mode>/page-0001.json

plus a ``manifest.json`` with request counts and checksums. Nothing there is ever replaced.

Pages are landed one by one as they arrive (``LandingWriter``), so a request that fails for
good on page N (rate limit exhausted, server error, truncated body after retries) loses
nothing already fetched: pages 1..N-1 stay on storage. The manifest is written last. On
success it says ``"complete": true``; on failure ``"complete": false`` with the pages landed
so far and the error, and the error is raised again. A folder *without* a manifest is a
landing still being written or one whose process died mid-write; readers skip it (see
``list_landings``). Manifests written before the ``complete`` field existed were only ever
written after a successful fetch, so a missing field means complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from beer_assets.punkapi.client import FetchResult, Page, PunkApiError
from platform_core.storage import PlatformStorage

RAW_PREFIX = "raw/punkapi"
MANIFEST = "manifest.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Landing:
    """One ingestion's folder and what went into it."""

    folder: str
    pages: int
    records: int
    size_bytes: int
    requests: int = 0
    retries: int = 0
    complete: bool = True


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


# ---------------------------------------------------------------------------- writing


@dataclass
class LandingWriter:
    """Lands one ingestion page by page as responses arrive; the manifest is written last.

    ``add`` writes each body at once (append-only, ``page-NNNN.json``); ``finish`` writes the
    manifest of a complete landing, ``abort`` that of an incomplete one (pages landed so far,
    and the error). ``land_all`` does the three for an iterable of responses.
    """

    storage: PlatformStorage
    mode: str
    run_id: str
    at: datetime | None = None
    folder: str = field(init=False)
    checksums: dict[str, str] = field(init=False, default_factory=dict)
    records: int = field(init=False, default=0)
    requests: int = field(init=False, default=0)
    retries: int = field(init=False, default=0)
    size_bytes: int = field(init=False, default=0)
    errors: list[str] = field(init=False, default_factory=list)
    _closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.at = self.at or datetime.now(UTC)
        self.folder = landing_folder(self.mode, self.at)

    def add(self, fetched: Page | FetchResult) -> None:
        """Land the body (bodies) of one response at once and account for its requests.

        A ``Page`` without records (a crawl's terminal empty page) is counted, not landed,
        as ``FetchResult.add`` does; every body of a ``FetchResult`` is landed.
        """
        if self._closed:
            raise RuntimeError(f"landing {self.folder} already has its manifest")
        if isinstance(fetched, Page):
            bodies = [fetched.raw] if fetched.records else []
            records = len(fetched.records)
        else:
            bodies, records = fetched.raw_pages, len(fetched.records)
        for body in bodies:
            name = f"page-{len(self.checksums) + 1:04d}.json"
            written = self.storage.write_bytes(f"{self.folder}/{name}", body, overwrite=False)
            self.checksums[name] = written.sha256
            self.size_bytes += written.size_bytes
        self.records += records
        self.requests += fetched.requests
        self.retries += fetched.retries
        self.errors.extend(fetched.errors)

    def finish(self) -> Landing:
        """Write the manifest of a complete landing (``"complete": true``)."""
        self._write_manifest({"complete": True})
        return self._landing(complete=True)

    def abort(self, error: BaseException) -> Landing:
        """Keep the pages landed so far; write a manifest saying the landing is incomplete.

        The requests spent on the failed response (``PunkApiError.attempts``) are counted too,
        since they count against the API's rate limit. Never raises: if the manifest cannot
        be written either, a note saying so is added to ``error`` (the folder then has no
        manifest, and readers skip it).
        """
        info: dict[str, object] = {"type": type(error).__name__, "message": str(error)}
        if isinstance(error, PunkApiError):
            info.update(url=error.url, status=error.status, attempts=error.attempts)
            self.requests += error.attempts
            self.retries += max(error.attempts - 1, 0)
            self.errors.extend(error.errors)
        try:
            self._write_manifest({"complete": False, "error": info})
        except Exception as exc:  # keep the original error the one that is raised
            error.add_note(f"writing the incomplete manifest of {self.folder} failed too: {exc}")
        return self._landing(complete=False)

    def land_all(self, responses: Iterable[Page | FetchResult]) -> Landing:
        """Land each response as it arrives, then the manifest; on any error mark the landing
        incomplete (``abort``) and raise the error again, with a note naming the folder."""
        try:
            for fetched in responses:
                self.add(fetched)
        except BaseException as error:  # also a run being terminated: keep what was landed
            landing = self.abort(error)
            error.add_note(
                f"kept {landing.pages} page(s), {landing.records} records already fetched in "
                f"{landing.folder}; its manifest.json says complete: false"
            )
            raise
        return self.finish()

    def _write_manifest(self, status: dict[str, object]) -> None:
        manifest = {
            **status,
            "mode": self.mode,
            "run_id": self.run_id,
            "requests": self.requests,
            "retries": self.retries,
            "errors": self.errors,
            "records": self.records,
            "pages": self.checksums,
        }
        self._closed = True
        self.storage.write_bytes(
            f"{self.folder}/{MANIFEST}", json.dumps(manifest, indent=1).encode(), overwrite=False
        )

    def _landing(self, *, complete: bool) -> Landing:
        return Landing(
            folder=self.folder,
            pages=len(self.checksums),
            records=self.records,
            size_bytes=self.size_bytes,
            requests=self.requests,
            retries=self.retries,
            complete=complete,
        )


def land(
    storage: PlatformStorage,
    result: FetchResult,
    *,
    mode: str,
    run_id: str,
    at: datetime | None = None,
) -> Landing:
    """Write every raw body of an already fetched ``result`` append-only, then its manifest."""
    return LandingWriter(storage, mode, run_id, at).land_all([result])


# ---------------------------------------------------------------------------- reading

LandingStatus = Literal["complete", "incomplete", "no manifest", "unreadable manifest"]


@dataclass(frozen=True)
class LandedFolder:
    """One landing folder as found on storage, and which of its pages readers use."""

    folder: str  # full key prefix
    status: LandingStatus
    pages: tuple[str, ...] = ()  # keys of the pages to read, in page order
    missing: tuple[str, ...] = ()  # pages the manifest lists that are not on storage
    unlisted: tuple[str, ...] = ()  # page files on storage the manifest does not list
    error: str | None = None  # for an incomplete landing: what stopped it

    @property
    def name(self) -> str:
        """The ``ingested_at=…`` folder name, which sorts by ingestion time."""
        return self.folder.rsplit("/", 1)[-1]

    @property
    def readable(self) -> bool:
        return self.status in ("complete", "incomplete")


def list_landings(storage: PlatformStorage) -> list[LandedFolder]:
    """Every landing folder under ``raw/punkapi``, oldest ingestion first.

    Which pages readers use:

    * a landing with a manifest, complete or not: the pages its manifest lists (that are on
      storage). An incomplete landing's pages are real API responses, landed before a later
      page failed, and cleaning takes the union of all landings with the latest version of
      each beer winning, so they can only add beers or bring them up to date; an earlier
      complete landing still supplies every beer the failed crawl did not reach, so the
      cleaned table's row count (``row_count_not_falling``) cannot drop because of them.
    * a landing *without* a manifest (``status="no manifest"``), or with one that is not
      JSON: none. It is a landing still being written by a running ingestion, or one whose
      process was killed mid-write; reading it would treat a partial landing as complete
      (and race a running crawl). Readers skip it and report it (``iter_raw_pages`` logs a
      warning; the cleaning asset also records it in its metadata).
    """
    by_folder: dict[str, set[str]] = {}
    for key in storage.list_keys(RAW_PREFIX):
        folder, name = key.rsplit("/", 1)
        by_folder.setdefault(folder, set()).add(name)
    found = []
    for folder in sorted(by_folder, key=lambda f: f.rsplit("/", 1)[-1]):
        names = by_folder[folder]
        on_storage = sorted(n for n in names if n.startswith("page-"))
        if MANIFEST not in names:
            found.append(LandedFolder(folder, "no manifest", unlisted=tuple(on_storage)))
            continue
        try:
            manifest = json.loads(storage.read_bytes(f"{folder}/{MANIFEST}"))
            listed = sorted(manifest["pages"])
        except (ValueError, KeyError, TypeError) as exc:
            found.append(
                LandedFolder(
                    folder,
                    "unreadable manifest",
                    unlisted=tuple(on_storage),
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        complete = manifest.get("complete", True) is not False
        error = manifest.get("error")
        found.append(
            LandedFolder(
                folder,
                "complete" if complete else "incomplete",
                pages=tuple(f"{folder}/{n}" for n in listed if n in names),
                missing=tuple(n for n in listed if n not in names),
                unlisted=tuple(n for n in on_storage if n not in manifest["pages"]),
                error=None if complete else json.dumps(error),
            )
        )
    return found


def iter_raw_pages(
    storage: PlatformStorage, landings: list[LandedFolder] | None = None
) -> Iterator[RawPage]:
    """Every usable landed page, oldest ingestion first, so later versions of a beer win.

    ``landings`` defaults to ``list_landings(storage)``. Pages of complete and incomplete
    (manifested) landings are read; landings without a readable manifest are skipped with a
    warning; see ``list_landings`` for why.
    """
    if landings is None:
        landings = list_landings(storage)
    for landing in landings:
        if not landing.readable:
            log.warning("skipping landing %s: %s", landing.folder, landing.status)
            continue
        for key in landing.pages:
            yield RawPage(
                landing=landing.name, page=key.rsplit("/", 1)[-1], body=storage.read_bytes(key)
            )
