"""Scoring for the prediction service: the champion, cached, and requests scored in groups.

Two costs dominate a prediction: walking the forest (almost the same for 1 row as for 50) and
committing the log row (one commit serves any number of rows). So concurrent requests are
grouped: while one group is being scored and logged, the next requests queue up and form the
next group. An idle service scores a lone request at once (no waiting window); a busy one
amortises both costs. A small group is scored on the event loop itself (a thread hand-off and
GIL contention cost more than its ~1 ms of numpy), a big batch in the worker thread; the log
commit, which waits on the database, always runs in the worker thread so the loop keeps
reading the requests that form the next group. Every future is resolved only after its
group's log commit: a request is answered if and only if its rows are in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from platform_core.model_store import ModelStoreResource
from platform_core.registry import ModelVersion
from wine_assets.features import FEATURES
from wine_assets.monitoring.prediction_log import LoggedPrediction, PredictionLog
from wine_assets.quality import MODEL_NAME
from wine_assets.quality import model as wine_model
from wine_assets.quality import trust as wine_trust
from wine_assets.quality.model import is_good


class NoChampionError(RuntimeError):
    """No champion wine model is registered yet (run the ``wine_retrain`` job)."""


class ChampionCache:
    """The champion model, reloaded only when the registry names a new version.

    The registry index (one small JSON file) is read at most every ``check_every_s`` seconds,
    so a promotion is served within that time, without a restart.
    """

    def __init__(self, model_store: ModelStoreResource, check_every_s: float = 1.0) -> None:
        self._store = model_store
        self._every = check_every_s
        self._checked = float("-inf")
        self._current: tuple[ModelVersion, wine_model.FittedModel] | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the next ``current()`` reads the registry (and may load a model): a call
        the service makes off its event loop."""
        return self._current is None or time.monotonic() - self._checked >= self._every

    def current(self) -> tuple[ModelVersion, wine_model.FittedModel]:
        with self._lock:
            if self.due():
                registry = self._store.registry(MODEL_NAME)
                champion = registry.champion()
                self._checked = time.monotonic()
                if champion is None:
                    raise NoChampionError(
                        f"{MODEL_NAME} has no champion yet: run the wine_retrain job"
                    )
                if self._current is None or self._current[0].version != champion.version:
                    files = registry.verify(champion)  # the version just read, not a re-read
                    self._current = (champion, wine_model.from_files(files))
                    self._checked = time.monotonic()  # the interval starts once it is loaded
            return self._current


@dataclass
class _Job:
    """One request: its wines, and the future its handler awaits."""

    wines: list[dict[str, Any]]
    endpoint: str
    request_id: str
    barrel_id: str | None
    future: asyncio.Future = field(repr=False)


@dataclass(frozen=True)
class Scored:
    """What a request gets back once its rows are committed to the log."""

    request_id: str
    model_version: int
    quality: list[float]
    logged_at: datetime
    #: P(good) per wine and the 90 % interval's bounds; None where the model has no
    #: calibration (a champion trained before they existed).
    p_good: list[float | None]
    interval: list[tuple[float, float] | None]

    def item(self, index: int) -> dict[str, Any]:
        q, p, bounds = self.quality[index], self.p_good[index], self.interval[index]
        return {
            "predicted_quality": round(q, 4),
            "good": bool(is_good(q)),
            "p_good": None if p is None else round(p, 4),
            "interval_90": None if bounds is None else [round(b, 4) for b in bounds],
        }


def _trust_lists(
    model: wine_model.FittedModel, wine_types: np.ndarray, quality: np.ndarray
) -> tuple[list[float | None], list[tuple[float, float] | None]]:
    """P(good) and interval per wine, as JSON-ready lists (None without a calibration)."""
    if model.trust is None:
        return [None] * len(quality), [None] * len(quality)
    p_good, bounds = wine_trust.annotate(model.trust, wine_types, quality)
    return p_good.tolist(), [tuple(b) for b in bounds.tolist()]


#: 16 random hex digits per process, then a counter: unique across workers and restarts
#: without an os.urandom call per request (uuid4 cost more than parsing the body).
_ids: tuple[int, str, Iterator[int]] = (-1, "", iter(()))


def new_request_id() -> str:
    """A request id, unique across processes (32 hex digits like a uuid4's)."""
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():  # first call, or a forked child: a prefix of its own
        pid, prefix, counter = os.getpid(), secrets.token_hex(8), itertools.count()
        _ids = (pid, prefix, counter)
    return f"{prefix}{next(counter):016x}"


class PredictionBatcher:
    """Scores and logs queued requests in groups on one worker thread (see module doc)."""

    def __init__(
        self,
        champion: ChampionCache,
        log: PredictionLog,
        max_group_rows: int = 20_000,
        inline_rows: int = 256,
    ) -> None:
        self.champion = champion
        self.log = log
        self.max_group_rows = max_group_rows
        self.inline_rows = inline_rows
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self.groups = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def score(
        self,
        wines: list[dict[str, Any]],
        endpoint: str,
        request_id: str,
        barrel_id: str | None = None,
    ) -> Scored:
        """Score ``wines``; returns after their log rows are committed (or raises)."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(wines, endpoint, request_id, barrel_id, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            rows = len(jobs[0].wines)
            while rows < self.max_group_rows and not self._queue.empty():
                job = self._queue.get_nowait()
                jobs.append(job)
                rows += len(job.wines)
            try:
                if rows <= self.inline_rows:
                    if self.champion.due():  # the registry read (S3) or a model load
                        await loop.run_in_executor(self._executor, self.champion.current)
                    results, logged = self._score(jobs)
                else:
                    results, logged = await loop.run_in_executor(self._executor, self._score, jobs)
                # commits; raises LogUnavailableError → nobody in the group is answered
                await loop.run_in_executor(self._executor, self.log.write, logged)
                self.groups += 1
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():  # the client may have gone; its rows stay logged
                    job.future.set_result(result)

    def _score(self, jobs: list[_Job]) -> tuple[list[Scored], list[LoggedPrediction]]:
        """Predict every queued wine at once: each job's answer and the group's log rows."""
        version, model = self.champion.current()
        wines = [w for job in jobs for w in job.wines]
        features = np.array([[w[f] for f in FEATURES] for w in wines], dtype=np.float64)
        wine_types = np.array([w["wine_type"] for w in wines])
        scores = wine_model.predict_arrays(model, wine_types, features)
        p_good, interval = _trust_lists(model, wine_types, scores)
        quality = scores.tolist()
        now = datetime.now(UTC)
        rows, results, start = [], [], 0
        for job in jobs:
            part = quality[start : start + len(job.wines)]
            for item, (wine, q) in enumerate(zip(job.wines, part, strict=True)):
                rows.append(
                    LoggedPrediction(
                        request_id=job.request_id,
                        item=item,
                        endpoint=job.endpoint,
                        barrel_id=job.barrel_id,
                        wine_type=wine["wine_type"],
                        features=tuple(float(wine[f]) for f in FEATURES),
                        predicted_quality=float(q),
                        good=bool(is_good(q)),
                        model_version=version.version,
                        logged_at=now,
                    )
                )
            end = start + len(job.wines)
            results.append(
                Scored(
                    job.request_id,
                    version.version,
                    part,
                    now,
                    p_good[start:end],
                    interval[start:end],
                )
            )
            start += len(job.wines)
        return results, rows
