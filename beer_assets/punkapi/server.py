"""A local Punk API v2 server over a beer dump, with reproducible fault injection.

The public api.punkapi.com was decommissioned in 2023, so ingestion is developed and tested
against this stand-in. It follows the real API's routes, pagination (``per_page`` default 25,
max 80), filters and error payloads, and can misbehave on purpose (429 with ``Retry-After``,
500, truncated JSON, slow responses) so the client's retry logic is exercised over real HTTP.
Only the standard library is used so the server starts fast and adds no dependencies.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
import signal
import socketserver
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from beer_assets.punkapi.schema import DumpError, load_dump

__all__ = [
    "DEFAULT_PER_PAGE",
    "FAULT_KINDS",
    "MAX_PER_PAGE",
    "FaultPlan",
    "FaultRule",
    "PunkApiServer",
    "default_dump_path",
    "main",
    "serve",
]

logger = logging.getLogger(__name__)

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 80
API_PREFIX = "/v2"
#: Faults that replace or damage a response, in the order they take precedence.
FAULT_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "truncated")
_NUMBER_PARAMS = ("abv_gt", "abv_lt", "ibu_gt", "ibu_lt")
_BEERS_PARAMS = ("page", "per_page", "ids", "beer_name", *_NUMBER_PARAMS)


def default_dump_path() -> Path:
    """``$PLATFORM_DATA_DIR/punkapi/beers.json``, falling back to the repo's ``data/`` folder."""
    # The platform's one rule for the data folder; imported here (it loads Dagster) so that a
    # server given --dump starts on the standard library alone.
    from platform_core.settings import data_dir

    return data_dir() / "punkapi" / "beers.json"


# --------------------------------------------------------------------------- fault injection


@dataclass(frozen=True)
class FaultRule:
    """When one kind of fault fires, by request number (1-based) and/or at random.

    ``first_k`` and ``every_nth`` are deterministic (for exact assertions); ``probability``
    draws from the server's seeded RNG, so a given seed always yields the same fault sequence.
    """

    probability: float = 0.0
    every_nth: int = 0
    first_k: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        if self.every_nth < 0 or self.first_k < 0:
            raise ValueError("every_nth and first_k must be >= 0")

    def fires(self, request_number: int, draw: float) -> bool:
        """Decide for one request; ``draw`` is a uniform [0, 1) number from the seeded RNG."""
        return (
            request_number <= self.first_k
            or (self.every_nth > 0 and request_number % self.every_nth == 0)
            or draw < self.probability
        )


def _as_rule(spec: FaultRule | float) -> FaultRule:
    return spec if isinstance(spec, FaultRule) else FaultRule(probability=float(spec))


@dataclass(frozen=True)
class FaultPlan:
    """Which requests misbehave, and how. A bare float for a rule means a probability.

    ``slow`` picks the requests that sleep ``slow_s`` before responding (all of them by
    default, so ``FaultPlan(slow_s=0.5)`` slows every request). A request can be both slow
    and faulty; among the faults, ``rate_limit`` beats ``server_error`` beats ``truncated``.
    """

    rate_limit: FaultRule | float = field(default_factory=FaultRule)
    server_error: FaultRule | float = field(default_factory=FaultRule)
    truncated: FaultRule | float = field(default_factory=FaultRule)
    slow: FaultRule | float = 1.0
    slow_s: float = 0.0
    retry_after_s: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (*FAULT_KINDS, "slow"):
            object.__setattr__(self, name, _as_rule(getattr(self, name)))
        if self.slow_s < 0 or self.retry_after_s < 0:
            raise ValueError("slow_s and retry_after_s must be >= 0")

    def rule(self, kind: str) -> FaultRule:
        """The (normalised) rule for ``kind``: one of FAULT_KINDS or ``"slow"``."""
        rule = getattr(self, kind)
        assert isinstance(rule, FaultRule)
        return rule

    def decide(self, request_number: int, rng: random.Random) -> tuple[bool, str | None]:
        """Return ``(slow, fault_kind)`` for one request.

        One number is drawn per rule for every request, so the outcome of request N depends
        only on the seed and N, not on which faults fired before.
        """
        slow_draw = rng.random()
        draws = {kind: rng.random() for kind in FAULT_KINDS}
        slow = self.slow_s > 0 and self.rule("slow").fires(request_number, slow_draw)
        for kind in FAULT_KINDS:
            if self.rule(kind).fires(request_number, draws[kind]):
                return slow, kind
        return slow, None


# --------------------------------------------------------------------------- the API itself


@dataclass(frozen=True)
class Response:
    """A response before it is written, so routing stays independent of the socket."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _encode(payload: object) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _error(status: int, error: str, message: str, **extra: Any) -> Response:
    """Error payloads shaped like the real API's (Boom): statusCode, error, message."""
    payload = {"statusCode": status, "error": error, "message": message, **extra}
    return Response(status, _encode(payload))


class _InvalidParams(Exception):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _bad_request(problems: list[dict[str, str]]) -> Response:
    detail = "; ".join(f"{p['param']}: {p['msg']}" for p in problems)
    return _error(400, "Bad Request", f"Invalid query params: {detail}", data=problems)


def _problem(param: str, msg: str, value: str) -> dict[str, str]:
    return {"location": "query", "param": param, "msg": msg, "value": value}


def _parse_int(name: str, raw: str, *, minimum: int, maximum: int | None = None) -> int:
    bound = f" and at most {maximum}" if maximum is not None else ""
    msg = f"Must be a whole number of at least {minimum}{bound}"
    if not re.fullmatch(r"\d+", raw.strip()):
        raise _InvalidParams([_problem(name, msg, raw)])
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        raise _InvalidParams([_problem(name, msg, raw)])
    return value


def _parse_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise _InvalidParams([_problem(name, "Must be a number of at least 0", raw)])
    return value


def _parse_ids(raw: str) -> set[int]:
    parts = raw.split("|")
    if not all(re.fullmatch(r"\d+", part) and int(part) > 0 for part in parts):
        msg = "Must be positive whole numbers separated by '|', e.g. 1|2|3"
        raise _InvalidParams([_problem("ids", msg, raw)])
    return {int(part) for part in parts}


def _split_query(query: str, allowed: Sequence[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Flatten the query string; unknown or repeated parameters become problems by name."""
    values = parse_qs(query, keep_blank_values=True)
    known = {name: v[0] for name, v in values.items() if name in allowed and len(v) == 1}
    problems = [
        _problem(name, f"Unknown parameter; allowed: {', '.join(allowed) or 'none'}", v[-1])
        for name, v in values.items()
        if name not in allowed
    ]
    problems += [
        _problem(name, "Must be given at most once", v[-1])
        for name, v in values.items()
        if name in allowed and len(v) > 1
    ]
    return known, problems


def _no_params(query: str) -> None:
    _, problems = _split_query(query, ())
    if problems:
        raise _InvalidParams(problems)


@dataclass(frozen=True)
class _BeerQuery:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    ids: frozenset[int] | None = None
    beer_name: str | None = None
    abv_gt: float | None = None
    abv_lt: float | None = None
    ibu_gt: float | None = None
    ibu_lt: float | None = None

    def matches(self, beer: Mapping[str, Any]) -> bool:
        """Apply the filters; a null ``ibu`` never matches an ibu filter (as in the real API)."""
        if self.ids is not None and beer.get("id") not in self.ids:
            return False
        if self.beer_name is not None and self.beer_name not in str(beer.get("name", "")).lower():
            return False
        return _in_range(beer.get("abv"), self.abv_gt, self.abv_lt) and _in_range(
            beer.get("ibu"), self.ibu_gt, self.ibu_lt
        )


def _in_range(value: object, greater_than: float | None, less_than: float | None) -> bool:
    if greater_than is None and less_than is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (greater_than is None or value > greater_than) and (
        less_than is None or value < less_than
    )


def _parse_beer_query(query: str) -> _BeerQuery:
    """Validate every parameter, reporting all bad ones at once like the real API."""
    raw, problems = _split_query(query, _BEERS_PARAMS)
    parsed: dict[str, Any] = {}
    parsers = {
        "page": lambda v: _parse_int("page", v, minimum=1),
        "per_page": lambda v: _parse_int("per_page", v, minimum=1, maximum=MAX_PER_PAGE),
        "ids": lambda v: frozenset(_parse_ids(v)),
        "beer_name": _parse_beer_name,
        **{name: (lambda v, n=name: _parse_number(n, v)) for name in _NUMBER_PARAMS},
    }
    for name, value in raw.items():
        try:
            parsed[name] = parsers[name](value)
        except _InvalidParams as exc:
            problems.extend(exc.problems)
    if problems:
        raise _InvalidParams(problems)
    return _BeerQuery(**parsed)


def _parse_beer_name(raw: str) -> str:
    name = raw.replace("_", " ").strip().lower()
    if not name:
        msg = "Must be text and if using multiple words use underscores"
        raise _InvalidParams([_problem("beer_name", msg, raw)])
    return name


class PunkApiApp:
    """Routing, filtering and fault bookkeeping, shared by all handler threads."""

    def __init__(self, beers: Sequence[Mapping[str, Any]], faults: FaultPlan) -> None:
        self.beers = list(beers)
        self.faults = faults
        self._by_id = {beer["id"]: beer for beer in self.beers}
        self._fault_rng = random.Random(faults.seed)
        self._pick_rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self.request_count = 0
        self.fault_counts: Counter[str] = Counter()
        # (monotonic arrival time, request target) of recent requests, for tests and debugging.
        self.recent_requests: deque[tuple[float, str]] = deque(maxlen=10_000)

    def begin_request(self, target: str) -> tuple[bool, str | None]:
        """Number the request and decide its faults atomically, so seeds stay reproducible."""
        with self._lock:
            self.request_count += 1
            self.recent_requests.append((time.monotonic(), target))
            slow, kind = self.faults.decide(self.request_count, self._fault_rng)
            if slow:
                self.fault_counts["slow"] += 1
            if kind is not None:
                self.fault_counts[kind] += 1
            return slow, kind

    def respond(self, target: str) -> Response:
        """Route one GET request target (path plus query string)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        try:
            if path == f"{API_PREFIX}/beers":
                return self._beers(parts.query)
            if path == f"{API_PREFIX}/beers/random":
                _no_params(parts.query)
                return self._random()
            match = re.fullmatch(rf"{API_PREFIX}/beers/([^/]+)", path)
            if match:
                _no_params(parts.query)
                return self._beer(match.group(1))
        except _InvalidParams as exc:
            return _bad_request(exc.problems)
        return _error(404, "Not Found", f"No endpoint found that matches '{parts.path}'")

    def _beers(self, query: str) -> Response:
        params = _parse_beer_query(query)
        matching = [beer for beer in self.beers if params.matches(beer)]
        start = (params.page - 1) * params.per_page
        page = matching[start : start + params.per_page]
        headers = {
            "X-Total": str(len(matching)),
            "X-Per-Page": str(params.per_page),
            "X-Page": str(params.page),
            "X-Pages": str(max(1, math.ceil(len(matching) / params.per_page))),
        }
        return Response(200, _encode(page), headers)

    def _random(self) -> Response:
        with self._lock:
            beer = self._pick_rng.choice(self.beers) if self.beers else None
        return Response(200, _encode([beer] if beer is not None else []))

    def _beer(self, raw_id: str) -> Response:
        if not re.fullmatch(r"\d+", raw_id) or int(raw_id) < 1:
            msg = "beerId must be a number and greater than 0"
            problem = {"location": "params", "param": "id", "msg": msg, "value": raw_id}
            return _error(400, "Bad Request", f"Invalid params: id: {msg}", data=[problem])
        beer = self._by_id.get(int(raw_id))
        if beer is None:
            return _error(404, "Not Found", f"No beer found that matches the ID {raw_id}")
        return Response(200, _encode([beer]))

    def fault_response(self, kind: str, response: Response) -> Response:
        """Replace (429/500) or damage (truncate) the response for an injected fault."""
        if kind == "rate_limit":
            limited = _error(
                429,
                "Too Many Requests",
                "You have reached your limit on this ip address please wait an hour",
            )
            return Response(429, limited.body, {"Retry-After": str(self.faults.retry_after_s)})
        if kind == "server_error":
            return _error(500, "Internal Server Error", "Injected fault: please try again")
        if kind == "truncated":
            return Response(response.status, response.body[: len(response.body) // 2])
        raise ValueError(f"unknown fault kind {kind!r}")


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PunkApiLocal/1.0"
    # Idle keep-alive connections are dropped so handler threads do not pile up.
    timeout = 10
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        app = self.server.app
        slow, kind = app.begin_request(self.path)
        if slow:
            time.sleep(app.faults.slow_s)
        try:
            response = app.respond(self.path)
        except Exception:  # a bug must still answer, like a real server's 500
            logger.exception("unhandled error serving %s", self.path)
            response = _error(500, "Internal Server Error", "Unhandled server error")
        if kind is not None:
            response = app.fault_response(kind, response)
        self._send(response)

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired during an injected slow response).
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: PunkApiApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error handling request from %s", client_address, exc_info=True)


class PunkApiServer:
    """A running local Punk API; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(
        self,
        beers: Sequence[Mapping[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.app = PunkApiApp(beers, faults or FaultPlan())
        self._httpd = _HTTPServer((host, port), self.app)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """API root, e.g. ``http://127.0.0.1:8000/v2``; the client appends ``/beers``."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def request_count(self) -> int:
        return self.app.request_count

    @property
    def recent_requests(self) -> list[tuple[float, str]]:
        """``(time.monotonic() at arrival, path?query)`` of the last 10 000 requests."""
        return list(self.app.recent_requests)

    @property
    def fault_counts(self) -> Counter[str]:
        """How many times each fault kind (and ``slow``) was injected so far."""
        return self.app.fault_counts

    def start(self) -> PunkApiServer:
        """Serve from a daemon thread (short poll interval so :meth:`stop` is quick)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"punkapi-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> PunkApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    dump_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
) -> PunkApiServer:
    """Load ``dump_path`` and start serving it in a background thread (port 0 = any free)."""
    return PunkApiServer(load_dump(dump_path), host=host, port=port, faults=faults).start()


# --------------------------------------------------------------------------- console entry


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="punkapi-server", description="Serve a Punk API v2 beer dump over HTTP."
    )
    parser.add_argument("--dump", type=Path, default=None, help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--fault-rate-limit", type=_probability, default=0.0, metavar="P")
    parser.add_argument("--fault-500", type=_probability, default=0.0, metavar="P")
    parser.add_argument("--fault-truncated", type=_probability, default=0.0, metavar="P")
    parser.add_argument("--slow-ms", type=int, default=0, metavar="N")
    parser.add_argument("--retry-after", type=int, default=1, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry: serve until Ctrl-C or SIGTERM; exit 2 if the dump cannot be loaded."""
    args = _parse_args(argv)
    dump = args.dump if args.dump is not None else default_dump_path()
    faults = FaultPlan(
        rate_limit=args.fault_rate_limit,
        server_error=args.fault_500,
        truncated=args.fault_truncated,
        slow_s=max(args.slow_ms, 0) / 1000,
        retry_after_s=args.retry_after,
        seed=args.seed,
    )
    try:
        server = serve(dump, host=args.host, port=args.port, faults=faults)
    except (DumpError, OSError) as exc:
        print(f"punkapi-server: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # Signal handlers can only be installed from the main thread (not when embedded).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main_thread else None
    print(f"Serving {len(server.app.beers)} beers from {dump} at {server.url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
