"""``wine-scorer``: the long-running barrel scorer, the real-time path from reading to score.

It follows the readings store's append-only history by ``seq`` (a consistent, indexed read on
both backends: the SQLite primary key, DynamoDB's history table), a fraction of a second
behind the writers, and for every new reading:

* quarantines it when a feature is missing or outside its wine type's training range (kept in
  the ledger with its reason, not scored; the other barrels are scored as usual), or
* scores it with the champion (quality, P(good), 90 % interval), loaded once and reloaded when
  the registry names a new champion (one small registry read every ``--champion-every`` s).

Exactly once per ``(barrel, seq)``, across a SIGKILL at any point: the results, each barrel's
newest score in the store and the scorer's position are committed through the ledger
(``ledger.py``): one transaction on SQLite; on DynamoDB idempotent writes (the ledger keyed
by seq), the position last, so a restart repeats at most the last batch and adds nothing.

On DynamoDB a seq is reserved before its reading is written, so a reading can appear after a
higher one. The position never passes a seq that is not in the ledger: such a seq is looked up
again on every poll and scored when it appears; after ``--give-up-after`` seconds it is
recorded as ``lost`` (reserved, never written), so the day's accounting names it.

Dagster sees this work as what it is: materializations of the daily history assets
(``wine_sensor_snapshot``, ``barrel_quality_predictions``), reported to the instance through
its public API (``DagsterInstance.report_runless_asset_event``) at most every
``--report-every`` seconds per day, each with the seq range and counts it covers; no run.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from platform_core.model_store import ModelStoreResource
from platform_core.registry import ModelVersion
from platform_core.tables import table_key
from wine_assets.quality import MODEL_NAME
from wine_assets.quality import model as wine_model
from wine_assets.quality import trust as wine_trust
from wine_assets.quality.ledger import LedgerRow, ScoreLedger, frame, open_ledger
from wine_assets.quality.snapshot import (
    PREDICTIONS,
    SNAPSHOT,
    TRAINING,
    reading_day,
    screen_features,
    training_ranges,
)
from wine_assets.readings.store import ReadingsStore, key_ranges, utc_now

log = logging.getLogger("wine-scorer")

#: Readings read per poll at most (a catch-up after an outage goes page by page).
PAGE = 5000
#: Pause between reads while a writer's batch is still appearing (``BarrelScorer._settle``).
SETTLE_POLL_S = 0.02


class NotReady(RuntimeError):
    """No champion or no training table yet: the scorer waits, its position unchanged."""


@dataclass
class Champion:
    """The champion model and the training ranges its inputs are screened against."""

    version: ModelVersion
    model: wine_model.FittedModel
    ranges: dict[str, dict[str, tuple[float, float]]]


class ChampionSource:
    """The champion, reloaded only when the registry's champion version changes (the
    registry index is read at most every ``check_every_s``)."""

    def __init__(self, model_store: ModelStoreResource, check_every_s: float = 5.0) -> None:
        self.model_store = model_store
        self.check_every_s = check_every_s
        self._checked = float("-inf")
        self._current: Champion | None = None
        self.loads = 0

    def current(self) -> Champion:
        if self._current is None or time.monotonic() - self._checked >= self.check_every_s:
            registry = self.model_store.registry(MODEL_NAME)
            champion = registry.champion()
            self._checked = time.monotonic()
            if champion is None:
                raise NotReady(f"{MODEL_NAME} has no champion yet (the wine_retrain job)")
            if self._current is None or self._current.version.version != champion.version:
                storage = self.model_store.storage
                key = table_key(TRAINING)
                if not storage.exists(key):
                    raise NotReady(f"no training table at {storage.uri(key)} yet")
                model = wine_model.from_files(registry.verify(champion))
                ranges = training_ranges(storage.read_parquet(key))
                self._current = Champion(champion, model, ranges)
                self.loads += 1
                log.info("scoring with %s", champion.label)
        return self._current


@dataclass
class DayTally:
    """What the scorer did for one UTC day since its last report."""

    first_seq: int | None = None
    last_seq: int | None = None
    scored: int = 0
    quarantined: int = 0
    lost: int = 0
    lags: list[float] = field(default_factory=list)

    def add(self, rows: pd.DataFrame, now: datetime) -> None:
        """Count the day's ledger rows (``ledger.frame``'s columns); a scored row's lag is
        ``now`` minus its reading's write."""
        lo, hi = int(rows["seq"].min()), int(rows["seq"].max())
        self.first_seq = lo if self.first_seq is None else min(self.first_seq, lo)
        self.last_seq = hi if self.last_seq is None else max(self.last_seq, hi)
        for outcome, count in rows["outcome"].value_counts().items():
            setattr(self, str(outcome), getattr(self, str(outcome)) + int(count))
        scored = rows.loc[rows["outcome"] == "scored", "reading_updated_at"]
        written = pd.to_datetime(scored, format="ISO8601", utc=True)
        self.lags.extend((now - written).dt.total_seconds().tolist())

    def merge(self, later: DayTally) -> None:
        """Add the same day's tally of later commits (this one could not be reported)."""
        seqs = [self.first_seq, self.last_seq, later.first_seq, later.last_seq]
        known = [q for q in seqs if q is not None]
        if known:
            self.first_seq, self.last_seq = min(known), max(known)
        self.scored += later.scored
        self.quarantined += later.quarantined
        self.lost += later.lost
        self.lags.extend(later.lags)


class DagsterReporter:
    """Runless materializations of the day's history partitions, at a bounded rate, sent from
    a thread of their own: the scoring loop never waits for the instance."""

    def __init__(self, instance: Any, every_s: float = 60.0) -> None:
        self.instance = instance
        self.every_s = every_s
        self.tallies: dict[str, DayTally] = {}
        self.model_version: int | None = None
        self._last = time.monotonic()
        self.reported = 0
        self._lock = threading.Lock()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="wine-scorer-report")
        self._sending: Future[None] | None = None
        #: After a failed send, nothing is sent before this (monotonic) time unless forced.
        self._hold_until = 0.0

    def add(self, rows: pd.DataFrame, model_version: int | None) -> None:
        """Tally one commit's ledger rows by day."""
        now = datetime.now(UTC)
        with self._lock:
            for day, part in rows.groupby("day", sort=True):
                self.tallies.setdefault(str(day), DayTally()).add(part, now)
            self.model_version = model_version

    def maybe_report(self, force: bool = False) -> None:
        """Send every day with news once ``every_s`` has passed (a day that turned over at
        once, so a closed day's last seqs are not held) unless a send is still under way;
        ``force``: now, and wait for it."""
        if self._sending is not None:
            if not (force or self._sending.done()):
                return
            self._sending.result()
            self._sending = None
        if not force and time.monotonic() < self._hold_until:
            return
        today = datetime.now(UTC).date().isoformat()
        with self._lock:
            old_days = [d for d in self.tallies if d < today]
            due = force or old_days or time.monotonic() - self._last >= self.every_s
            if not due or not self.tallies:
                return
            batch, self.tallies = self.tallies, {}
            version = self.model_version
        self._last = time.monotonic()
        self._sending = self._sender.submit(self._send, batch, version)
        if force:
            self._sending.result()
            self._sending = None

    def _send(self, batch: dict[str, DayTally], model_version: int | None) -> None:
        """Report each day of ``batch``; on a failure the days not reported go back to the
        tallies, sent again after ``every_s``."""
        import dagster as dg

        days = sorted(batch)
        for i, day in enumerate(days):
            tally = batch[day]
            seq_range = f"[{tally.first_seq}, {tally.last_seq}]"
            common = {"seq_range": seq_range, "first_seq": tally.first_seq,
                      "last_seq": tally.last_seq, "reported_by": "wine-scorer"}  # fmt: skip
            lags = np.asarray(tally.lags) if tally.lags else np.zeros(1)
            try:
                self.instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=SNAPSHOT,
                        partition=day,
                        description=f"readings {seq_range} screened by the barrel scorer",
                        metadata=common
                        | {
                            "readings": tally.scored + tally.quarantined,
                            "quarantined": tally.quarantined,
                            "lost": tally.lost,
                        },
                    )
                )
                self.instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=PREDICTIONS,
                        partition=day,
                        description=f"readings {seq_range} scored by the barrel scorer",
                        metadata=common
                        | {
                            "scored": tally.scored,
                            "model_version": int(model_version or 0),
                            "write_to_score_p50_s": float(np.quantile(lags, 0.5)),
                            "write_to_score_p95_s": float(np.quantile(lags, 0.95)),
                        },
                    )
                )
            except Exception:  # the instance is down: keep the tallies, try again later
                log.exception(
                    "could not report to the Dagster instance; retrying in %.0f s", self.every_s
                )
                self._hold_until = time.monotonic() + self.every_s
                with self._lock:
                    for unsent in days[i:]:
                        kept = batch[unsent]
                        if unsent in self.tallies:
                            kept.merge(self.tallies[unsent])
                        self.tallies[unsent] = kept
                return
            self.reported += 2

    def close(self) -> None:
        """Wait for a send under way."""
        self._sender.shutdown(wait=True)


class BarrelScorer:
    """One consumer of one readings store; ``step()`` does one poll."""

    def __init__(
        self,
        store: ReadingsStore,
        ledger: ScoreLedger,
        champion: Callable[[], Champion],
        reporter: DagsterReporter | None = None,
        give_up_after_s: float = 300.0,
        page: int = PAGE,
        settle_s: float = 0.3,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.champion = champion
        self.reporter = reporter
        self.give_up_after_s = give_up_after_s
        self.page = page
        self.settle_s = settle_s
        #: Every seq up to ``position`` is in the ledger; ``high``: the highest seq read.
        self.position = ledger.cursor()
        self.high = self.position
        #: Seqs between position and high not visible yet, with when they were first missed.
        self.holes: dict[int, float] = {}
        #: The page after a seq, being read while the page before it is scored (catch-up).
        self._ahead: tuple[int, Future[pd.DataFrame]] | None = None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="wine-scorer-read")

    def close(self) -> None:
        """Stop reading ahead (a read under way is waited for)."""
        self._reader.shutdown(wait=True, cancel_futures=True)

    def _read(self) -> pd.DataFrame:
        """The page after ``high``. A page that reaches the end of its seq range means a
        catch-up: the page after it is then read in the background while this one is scored
        and committed (the read holds no lock a writer waits for). Anything written after
        that read is simply in a later page, as with a read made at the next step."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == self.high:
            page = ahead[1].result()
        else:
            page = self.store.history_frame(self.high, self.high + self.page)
        if len(page) and int(page["seq"].iloc[-1]) >= self.high + self.page:
            top = self.high + self.page
            self._ahead = (top, self._reader.submit(self.store.history_frame, top, top + self.page))
        return page

    def _settle(self, page: pd.DataFrame) -> pd.DataFrame:
        """A page that stops short of the seqs handed out when it was read (a DynamoDB writer
        hands out its batch's seqs, then writes the readings 25 at a time) is read on up to
        them for at most ``settle_s``, so the batch is scored and committed once rather than
        in pieces. Seqs handed out later are left to the next step."""
        if not len(page) or len(page) >= self.page:
            return page
        parts = [page]
        top = int(page["seq"].iloc[-1])
        target = min(self.store.reserved_seq(), self.high + self.page)
        deadline = time.monotonic() + self.settle_s
        while top < target and time.monotonic() < deadline:
            more = self.store.history_frame(top, target)
            if len(more):
                parts.append(more)
                top = int(more["seq"].iloc[-1])
            else:
                time.sleep(SETTLE_POLL_S)
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else page

    def step(self) -> int:
        """Read what is new (and any hole that appeared), screen, score, commit; the number
        of readings newly recorded."""
        champion = self.champion()  # NotReady: nothing read, nothing moved
        page = self._settle(self._read())
        # One read per run of consecutive holes (a stalled writer leaves a whole batch).
        found = [self.store.history_frame(lo - 1, hi) for lo, hi in key_ranges(self.holes)]
        found = [f for f in found if len(f)]
        now = time.monotonic()
        for part in found:
            for seq in part["seq"].tolist():
                self.holes.pop(seq, None)
        if len(page):
            seqs = page["seq"].to_numpy()
            top = int(seqs[-1])  # ordered by seq
            for seq in np.setdiff1d(np.arange(self.high + 1, top + 1), seqs).tolist():
                self.holes[seq] = now
            self.high = top
        lost = [s for s, since in self.holes.items() if now - since >= self.give_up_after_s]
        for seq in lost:
            del self.holes[seq]
        if found:
            page = pd.concat([*found, page], ignore_index=True).sort_values(
                "seq", ignore_index=True
            )
        rows = self.rows(page, champion)
        if lost:
            rows = pd.concat([rows, self._lost(lost)], ignore_index=True)
        cursor = min(self.holes) - 1 if self.holes else self.high
        if not len(rows) and cursor <= self.position:
            return 0
        added = self.ledger.commit(rows, cursor)
        self.position = max(self.position, cursor)
        if lost:
            log.warning("seqs %s reserved but never written: recorded as lost", lost[:20])
        if self.reporter is not None:
            self.reporter.add(rows, champion.version.version)
        return added

    def rows(self, readings: pd.DataFrame, champion: Champion) -> pd.DataFrame:
        """Ledger rows (``ledger.frame``) for visible readings (``ReadingsStore.history_frame``
        columns): quarantined with a reason, or scored. Column by column: a catch-up page
        holds many thousand readings."""
        if not len(readings):
            return frame([])
        reasons, _ = screen_features(readings, champion.ranges)
        held = reasons.notna().to_numpy()
        n = len(readings)
        quality = np.full(n, np.nan)
        p_good = np.full(n, np.nan)
        interval = np.full((n, 2), np.nan)
        if (~held).any():
            todo = readings[~held] if held.any() else readings
            q = wine_model.predict(champion.model, todo)
            p, iv = wine_trust.annotate(champion.model.trust, todo["wine_type"].to_numpy(), q)
            quality[~held], p_good[~held], interval[~held] = q, p, iv
        stamps = readings["updated_at"].to_numpy()
        # A page's readings share few write stamps (one per batch written).
        codes, unique = pd.factorize(stamps)
        days = np.array([reading_day(u) for u in unique], dtype=object)[codes]
        return frame(
            {
                "seq": readings["seq"].to_numpy(),
                "barrel_id": readings["barrel_id"].to_numpy(),
                "wine_type": readings["wine_type"].to_numpy(),
                "day": days,
                "reading_updated_at": stamps,
                "outcome": np.where(held, "quarantined", "scored"),
                "scored_at": utc_now(),
                "quarantine_reason": reasons.to_numpy(),
                "predicted_quality": quality,
                "p_good": p_good,
                "quality_low_90": interval[:, 0],
                "quality_high_90": interval[:, 1],
                "model_version": np.where(held, np.nan, champion.version.version),
            }
        )

    def _lost(self, seqs: Sequence[int]) -> pd.DataFrame:
        now = utc_now()
        return frame(
            [
                LedgerRow(
                    seq=seq,
                    barrel_id="-",
                    wine_type="-",
                    day=reading_day(now),
                    reading_updated_at=now,
                    outcome="lost",
                    scored_at=now,
                    quarantine_reason=f"seq {seq} reserved but no reading appeared",
                )
                for seq in seqs
            ]
        )


def run(
    scorer: BarrelScorer,
    poll_s: float,
    should_stop: Callable[[], bool],
    wait_log_every_s: float = 30.0,
) -> None:
    """Poll until ``should_stop``: a step, then a short sleep when it found nothing."""
    waited_log = float("-inf")
    while not should_stop():
        try:
            added = scorer.step()
        except NotReady as exc:
            if time.monotonic() - waited_log >= wait_log_every_s:
                log.info("waiting: %s", exc)
                waited_log = time.monotonic()
            added = 0
            time.sleep(min(2.0, poll_s * 10))
        if scorer.reporter is not None:
            scorer.reporter.maybe_report()
        if not added:
            time.sleep(poll_s)
    if scorer.reporter is not None:
        scorer.reporter.maybe_report(force=True)


def _instance(stack: ExitStack) -> Any | None:
    """The Dagster instance of ``DAGSTER_HOME``, or None (no reports) when it is unset."""
    import os

    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        log.warning("DAGSTER_HOME unset: scoring without reporting to Dagster")
        return None
    return stack.enter_context(dg.DagsterInstance.get())


def open_scorer(stack: ExitStack, args: argparse.Namespace) -> BarrelScorer:
    """The scorer on the configured store, model store and instance (the platform's
    settings: ``WINE_READINGS_STORE``, ``PLATFORM_STORAGE_ROOT``, ``DAGSTER_HOME``)."""
    from wine_assets.monitoring.resources import service_resources

    model_store, _, readings = service_resources()
    model_store = stack.enter_context(model_store.process_config_and_initialize_cm())
    readings = stack.enter_context(readings.process_config_and_initialize_cm())
    store = stack.enter_context(readings.open())
    ledger = open_ledger(store)
    stack.callback(ledger.close)
    instance = _instance(stack)
    reporter = DagsterReporter(instance, args.report_every) if instance is not None else None
    if reporter is not None:
        stack.callback(reporter.close)
    source = ChampionSource(model_store, args.champion_every)
    scorer = BarrelScorer(store, ledger, source.current, reporter, args.give_up_after)
    stack.callback(scorer.close)
    return scorer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wine-scorer", description=__doc__.split("\n")[0])
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between empty polls")
    parser.add_argument(
        "--report-every", type=float, default=60.0, help="seconds between Dagster reports"
    )
    parser.add_argument(
        "--champion-every", type=float, default=5.0, help="seconds between champion checks"
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=300.0,
        help="seconds a reserved seq may stay invisible before it is recorded as lost",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Its own lines only: the root logger would also print the instance's storage set-up.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s wine-scorer %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as stack:
        scorer = open_scorer(stack, args)
        log.info("following %r from seq %d", scorer.store, scorer.position)
        run(scorer, args.poll, lambda: stopping)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
