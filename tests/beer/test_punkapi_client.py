"""The Punk API client over real loopback HTTP: crawls survive every injected fault."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from beer_assets.punkapi.client import (
    FetchResult,
    PunkApiClient,
    PunkApiError,
    RateLimiter,
    parse_retry_after,
)
from beer_assets.punkapi.server import FaultPlan, FaultRule, PunkApiServer

Beer = dict[str, Any]
ServerFactory = Callable[..., PunkApiServer]
ClientFactory = Callable[..., PunkApiClient]

# 325 beers at 80 per page: 5 full-or-partial pages plus the terminal empty page.
PAGES = 5
CRAWL_REQUESTS = PAGES + 1


def _assert_complete(result: FetchResult, beers: list[Beer]) -> None:
    """Nothing lost or duplicated, and the raw bodies are exactly what was parsed."""
    assert [r["id"] for r in result.records] == list(range(1, 326))  # type: ignore[index]
    assert result.records == beers
    assert len(result.raw_pages) == PAGES
    assert [item for raw in result.raw_pages for item in json.loads(raw)] == result.records


class FakeClock:
    """A clock that only moves when someone sleeps; safe to share between threads.

    ``switch_s`` > 0 makes every reading give up the CPU for real, so threads interleave
    inside the limiter's critical section and a missing lock shows up as a broken limit.
    """

    def __init__(self, switch_s: float = 0.0) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.switch_s = switch_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            now = self.now
        if self.switch_s:
            time.sleep(self.switch_s)
        return now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


# --------------------------------------------------------------------------- happy paths


def test_crawl_returns_all_beers(
    punkapi_server_factory: ServerFactory,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
) -> None:
    server = punkapi_server_factory()
    result = punkapi_client_factory(server.url).crawl()
    _assert_complete(result, punkapi_beers)
    assert (result.requests, result.retries, result.errors) == (CRAWL_REQUESTS, 0, [])
    assert server.request_count == CRAWL_REQUESTS


def test_iter_pages_caps_per_page_at_80(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory()
    pages = list(punkapi_client_factory(server.url).iter_pages(per_page=500))
    assert [page.number for page in pages] == [1, 2, 3, 4, 5]
    assert [len(page.records) for page in pages] == [80, 80, 80, 80, 5]
    assert all("per_page=80" in target for _, target in server.recent_requests)


def test_crawl_with_small_pages(
    punkapi_server: PunkApiServer, punkapi_client_factory: ClientFactory
) -> None:
    result = punkapi_client_factory(punkapi_server.url).crawl(per_page=25)
    assert len(result.raw_pages) == 13 and result.requests == 14
    assert [r["id"] for r in result.records] == list(range(1, 326))  # type: ignore[index]


def test_get_and_random(
    punkapi_server: PunkApiServer,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
) -> None:
    client = punkapi_client_factory(punkapi_server.url)
    got = client.get(42)
    assert got.records == [punkapi_beers[41]]
    assert json.loads(got.raw_pages[0]) == [punkapi_beers[41]]
    picks = client.random(3)
    assert picks.requests == 3 and len(picks.raw_pages) == 3
    assert all(beer in punkapi_beers for beer in picks.records)


def test_unknown_beer_raises_404_without_retrying(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory()
    with pytest.raises(PunkApiError, match="HTTP 404: No beer found") as caught:
        punkapi_client_factory(server.url).get(999)
    assert caught.value.status == 404
    assert server.request_count == 1


@pytest.mark.parametrize("bad", [0, -3, True, "7"])
def test_get_rejects_bad_ids(punkapi_client_factory: ClientFactory, bad: Any) -> None:
    with pytest.raises(ValueError):
        punkapi_client_factory("http://127.0.0.1:9/v2").get(bad)


def test_rejects_unsupported_base_url() -> None:
    with pytest.raises(ValueError, match="http"):
        PunkApiClient("ftp://example.com/v2")


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "faults", "client_options"),
    [
        ("server_error", FaultPlan(server_error=FaultRule(every_nth=2)), {}),
        ("truncated", FaultPlan(truncated=FaultRule(every_nth=2)), {}),
        # A slowed response takes far longer than the client waits, and the client waits
        # the factory's 2 s: plenty for a normal response on a loaded 2-core machine (a
        # 0.2 s timeout there made ordinary responses time out too). The server's sleeping
        # threads are daemons: they do not hold up its stop.
        ("slow", FaultPlan(slow=FaultRule(every_nth=3), slow_s=30.0), {}),
    ],
)
def test_crawl_survives_fault(
    punkapi_server_factory: ServerFactory,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
    kind: str,
    faults: FaultPlan,
    client_options: dict[str, Any],
) -> None:
    server = punkapi_server_factory(faults)
    result = punkapi_client_factory(server.url, **client_options).crawl()
    _assert_complete(result, punkapi_beers)
    injected = server.fault_counts[kind]
    assert injected >= 2
    assert result.retries == injected == len(result.errors)
    assert result.requests == CRAWL_REQUESTS + injected == server.request_count


def test_rate_limit_honours_retry_after(
    punkapi_server_factory: ServerFactory,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
) -> None:
    server = punkapi_server_factory(FaultPlan(rate_limit=FaultRule(first_k=1), retry_after_s=1))
    result = punkapi_client_factory(server.url, backoff_s=0.001).crawl()
    _assert_complete(result, punkapi_beers)
    assert result.retries == 1 and server.fault_counts["rate_limit"] == 1
    assert "HTTP 429" in result.errors[0]
    (first, _), (second, _) = server.recent_requests[:2]
    assert second - first >= 1.0, "the retry came before Retry-After elapsed"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header: str | None, seconds: float) -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_retry_after_beyond_the_cap_gives_up_at_once(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory(FaultPlan(rate_limit=FaultRule(first_k=1), retry_after_s=30))
    slept: list[float] = []  # the client's sleeps, recorded instead of slept
    client = punkapi_client_factory(server.url, max_retry_after_s=5, sleep=slept.append)
    with pytest.raises(PunkApiError, match="retry after 30 s") as caught:
        client.crawl()
    assert slept == []  # gave up at once: no wait at all, let alone 30 s
    assert caught.value.status == 429
    assert server.request_count == 1


def test_crawl_survives_mixed_random_faults(
    punkapi_server_factory: ServerFactory,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
) -> None:
    plan = FaultPlan(rate_limit=0.15, server_error=0.15, truncated=0.15, retry_after_s=0, seed=7)
    server = punkapi_server_factory(plan)
    result = punkapi_client_factory(server.url, max_retries=10).crawl(per_page=25)
    assert [r["id"] for r in result.records] == list(range(1, 326))  # type: ignore[index]
    assert len({kind for kind in server.fault_counts if server.fault_counts[kind]}) == 3
    assert result.retries == sum(server.fault_counts.values())
    assert result.requests == server.request_count == 14 + result.retries


def test_exhausted_retries_raise_naming_url_and_status(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory(FaultPlan(server_error=1.0))
    client = punkapi_client_factory(server.url, max_retries=2)
    with pytest.raises(PunkApiError) as caught:
        client.crawl()
    error = caught.value
    assert f"{server.url}/beers?page=1&per_page=80" in str(error)
    assert "after 3 attempts; last status 500" in str(error)
    assert (error.status, error.attempts, len(error.errors)) == (500, 3, 3)
    assert server.request_count == 3


def test_connection_errors_are_retried_then_raise(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory()
    url = server.url
    server.stop()
    with pytest.raises(PunkApiError, match="last status none: ConnectionError") as caught:
        punkapi_client_factory(url, max_retries=1).get(1)
    assert caught.value.attempts == 2


def test_backoff_is_exponential_jittered_and_capped(
    punkapi_server_factory: ServerFactory, punkapi_client_factory: ClientFactory
) -> None:
    server = punkapi_server_factory(FaultPlan(server_error=FaultRule(first_k=5)))
    clock = FakeClock()
    client = punkapi_client_factory(
        server.url, backoff_s=1.0, max_backoff_s=4.0, clock=clock, sleep=clock.sleep, seed=1
    )
    result = client.get(1)
    assert result.retries == 5
    steps = [1.0, 2.0, 4.0, 4.0, 4.0]  # doubling from backoff_s, capped at max_backoff_s
    assert len(clock.sleeps) == len(steps)
    for delay, step in zip(clock.sleeps, steps, strict=True):
        assert step / 2 <= delay <= step
    assert len(set(clock.sleeps[2:])) == 3, "jitter should vary the capped delays"


# --------------------------------------------------------------------------- file:// dumps


def test_file_crawl_equals_http_crawl(
    punkapi_dump_path: Path,
    punkapi_server: PunkApiServer,
    punkapi_client_factory: ClientFactory,
    punkapi_beers: list[Beer],
) -> None:
    over_http = punkapi_client_factory(punkapi_server.url).crawl()
    from_file = punkapi_client_factory(punkapi_dump_path.as_uri()).crawl()
    _assert_complete(from_file, punkapi_beers)
    assert from_file.records == over_http.records
    assert from_file.raw_pages == over_http.raw_pages
    assert from_file.requests == over_http.requests == CRAWL_REQUESTS


def test_file_pagination_and_get(
    punkapi_dump_path: Path, punkapi_client_factory: ClientFactory, punkapi_beers: list[Beer]
) -> None:
    client = punkapi_client_factory(punkapi_dump_path.as_uri())
    pages = list(client.iter_pages(per_page=100))
    assert [len(page.records) for page in pages] == [80, 80, 80, 80, 5]
    assert client.get(325).records == [punkapi_beers[324]]
    with pytest.raises(PunkApiError) as caught:
        client.get(326)
    assert caught.value.status == 404


def test_file_random_is_reproducible_with_a_seed(
    punkapi_dump_path: Path, punkapi_client_factory: ClientFactory, punkapi_beers: list[Beer]
) -> None:
    def picks(seed: int) -> list[int]:
        client = punkapi_client_factory(punkapi_dump_path.as_uri(), seed=seed)
        return [beer["id"] for beer in client.random(8).records]  # type: ignore[index]

    assert picks(3) == picks(3)
    assert picks(3) != picks(4)
    assert len(set(picks(3))) > 1
    assert set(picks(3)) <= {beer["id"] for beer in punkapi_beers}


def test_missing_dump_raises(tmp_path: Path, punkapi_client_factory: ClientFactory) -> None:
    client = punkapi_client_factory((tmp_path / "missing.json").as_uri())
    with pytest.raises(PunkApiError, match="beer dump not found"):
        client.crawl()


# --------------------------------------------------------------------------- rate limiting


def _max_in_any_window(slots: list[float], window_s: float) -> int:
    """Most grants inside any half-open window [t, t + window_s)."""
    ordered = sorted(slots)
    most, start = 0, 0
    for end, slot in enumerate(ordered):
        while ordered[start] + window_s <= slot:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_rate_limiter_never_exceeds_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, window_s=60.0, clock=clock, sleep=clock.sleep)
    slots = [limiter.acquire() for _ in range(100)]
    assert _max_in_any_window(slots, 60.0) == 10
    assert clock.now == pytest.approx(99 * 6.0), "should pace one request per 6 s"
    assert min(b - a for a, b in zip(slots, slots[1:], strict=False)) == pytest.approx(6.0)


def test_rate_limiter_at_public_rate_has_no_bursts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3600, window_s=3600.0, clock=clock, sleep=clock.sleep)
    slots = [limiter.acquire() for _ in range(7300)]
    assert _max_in_any_window(slots, 3600.0) == 3600
    assert _max_in_any_window(slots, 1.0) == 1


def test_rate_limiter_does_not_wait_after_idle_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, window_s=10.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.sleep(60)
    clock.sleeps.clear()
    assert limiter.acquire() == 60.0
    assert clock.sleeps == []


def test_rate_limiter_is_thread_safe() -> None:
    clock = FakeClock(switch_s=0.0005)
    limiter = RateLimiter(5, window_s=1.0, clock=clock, sleep=clock.sleep)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            slot = limiter.acquire()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, inside the limiter's critical section too
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(slots) == 200 and len(set(slots)) == 200
    assert _max_in_any_window(slots, 1.0) == 5


def test_client_requests_go_through_the_limiter(
    punkapi_server_factory: ServerFactory, punkapi_beers: list[Beer]
) -> None:
    server = punkapi_server_factory()
    clock = FakeClock()
    client = PunkApiClient(server.url, max_requests_per_hour=2, clock=clock, sleep=clock.sleep)
    with client:
        result = client.crawl()
    _assert_complete(result, punkapi_beers)
    assert clock.sleeps == [1800.0] * (CRAWL_REQUESTS - 1)
