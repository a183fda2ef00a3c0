"""The prediction log on a real PostgreSQL server: answered ⇔ logged, even when it goes away."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.pg_server import PostgresServer
from tests.polling import wait_for
from tests.wine.wine_service import WINE, running_service
from wine_assets.features import FEATURES
from wine_assets.monitoring.prediction_log import (
    LoggedPrediction,
    LogUnavailableError,
    open_log,
)

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def logged_counts(dsn: str) -> Counter:
    """Rows per request id in the log."""
    with open_log(dsn) as log:
        return Counter(log.window(*EVER)["request_id"])


def send(url: str, i: int) -> tuple[int, str | None, int]:
    """One request (every fifth a batch of 3): status, request id, wines sent."""
    wines = [{**WINE, "alcohol": 9.0 + (i % 40) / 10}] * (3 if i % 5 == 0 else 1)
    try:
        if len(wines) == 1:
            r = requests.post(f"{url}/predict", json=wines[0], timeout=30)
        else:
            r = requests.post(f"{url}/batch", json=wines, timeout=30)
    except requests.RequestException:
        return -1, None, len(wines)
    return r.status_code, r.json().get("request_id") if r.status_code == 200 else None, len(wines)


def test_concurrent_requests_are_each_logged_once_in_postgres(champion_storage, postgres_dsn):
    with running_service(champion_storage, postgres_dsn) as url, ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: send(url, i), range(300)))
    answered = {rid: n for status, rid, n in results if status == 200}
    assert len(answered) == 300
    assert logged_counts(postgres_dsn) == Counter(answered)


def test_requests_fail_while_the_log_database_is_down_and_none_is_answered_unlogged(
    champion_storage,
):
    """Clients keep sending while PostgreSQL stops and comes back: every 200 is in the log,
    every request during the outage fails (503), and the service recovers by itself."""
    server = PostgresServer()  # not the session's server: this one is stopped
    server.init()
    server.start()
    try:
        dsn = server.create_database("predictions")
        results: list[tuple[int, str | None, int, str]] = []  # status, id, wines, phase
        stop = threading.Event()

        def client(worker: int) -> None:
            i = worker
            while not stop.is_set():
                results.append((*send(url, i), state))  # list.append is atomic
                i += 4

        def wait_answered(start: int, when: str) -> None:
            """Until 50 of the requests from ``start`` on were answered (200)."""
            wait_for(
                lambda: sum(s == 200 for s, _, _, _ in results[start:]),
                60,
                f"50 answers {when}",
                every_s=0.02,
                until=lambda answered: answered >= 50,
            )

        with running_service(champion_storage, dsn) as url:
            state = "up"
            threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
            for t in threads:
                t.start()
            wait_answered(0, "before the outage")
            server.stop("fast")  # mid-traffic: open transactions are cut off
            state = "down"
            down_from = len(results)
            wait_for(
                lambda: len(results) - down_from,
                60,
                "20 requests during the outage",
                every_s=0.02,
                until=lambda sent: sent >= 20,
            )
            state = "restarting"
            server.start()
            wait_answered(down_from + 20, "after the restart")
            stop.set()
            for t in threads:
                t.join(timeout=60)
        statuses = Counter(s for s, _, _, _ in results)
        during_outage = Counter(s for s, _, _, p in results if p == "down")
        answered = {rid: n for s, rid, n, _ in results if s == 200}
        assert set(statuses) == {200, 503}, statuses  # failures are clean 503s, no 500s
        assert during_outage[503] >= 15, during_outage  # the outage was really hit
        assert logged_counts(dsn) == Counter(answered)  # answered ⇔ logged, row for row
    finally:
        server.cleanup()


def _row(request_id: str, item: int, at: datetime, **changes: float) -> LoggedPrediction:
    features = {**{f: float(WINE[f]) for f in FEATURES}, **changes}
    return LoggedPrediction(
        request_id=request_id,
        item=item,
        endpoint="batch",
        barrel_id=None,
        wine_type="white",
        features=tuple(features[f] for f in FEATURES),
        predicted_quality=6.25,
        good=True,
        model_version=3,
        logged_at=at,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_both_backends_keep_the_same_rows_positions_and_windows(backend, tmp_path, request):
    dsn = (
        f"sqlite:///{tmp_path / 'log.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_dsn")
    )
    t0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    with open_log(dsn) as log:
        log.create()
        log.create()  # idempotent
        assert log.max_position() == 0 and log.since(0).count == 0
        log.write([_row("a", 0, t0), _row("a", 1, t0 + timedelta(minutes=59), ph=3.0)])
        log.write([_row("b", 0, t0 + timedelta(hours=1))])
        with pytest.raises(LogUnavailableError):  # (request_id, item) is unique: all or nothing
            log.write([_row("c", 0, t0), _row("a", 0, t0)])
        assert log.count() == 3
        new = log.since(1)
        assert (new.count, new.max_position) == (2, log.max_position())
        assert new.oldest == t0 + timedelta(minutes=59) and new.newest == t0 + timedelta(hours=1)
        settled = log.since(0, before=t0 + timedelta(minutes=59))  # strictly before
        assert (settled.count, settled.max_position, settled.newest) == (1, 1, t0)
        window = log.window(t0, t0 + timedelta(hours=1))
        assert log.hours_since(0, log.max_position()) == [t0, t0 + timedelta(hours=1)]
        assert log.hours_since(2, log.max_position()) == [t0 + timedelta(hours=1)]
    assert list(window["request_id"]) == ["a", "a"] and list(window["ph"]) == [WINE["ph"], 3.0]
    assert window["logged_at"].iloc[1] == t0 + timedelta(minutes=59)
    assert window["good"].dtype == bool and set(window["model_version"]) == {3}
