"""``wine-api``: the prediction service over the champion wine model (system B's API).

    wine-api [--host 127.0.0.1] [--port 8000] [--workers 1]

``POST /predict`` (one wine), ``POST /batch`` (many), ``GET /barrels/{id}/quality`` (the
barrel's current reading from the readings store), ``GET /health``, ``GET /`` (a form for
people), ``GET /reports`` (the drift reports in platform storage, newest first) and
``GET /reports/{hour}/{positions}`` (one, self-contained HTML: the Dagster UI links there),
``/openapi.json``, ``/docs`` and ``/redoc`` (Swagger UI and ReDoc served from the installed
``fastapi-offline`` package, not a CDN: they work without internet). Every answer is in the
prediction log before it is sent (see ``service``). Bodies and paths are the readings' pydantic
models (``readings.schema``, generated from the physical bounds): FastAPI answers a bad one
with its 422 list, one entry per bad field, and writes the OpenAPI schema from them. It prints
where it serves, and logs each request (uvicorn's access log, INFO).

Security defaults: with ``WINE_API_TOKEN`` set, every route but ``GET /health`` needs
``Authorization: Bearer <token>`` (programs) or HTTP Basic with the token as password
(browsers: the page, the docs and the report links prompt once), else a 401 with
``WWW-Authenticate``: a FastAPI security dependency, so the schema declares it. ``wine-api``
refuses to bind anything but loopback without a strong token (16+ characters, not the example's
placeholder; exit 2). A body larger than ``WINE_API_MAX_BODY_BYTES`` (default 8 MiB: a 10 000-wine
batch is ~2.6 MB) gets a 413, from its Content-Length or, chunked, once the bytes read pass it.
"""

import argparse
import html
import ipaddress
import json
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from typing import Annotated, Any

import dagster as dg
from fastapi import APIRouter, FastAPI, Path, Request, Security, security
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.model_store import ModelStoreResource
from platform_core.storage import PlatformStorage
from wine_assets.monitoring.page import PAGE_HTML
from wine_assets.monitoring.prediction_log import (
    LogUnavailableError,
    PredictionLogResource,
    open_log,
)
from wine_assets.monitoring.reports import (
    REPORT_HOUR_PATTERN,
    REPORT_POSITIONS_PATTERN,
    REPORT_PREFIX,
    summary_keys,
)
from wine_assets.monitoring.service import (
    ChampionCache,
    NoChampionError,
    PredictionBatcher,
    new_request_id,
)
from wine_assets.quality.model import GOOD_THRESHOLD
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.schema import BarrelId, Wine, WineType
from wine_assets.readings.store import open_store

#: Most wines ``POST /batch`` takes in one request.
MAX_BATCH = 10_000
Wines = Annotated[list[Wine], Field(min_length=1, max_length=MAX_BATCH)]  # type: ignore[valid-type]


class WineBatch(BaseModel):
    """A batch as an object: {"wines": [...]}."""

    model_config = ConfigDict(extra="forbid")
    wines: Wines


#: A batch: a JSON array of wines or ``{"wines": [...]}`` (the JSON type picks the form, so a
#: bad wine is reported once, under the form sent).
Batch = Annotated[
    Annotated[Wines, Tag("array")] | Annotated[WineBatch, Tag("object")],
    Discriminator(lambda body: "array" if isinstance(body, list) else "object"),
]


class Score(BaseModel):
    """One wine's answer."""

    predicted_quality: float = Field(description="0-10, not rounded")
    good: bool = Field(description=f"predicted_quality >= {GOOD_THRESHOLD}")
    p_good: float | None = Field(
        description=f"calibrated probability that the wine's quality is >= {GOOD_THRESHOLD} "
        "(per wine type, isotonic on out-of-fold predictions); null for a model without "
        "calibration"
    )
    interval_90: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        description="[low, high]: 90 % conformal prediction interval of the quality"
    )


class Scored(Score):
    """The answer to POST /predict: the score, with the request id and the model version."""

    request_id: str
    model_version: int


class BarrelScore(Scored):
    """The answer to GET /barrels/{barrel_id}/quality: the score of the reading it names."""

    barrel_id: str
    reading_seq: int
    reading_updated_at: str | None
    wine_type: WineType


class BatchScores(BaseModel):
    """The answer to POST /batch: one score per wine, in the order sent."""

    request_id: str
    model_version: int
    logged_at: str = Field(description="when the prediction log committed the batch (ISO 8601)")
    predictions: list[Score]


class Detail(BaseModel):
    """Why a request was not answered."""

    detail: str


_UNAVAILABLE = {
    503: {"model": Detail, "description": "No champion model, or the prediction log (or the "
          "readings store) cannot be used; nothing was answered."},
}  # fmt: skip
_NOT_FOUND = {404: {"model": Detail, "description": "Not in the store."}}
#: Bodies: a 400 from FastAPI for bytes that are not UTF-8 (JSON that does not parse is a 422).
_BODY = {**_UNAVAILABLE, 400: {"model": Detail, "description": "The body is not UTF-8 text."}}


def _json(content: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(
        json.dumps(content), status_code=status, media_type="application/json", headers=headers
    )


#: The variable holding the API token (unset or empty: no token, loopback only).
TOKEN_VAR = "WINE_API_TOKEN"
#: The variable holding the request body limit in bytes.
MAX_BODY_VAR = "WINE_API_MAX_BODY_BYTES"
#: Default body limit: a 10 000-wine batch (the most ``/batch`` takes) is ~2.6 MB of JSON.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: The schema's path (served as a guarded route: see ``create_app``).
OPENAPI = "/openapi.json"
#: The 401's challenges, one header each: programs send the bearer token, browsers prompt.
CHALLENGES = ('Bearer realm="wine-api"', 'Basic realm="wine-api (any user, the token as password)"')
_UNAUTHORIZED = {401: {  # JSON on the HTML routes too: the content type said, not a model
    "content": {"application/json": {"schema": Detail.model_json_schema()}},
    "description": f"Missing or wrong token ({TOKEN_VAR} is set on the service).",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
}}  # fmt: skip
_BEARER = security.HTTPBearer(auto_error=False, description=f"the service's {TOKEN_VAR}")
_BASIC = security.HTTPBasic(auto_error=False, description=f"any user, the {TOKEN_VAR} as password")


async def _authorized(
    request: Request,
    bearer: Annotated[security.HTTPAuthorizationCredentials | None, Security(_BEARER)],
    basic: Annotated[security.HTTPBasicCredentials | None, Security(_BASIC)],
) -> None:
    """The token's dependency: a 401 unless the app's token came as bearer or Basic password."""
    given = bearer.credentials if bearer else basic.password if basic else ""
    if not secrets.compare_digest(given.encode(), request.app.state.token.encode()):
        raise HTTPException(401)


class _BodyLimit:
    """ASGI middleware: a 413 for a body above the limit, by its Content-Length before the
    first byte is read or, chunked, once the bytes read pass it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        length = dict(scope.get("headers", ())).get(b"content-length", b"0")
        read = 0 if length.isdigit() and int(length) <= limit else limit + 1

        async def counted_receive() -> Message:
            # FastAPI turns an HTTPException raised while it reads the body into the answer.
            nonlocal read
            if read <= limit:
                message = await receive()
                read += len(message.get("body", b""))
                if read <= limit:
                    return message
            detail = f"request body larger than {limit} bytes ({MAX_BODY_VAR}); send fewer wines"
            raise HTTPException(413, detail + " per request", {"connection": "close"})

        await self.app(scope, counted_receive, send)


def create_app(
    model_store: ModelStoreResource,
    prediction_log: PredictionLogResource,
    readings_store: ReadingsStoreResource | None = None,
    check_every_s: float = 1.0,
    on_shutdown: Callable[[], object] | None = None,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The service over initialised resources (Dagster EnvVars already resolved); ``token``:
    required of every request but ``GET /health`` (None: open); bodies above
    ``max_body_bytes`` get a 413."""
    champion = ChampionCache(model_store, check_every_s)
    log = open_log(prediction_log.dsn)
    batcher = PredictionBatcher(champion, log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(log.create)
        # One store for the service's life (both backends are safe to share across threads):
        # opening it per request cost a connection, or a boto3 client, per barrel lookup.
        app.state.readings = (
            await run_in_threadpool(open_store, readings_store.url) if readings_store else None
        )
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            log.close()
            if app.state.readings is not None:
                app.state.readings.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPIOffline(  # a FastAPI app whose /docs and /redoc use local files, not a CDN
        title="Wine quality prediction service",
        version="1",
        description=f"Predicted quality (0-10) and whether a wine is good (>= {GOOD_THRESHOLD}), "
        "with P(good) and a 90 % interval, from the "
        "champion wine model; every answer is kept in the prediction log.",
        lifespan=lifespan,
        # the token guards every route added to the app (its docs pages too) but /health
        dependencies=[Security(_authorized)] if token else None,
        responses=_UNAUTHORIZED if token else None,
    )
    app.state.batcher, app.state.token = batcher, token
    app.add_middleware(_BodyLimit, max_body_bytes=max_body_bytes)
    # FastAPI serves /openapi.json by a plain Starlette route, out of the dependencies' reach
    app.router.routes.remove(next(r for r in app.routes if getattr(r, "path", "") == OPENAPI))

    @app.get(OPENAPI, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.exception_handler(401)
    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        detail = f"missing or wrong token: send 'Authorization: Bearer <{TOKEN_VAR}>'"
        response = JSONResponse({"detail": detail}, status_code=401)
        for challenge in CHALLENGES:  # one header each: a browser reads one challenge a header
            response.headers.append("WWW-Authenticate", challenge)
        return response

    @app.exception_handler(400)  # a body that is not UTF-8
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: Exception) -> Response:
        try:  # FastAPI parses a body before the token's dependency runs: without it, a 401 still
            if token:
                await _authorized(request, await _BEARER(request), await _BASIC(request))
        except HTTPException:
            return await unauthorized(request, exc)
        if isinstance(exc, HTTPException):
            return await http_exception_handler(request, exc)
        # FastAPI's 422 list without the echoed input: a NaN that Python's JSON parsed is not
        # valid JSON to answer with, and a bad batch need not be sent back.
        detail = [{k: e[k] for k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(LogUnavailableError)
    async def log_down(request: Request, exc: LogUnavailableError) -> JSONResponse:
        detail = f"{exc}; the prediction was not answered"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.exception_handler(NoChampionError)
    async def no_model(request: Request, exc: NoChampionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.post("/predict", summary="Score one wine", response_model=Scored, responses=_BODY)
    async def predict(wine: Wine) -> Response:  # type: ignore[valid-type]
        request_id = new_request_id()
        scored = await batcher.score([wine.model_dump()], "predict", request_id)
        body = {"request_id": request_id, "model_version": scored.model_version, **scored.item(0)}
        return _json(body, request_id=request_id)

    @app.post("/batch", summary="Score many wines", response_model=BatchScores, responses=_BODY)
    async def batch(body: Batch) -> Response:
        wines = [w.model_dump() for w in (body if isinstance(body, list) else body.wines)]
        request_id = new_request_id()
        scored = await batcher.score(wines, "batch", request_id)
        answer = {
            "request_id": request_id,
            "model_version": scored.model_version,
            "logged_at": scored.logged_at.isoformat(),
            "predictions": [scored.item(i) for i in range(len(wines))],
        }
        return _json(answer, request_id=request_id)

    @app.get(
        "/barrels/{barrel_id}/quality",
        summary="Score a barrel's current reading",
        response_model=BarrelScore,
        responses={**_NOT_FOUND, **_UNAVAILABLE},
    )
    async def barrel_quality(
        barrel_id: Annotated[BarrelId, Path(examples=["barrel-0001"])], request: Request
    ) -> Response:
        store = request.app.state.readings
        if store is None:
            return _json({"detail": "no readings store configured"}, 503)
        reading = await run_in_threadpool(store.get, barrel_id)
        if reading is None:
            return _json({"detail": f"no barrel {barrel_id!r} in the readings store"}, 404)
        wine = {"wine_type": reading.wine_type, **reading.features()}
        request_id = new_request_id()
        scored = await batcher.score([wine], "barrel", request_id, barrel_id=barrel_id)
        body = {
            "request_id": request_id,
            "barrel_id": barrel_id,
            "reading_seq": reading.seq,
            "reading_updated_at": reading.updated_at,
            "wine_type": reading.wine_type,
            "model_version": scored.model_version,
            **scored.item(0),
        }
        return _json(body, request_id=request_id)

    open_routes = APIRouter()  # outside the app's token: a load balancer's or compose's probe

    @open_routes.get(
        "/health",
        summary="Champion and prediction log reachable",
        responses={503: {"description": "The champion or the prediction log is unavailable "
                         "(the same fields, saying which)."}},
    )  # fmt: skip
    async def health() -> Response:
        status: dict[str, Any] = {"status": "ok"}
        try:
            version, _ = await run_in_threadpool(champion.current)
            status["model_version"] = version.version
        except NoChampionError as exc:
            status |= {"status": "unavailable", "model": str(exc)}
        try:
            status["logged_rows"] = await run_in_threadpool(log.max_position)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            status |= {"status": "unavailable", "log": f"{type(exc).__name__}: {exc}"}
        return _json(status, 200 if status["status"] == "ok" else 503)

    app.router.routes.extend(open_routes.routes)  # not include_router: that adds the token

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    storage: PlatformStorage = model_store.storage

    @app.get("/reports", response_class=HTMLResponse, summary="Drift reports, newest first")
    async def reports() -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(_reports_page, storage))

    @app.get(
        "/reports/{hour}/{positions}",
        response_class=HTMLResponse,
        summary="One drift report (Eurybia's self-contained HTML)",
        # a JSON 404 on an HTML route: its content type said here (a model would say HTML)
        responses={404: {"content": {"application/json": {"schema": Detail.model_json_schema()}}}},
    )
    async def report(
        hour: Annotated[str, Path(pattern=REPORT_HOUR_PATTERN, examples=["2024-06-01T1400Z"])],
        positions: Annotated[str, Path(pattern=REPORT_POSITIONS_PATTERN, examples=["1-250"])],
    ) -> Response:
        key = f"{REPORT_PREFIX}/{hour}/{positions}/report.html"
        if not await run_in_threadpool(storage.exists, key):
            return _json({"detail": f"no drift report {hour}/{positions}"}, 404)
        return HTMLResponse(await run_in_threadpool(storage.read_bytes, key))

    return app


#: Reports listed on /reports (the newest).
REPORTS_LISTED = 500


def _reports_page(storage: PlatformStorage) -> str:
    """An HTML table of the newest drift reports, linked."""
    rows = []
    for key in reversed(summary_keys(storage)[-REPORTS_LISTED:]):
        s = json.loads(storage.read_bytes(key))
        hour, label = key.split("/")[-3:-1]
        auc = s.get("drift_auc")
        link = (
            f'<a href="/reports/{hour}/{label}">report</a>'
            if storage.exists(key.replace("summary.json", "report.html"))
            else "not compared"
        )
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                s.get("partition", hour), s.get("positions") or "whole hour", s.get("rows"),
                f"{auc:.3f}" if auc is not None else "-", s.get("model_version", "-"),
                s.get("last_logged_at") or "-",
            )) + f"<td>{link}</td></tr>"
        )  # fmt: skip
    head = "".join(
        f"<th>{h}</th>"
        for h in ("hour (UTC)", "positions", "rows", "drift AUC", "model", "last row", "")
    )
    body = "\n".join(rows) or '<tr><td colspan="7">no drift report yet</td></tr>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Wine drift reports</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;"
        "text-align:left}</style></head><body><h1>Wine drift reports</h1>"
        f"<table><tr>{head}</tr>\n{body}</table></body></html>"
    )


def app_from_env() -> FastAPI:
    """The app on the configured resources (uvicorn factory; one per worker process)."""
    from wine_assets.monitoring.resources import service_resources

    stack = ExitStack()
    model_store, prediction_log, readings = (
        stack.enter_context(r.process_config_and_initialize_cm()) for r in service_resources()
    )
    return create_app(
        model_store,
        prediction_log,
        readings,
        on_shutdown=stack.close,
        token=os.environ.get(TOKEN_VAR) or None,
        max_body_bytes=max_body_bytes(),
    )


def max_body_bytes() -> int:
    """``WINE_API_MAX_BODY_BYTES`` (unset or empty: the default)."""
    return int(os.environ.get(MAX_BODY_VAR) or DEFAULT_MAX_BODY_BYTES)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # "" (every interface) or a name that may resolve anywhere
        return False


def _masked(dsn: str) -> str:
    """A DSN without its password (printed on start)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


def banner(host: str, port: int, log_dsn: str) -> str:
    """What ``wine-api`` prints on start: where it serves, what it logs to, how to stop."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    return (
        f"wine-api: serving the champion wine model on {url} (bound to {host})\n"
        f"  page {url}/   API docs {url}/docs   drift reports {url}/reports\n"
        f"  prediction log: {_masked(log_dsn)}\n"
        "  stop with Ctrl+C (SIGINT or SIGTERM); one access-log line per request follows"
    )


#: The shortest token ``wine-api`` accepts for a bind beyond loopback.
MIN_TOKEN_CHARS = 16
#: docker/.env.example's placeholder: a copied example is no secret.
EXAMPLE_TOKEN = "change-me-to-a-long-random-token"  # noqa: S105 - the placeholder refused


def token_weakness(token: str) -> str | None:
    """Why ``token`` cannot guard a service beyond this machine, or None when it can."""
    if not token:
        return "no token"
    if token == EXAMPLE_TOKEN:
        return "the example token of docker/.env.example"
    if len(token) < MIN_TOKEN_CHARS:
        return f"a token shorter than {MIN_TOKEN_CHARS} characters"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wine-api", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--quiet", action="store_true", help="warnings only: no start-up lines, no access log"
    )
    args = parser.parse_args(argv)
    weakness = token_weakness(os.environ.get(TOKEN_VAR) or "")
    if not is_loopback(args.host) and weakness:
        print(
            f"wine-api: refusing to serve {args.host} (beyond this machine) with {weakness}. "
            f"Fix: set {TOKEN_VAR} (e.g. `export {TOKEN_VAR}=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')`), or bind --host 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    max_body_bytes()  # a bad WINE_API_MAX_BODY_BYTES fails here, not in each worker
    import uvicorn

    from wine_assets.monitoring.resources import prediction_log_resource

    if not args.quiet:
        dsn = prediction_log_resource().dsn
        dsn = dsn.get_value() or "" if isinstance(dsn, dg.EnvVar) else dsn
        print(banner(args.host, args.port, dsn), flush=True)
    uvicorn.run(
        "wine_assets.monitoring.api:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=not args.quiet,
        log_level="warning" if args.quiet else "info",
        proxy_headers=False,  # served directly (or behind a proxy that sets no headers we use)
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
