"""Punk API v2 client: paginated crawl, random and by-id lookups, retries and rate limiting.

Every response body is kept byte-for-byte (``FetchResult.raw_pages``) because the platform
lands raw pages append-only before any transformation. Transient failures (connection errors,
timeouts, 429, 5xx, truncated JSON) are retried with capped, jittered exponential backoff,
honouring ``Retry-After``; a sliding-window limiter keeps the client within the public API's
rule of 3600 requests per hour per IP, paced evenly so it never bursts.
``file:///path/beers.json`` base URLs serve the same operations from a local dump.
"""

from __future__ import annotations

import collections
import email.utils
import itertools
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import url2pathname

import requests

from beer_assets.punkapi.schema import DumpError, load_dump

__all__ = [
    "MAX_PER_PAGE",
    "FetchResult",
    "Page",
    "PunkApiClient",
    "PunkApiError",
    "RateLimiter",
]

MAX_PER_PAGE = 80
#: Guard against a server that ignores ``page`` and never returns an empty page.
MAX_PAGES = 10_000
_RETRYABLE_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class PunkApiError(RuntimeError):
    """A request failed for good: retries exhausted, or a non-retryable status such as 404."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        attempts: int = 0,
        errors: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts
        self.errors = errors or []


@dataclass
class Page:
    """One successful response: its exact body, parsed items and what it took to get it."""

    number: int
    url: str
    raw: bytes
    records: list[object]
    requests: int = 1
    retries: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class FetchResult:
    """Everything one operation received; ``raw_pages`` are the response bodies as received."""

    raw_pages: list[bytes] = field(default_factory=list)
    records: list[object] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, page: Page, *, keep_body: bool = True) -> None:
        """Account for one response; the terminal empty page of a crawl is counted, not kept."""
        if keep_body:
            self.raw_pages.append(page.raw)
            self.records.extend(page.records)
        self.requests += page.requests
        self.retries += page.retries
        self.errors.extend(page.errors)


class RateLimiter:
    """Thread-safe limiter: at most ``max_requests`` in any ``window_s`` seconds, evenly paced.

    Requests are spaced at least ``window_s / max_requests`` apart (3600/h -> one per second,
    so no bursts), and a sliding log of grant times enforces the hard cap in every window even
    with float rounding. ``clock`` and ``sleep`` are injectable so tests need not wait an hour.
    Share one instance between clients that share an IP address.
    """

    def __init__(
        self,
        max_requests: int,
        window_s: float = 3600.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if max_requests < 1 or window_s <= 0:
            raise ValueError("max_requests must be >= 1 and window_s > 0")
        self.max_requests = max_requests
        self.window_s = window_s
        self.min_interval_s = window_s / max_requests
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._granted: collections.deque[float] = collections.deque()

    def acquire(self) -> float:
        """Block until a request may be sent; return the time slot granted (clock units)."""
        with self._lock:
            earliest = self._earliest_slot()
            now = self._clock()
            slot = max(now, earliest)
            self._granted.append(slot)
            while self._granted[0] <= now - self.window_s:
                self._granted.popleft()  # too old to constrain any future slot
        if slot > now:
            self._sleep(slot - now)
        return slot

    def _earliest_slot(self) -> float:
        """Earliest time allowed by the pacing and the window cap (lock held)."""
        if not self._granted:
            return -math.inf
        earliest = self._granted[-1] + self.min_interval_s
        if len(self._granted) >= self.max_requests:
            earliest = max(earliest, self._granted[-self.max_requests] + self.window_s)
        return earliest


@dataclass
class _Attempt:
    """Why one attempt failed, and how long the server asked us to wait (if it did)."""

    reason: str
    status: int | None = None
    retry_after_s: float | None = None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_message(body: bytes) -> str:
    """The ``message`` of an API error payload, else the start of the body."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"]
    return body[:200].decode("utf-8", "replace")


class PunkApiClient:
    """Client for the Punk API v2 (``http(s)://host/v2``) or a dump (``file:///…/beers.json``).

    Not meant to be shared between threads (``requests.Session``); share a ``RateLimiter``
    instead. The default limit follows the public API; pass ``max_requests_per_hour=None``
    for a local server or dump.
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_requests_per_hour: int | None = 3600,
        *,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 900.0,
        seed: int | None = None,
        rate_limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https", "file"):
            raise ValueError(f"base_url must be http(s):// or file://, got {base_url!r}")
        if max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("need max_retries >= 0, timeout_s > 0 and backoff_s >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._jitter = random.Random(seed)
        self._limiter = rate_limiter
        if rate_limiter is None and max_requests_per_hour is not None:
            self._limiter = RateLimiter(max_requests_per_hour, 3600.0, clock=clock, sleep=sleep)
        self._dump_path = Path(url2pathname(urlsplit(base_url).path))
        self._dump: list[dict[str, Any]] | None = None
        self._session: requests.Session | None = None
        if scheme != "file":
            self._session = session or requests.Session()
            self._session.headers.update({"Accept": "application/json"})

    # ------------------------------------------------------------------ public operations

    def iter_pages(
        self, per_page: int = MAX_PER_PAGE, *, include_empty: bool = False
    ) -> Iterator[Page]:
        """Yield pages of ``/beers`` from page 1 as they arrive, until the API returns an empty
        one; that terminal empty page is yielded too with ``include_empty`` (so a caller that
        lands pages one by one can count its request, as ``crawl`` does)."""
        for page in self._all_pages(per_page):
            if page.records or include_empty:
                yield page

    def crawl(self, per_page: int = MAX_PER_PAGE) -> FetchResult:
        """Fetch every beer; counts include the terminal empty page and all retries."""
        result = FetchResult()
        for page in self._all_pages(per_page):
            result.add(page, keep_body=bool(page.records))
        return result

    def random(self, n: int = 1) -> FetchResult:
        """``n`` calls of ``/beers/random`` (each returns a list of one beer)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        result = FetchResult()
        for _ in range(n):
            result.add(self._fetch("/beers/random"))
        return result

    def get(self, beer_id: int) -> FetchResult:
        """``/beers/{id}``; an unknown id raises PunkApiError with status 404 (not retried)."""
        if isinstance(beer_id, bool) or not isinstance(beer_id, int) or beer_id < 1:
            raise ValueError(f"beer_id must be a positive integer, got {beer_id!r}")
        result = FetchResult()
        result.add(self._fetch(f"/beers/{beer_id}"))
        return result

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> PunkApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ pagination

    def _all_pages(self, per_page: int) -> Iterator[Page]:
        if per_page < 1:
            raise ValueError(f"per_page must be >= 1, got {per_page}")
        per_page = min(per_page, MAX_PER_PAGE)
        for number in itertools.count(1):
            if number > MAX_PAGES:
                raise PunkApiError(
                    f"pagination of {self.base_url}/beers did not end after {MAX_PAGES} pages",
                    url=f"{self.base_url}/beers",
                )
            page = self._fetch("/beers", {"page": number, "per_page": per_page}, number=number)
            yield page
            if not page.records:
                return

    # ------------------------------------------------------------------ transport

    def _fetch(self, path: str, params: dict[str, int] | None = None, number: int = 1) -> Page:
        url = f"{self.base_url}{path}"
        if params:
            url = f"{url}?{urlencode(params)}"
        if self._session is None:
            return self._fetch_dump(url, path, params or {}, number)
        return self._fetch_http(url, number)

    def _fetch_http(self, url: str, number: int) -> Page:
        """GET with retries; returns the first good response or raises PunkApiError."""
        assert self._session is not None
        errors: list[str] = []
        for attempt in range(1, self.max_retries + 2):
            if self._limiter is not None:
                self._limiter.acquire()
            outcome = self._attempt(url, number, attempt, errors)
            if isinstance(outcome, Page):
                return outcome
            failure = outcome
            errors.append(f"GET {url}: {failure.reason}")
            if attempt > self.max_retries:
                raise PunkApiError(
                    f"GET {url} failed after {attempt} attempts; last status "
                    f"{failure.status if failure.status is not None else 'none'}: "
                    f"{failure.reason}",
                    url=url,
                    status=failure.status,
                    attempts=attempt,
                    errors=errors,
                )
            self._wait_before_retry(url, attempt, failure, errors)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, url: str, number: int, attempt: int, errors: list[str]) -> Page | _Attempt:
        """One GET: a Page on success, an _Attempt for retryable failures, else raise."""
        assert self._session is not None
        try:
            response = self._session.get(url, timeout=self.timeout_s)
        except _RETRYABLE_EXCEPTIONS as exc:
            return _Attempt(f"{type(exc).__name__}: {exc}")
        except requests.RequestException as exc:
            raise PunkApiError(f"GET {url} failed: {exc}", url=url, attempts=attempt) from exc
        status, body = response.status_code, response.content
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return _Attempt(f"HTTP {status}: {_error_message(body)}", status, retry_after)
        if not 200 <= status < 300:
            raise PunkApiError(
                f"GET {url} returned HTTP {status}: {_error_message(body)}",
                url=url,
                status=status,
                attempts=attempt,
                errors=errors,
            )
        try:
            records = json.loads(body)
        except ValueError as exc:  # e.g. a truncated body
            return _Attempt(f"invalid JSON in {len(body)}-byte body: {exc}", status)
        if not isinstance(records, list):
            raise PunkApiError(
                f"GET {url} returned JSON {type(records).__name__}, expected a list",
                url=url,
                status=status,
                attempts=attempt,
            )
        return Page(number, url, body, records, attempt, attempt - 1, list(errors))

    def _wait_before_retry(
        self, url: str, attempt: int, failure: _Attempt, errors: list[str]
    ) -> None:
        """Sleep for Retry-After if the server sent one, else jittered exponential backoff."""
        if failure.retry_after_s is None:
            self._sleep(self._backoff_delay(attempt))
            return
        if failure.retry_after_s > self.max_retry_after_s:
            raise PunkApiError(
                f"GET {url}: server asked to retry after {failure.retry_after_s:g} s, "
                f"more than max_retry_after_s={self.max_retry_after_s:g}; giving up",
                url=url,
                status=failure.status,
                attempts=attempt,
                errors=errors,
            )
        self._sleep(failure.retry_after_s)

    def _backoff_delay(self, retry_number: int) -> float:
        """Equal jitter: half of the capped exponential step, plus up to the other half."""
        step = min(self.max_backoff_s, self.backoff_s * 2 ** (retry_number - 1))
        return step / 2 + self._jitter.uniform(0, step / 2)

    # ------------------------------------------------------------------ file:// dumps

    def _load_dump(self) -> list[dict[str, Any]]:
        if self._dump is None:
            try:
                self._dump = load_dump(self._dump_path)
            except DumpError as exc:
                raise PunkApiError(str(exc), url=self.base_url) from exc
        return self._dump

    def _fetch_dump(self, url: str, path: str, params: dict[str, int], number: int) -> Page:
        """Emulate the API's endpoints over the dump, encoding bodies as the local server does."""
        beers = self._load_dump()
        if path == "/beers":
            start = (params["page"] - 1) * params["per_page"]
            records: list[Any] = beers[start : start + params["per_page"]]
        elif path == "/beers/random":
            records = [self._rng.choice(beers)] if beers else []
        else:
            beer_id = int(path.rsplit("/", 1)[1])
            records = [beer for beer in beers if beer["id"] == beer_id]
            if not records:
                raise PunkApiError(f"no beer with id {beer_id} in {url}", url=url, status=404)
        return Page(number, url, json.dumps(records).encode("utf-8"), records)
