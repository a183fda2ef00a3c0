"""Reading-to-prediction latency of the real-time path, on both topologies.

For each topology, with a trained champion and ``--barrels`` seeded barrels, the simulator
writes every barrel's reading each ``--interval`` seconds for ``--duration`` seconds while the
barrel scorer (``wine-scorer``) runs beside Dagster:

- ``embedded``: ``dagster dev`` (webserver + daemon, SQLite instance) on the embedded SQLite
  readings store, as ``make dev`` runs it;
- ``production``: the processes of docker/docker-compose.yml on loopback
  (``tests/topology/stack.py``: PostgreSQL instance, moto S3 + DynamoDB readings store, code
  servers, webserver, daemon, wine-scorer).

Figures per topology: ``p50_s``/``p95_s``/``max_s`` of write -> prediction stored (the
reading's ``updated_at`` to the moment a watcher polling the store every 0.1 s first sees the
barrel's prediction for that reading; superseded readings are never the store's, so they are
timed by the ledger's ``scored_at`` instead, which is earlier than visibility by the commit);
``ledger_p95_s`` (write -> ``scored_at``, every reading); ``missed`` (written readings absent
from the scoring ledger after the drain); ``double_scored`` (readings the ledger or the day's
``barrel_quality_predictions`` table holds more than once); ``scoring_runs`` (Dagster runs of
``barrel_snapshot`` created during the measurement) and ``dagster_runs_per_day``: runs the
scoring path starts a day, extrapolated from the measurement as the most runs created in one
UTC hour times 24, plus one close per day (the history sensor's rule; a linear extrapolation
of a few minutes would scale one hourly run into hundreds). Goal per topology: p95_s <= 2.0,
missed == 0, double_scored == 0, dagster_runs_per_day <= 300.

    python benchmarks/reading_latency.py --json FILE [--barrels 100 --interval 10
        --duration 180 --topology both|embedded|production]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from figures import emit, running

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

GOAL = "p95_s <= 2.0, missed == 0, double_scored == 0, dagster_runs_per_day <= 300"


def run_checked(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


class Watcher:
    """Polls the store's predictions every ``every_s`` s and keeps when each (barrel,
    reading seq) was first seen."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        self.url = url
        self.every_s = every_s
        self.seen: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from wine_assets.readings.dynamodb_store import DynamoDbReadingsStore
        from wine_assets.readings.store import open_store

        with open_store(self.url) as store:
            keys = [{"barrel_id": {"S": r.barrel_id}} for r in store.all()]
            while not self._stop.is_set():
                now = time.time()
                if isinstance(store, DynamoDbReadingsStore):  # two attributes, by key
                    items = store._batch_get(store.table, keys, "barrel_id, reading_seq")
                    pairs = [
                        (i["barrel_id"]["S"], int(i["reading_seq"]["N"]))
                        for i in items
                        if "reading_seq" in i
                    ]
                else:
                    pairs = [(p.barrel_id, p.reading_seq) for p in store.predictions()]
                for pair in pairs:
                    self.seen.setdefault(pair, now)
                self._stop.wait(self.every_s)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def drive(
    url: str,
    barrels: int,
    interval: float,
    duration: float,
    drain: float,
    scored_up_to: Callable[[], int],
    seed: Callable[[], None],
) -> tuple[list[tuple[str, int, str]], dict[tuple[str, int], float], float]:
    """Seed, wait until the seeds are scored, then write for ``duration`` s and drain; the
    written (barrel, seq, updated_at), what the watcher saw, and the seconds to warm up."""
    from tests.polling import wait_for
    from wine_assets.readings.simulator import tick
    from wine_assets.readings.store import open_store

    started = time.time()
    seed()
    with open_store(url) as store:
        top = store.max_seq()
        wait_for(scored_up_to, 600, "the seeded barrels scored", until=lambda c: c >= top)
        warmup_s = time.time() - started
        rng = np.random.default_rng(0)
        written: list[tuple[str, int, str]] = []
        with Watcher(url) as watcher:
            deadline = time.time() + duration
            while time.time() < deadline:
                t0 = time.time()
                before = store.max_seq()
                seqs = tick(store, rng)
                written += [
                    (r.barrel_id, r.seq, r.updated_at)
                    for r in store.history(before, max(seqs))
                    if r.seq in set(seqs)
                ]
                time.sleep(max(0.0, interval - (time.time() - t0)))
            top = store.max_seq()
            wait_for(scored_up_to, drain + 120, "the scorer to drain", until=lambda c: c >= top)
            time.sleep(min(drain, 2.0))
        seen = dict(watcher.seen)
    return written, seen, warmup_s


def figures(
    written: list[tuple[str, int, str]],
    seen: dict[tuple[str, int], float],
    ledger: pd.DataFrame,
    day_table: pd.DataFrame,
    run_created: list[float],
    duration: float,
) -> dict:
    changes = pd.DataFrame(written, columns=["barrel_id", "seq", "updated_at"])
    stamp = pd.to_datetime(changes["updated_at"], utc=True).map(pd.Timestamp.timestamp)
    rows = ledger.drop_duplicates("seq").set_index("seq")
    in_ledger = changes["seq"].isin(rows.index)
    scored_at = changes["seq"].map(
        pd.to_datetime(rows["scored_at"], utc=True).map(pd.Timestamp.timestamp)
    )
    visible = pd.Series(
        [seen.get((b, s)) for b, s in zip(changes["barrel_id"], changes["seq"], strict=True)],
        dtype="float64",
    )
    stored = visible.fillna(scored_at)  # superseded readings never reach the store
    lat = (stored - stamp).dropna()
    ledger_lat = (scored_at - stamp).dropna()
    doubles = int(ledger["seq"].duplicated().sum())
    if len(day_table):
        doubles += int(day_table.duplicated(["barrel_id", "reading_seq"]).sum())
    hours: dict[str, int] = {}
    for created in run_created:
        hour = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H")
        hours[hour] = hours.get(hour, 0) + 1
    per_day = (max(hours.values()) if hours else 0) * 24 + 1

    def q(series: pd.Series, p: float) -> float | None:
        return round(float(series.quantile(p)), 3) if len(series) else None

    outcomes = rows.loc[rows.index.intersection(changes["seq"]), "outcome"]
    out = {
        "changes": len(changes),
        "scored": int((outcomes == "scored").sum()),
        "quarantined": int((outcomes == "quarantined").sum()),
        "missed": int((~in_ledger).sum()),
        "double_scored": doubles,
        "seen_in_store": int(visible.notna().sum()),
        "p50_s": q(lat, 0.5),
        "p95_s": q(lat, 0.95),
        "max_s": round(float(lat.max()), 3) if len(lat) else None,
        "ledger_p50_s": q(ledger_lat, 0.5),
        "ledger_p95_s": q(ledger_lat, 0.95),
        "scoring_runs": len(run_created),
        "dagster_runs_per_day": per_day,
        "duration_s": duration,
    }
    out["goal_met"] = bool(
        out["p95_s"] is not None
        and out["p95_s"] <= 2.0
        and out["missed"] == 0
        and out["double_scored"] == 0
        and per_day <= 300
    )
    return out


def _day_table(storage, day: str) -> pd.DataFrame:
    key = f"tables/barrel_quality_predictions/{day}.parquet"
    return storage.read_parquet(key) if storage.exists(key) else pd.DataFrame()


def embedded(barrels: int, interval: float, duration: float, drain: float) -> dict:
    import dagster as dg

    from platform_core.settings import init_dagster_home
    from platform_core.storage import PlatformStorage
    from wine_assets.quality.ledger import open_ledger
    from wine_assets.readings.simulator import seed_store
    from wine_assets.readings.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        home = init_dagster_home(Path(tmp) / "home")
        url = f"sqlite:///{tmp}/readings.db"
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PLATFORM_HOME": f"{tmp}/platform",
            "PLATFORM_STORAGE_ROOT": f"{tmp}/storage",
            "WINE_READINGS_STORE": url,
        }
        run_checked(
            [str(BIN / "dagster"), "job", "execute", "-m", "wine_assets.definitions",
             "-j", "wine_retrain", "-c", str(_fast_train_config(tmp))],
            env,
        )  # fmt: skip
        with open_store(url) as store:
            store.create()
            ledger = open_ledger(store)
        started = time.time()
        with (
            running(
                [str(BIN / "dagster"), "dev", "-m", "wine_assets.definitions", "-p", "0"],
                env,
                Path(tmp) / "dev.log",
            ),
            running([str(BIN / "wine-scorer")], env, Path(tmp) / "scorer.log"),
        ):
            try:

                def seed() -> None:
                    with open_store(url) as store:
                        seed_store(store, barrels, np.random.default_rng(0), "both")

                written, seen, warmup_s = drive(
                    url, barrels, interval, duration, drain, ledger.cursor, seed
                )
            except BaseException:
                for log in ("dev.log", "scorer.log"):
                    print((Path(tmp) / log).read_text()[-3000:], file=sys.stderr)
                raise
        with open_store(url) as store:
            rows = open_ledger(store).rows(0, store.max_seq())
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            records = instance.get_run_records(dg.RunsFilter(job_name="barrel_snapshot"))
        created = [r.create_timestamp.timestamp() for r in records]
        created = [c for c in created if c >= started]
        day = datetime.now(UTC).date().isoformat()
        table = _day_table(PlatformStorage.local(f"{tmp}/storage"), day)
    return {"topology": "embedded (dagster dev, SQLite)", "barrels": barrels,
            "warmup_s": round(warmup_s, 1),
            **figures(written, seen, rows, table, created, duration)}  # fmt: skip


def production(barrels: int, interval: float, duration: float, drain: float) -> dict:
    from platform_core.settings import data_dir
    from tests.topology.stack import running_topology
    from wine_assets.quality.assets import train_run_config
    from wine_assets.quality.ledger import open_ledger
    from wine_assets.readings.simulator import seed_store
    from wine_assets.readings.store import open_store

    artifacts = REPO / "test-artifacts" / "reading-latency-production"
    with running_topology(data_dir(), artifacts) as topology:
        started = time.time()
        url = topology.readings_url
        with open_store(url) as store:
            store.create()
            ledger = open_ledger(store)
            retrain = topology.launch("wine", "wine_retrain", train_run_config(1))
            if topology.wait_run(retrain, timeout_s=600) != "SUCCESS":
                raise RuntimeError(f"wine_retrain run {retrain} failed: see {artifacts}")

            def seed() -> None:
                with open_store(url) as s:
                    seed_store(s, barrels, np.random.default_rng(0), "both", data_dir=data_dir())

            written, seen, warmup_s = drive(
                url, barrels, interval, duration, drain, ledger.cursor, seed
            )
            rows = ledger.rows(0, store.max_seq())
        created = [
            c.replace(tzinfo=UTC).timestamp()  # stored as naive UTC
            for (c,) in topology.sql(
                "SELECT create_timestamp FROM runs WHERE pipeline_name = 'barrel_snapshot'"
            )
        ]
        created = [c for c in created if c >= started]
    return {"topology": "production (PostgreSQL, moto DynamoDB)", "barrels": barrels,
            "warmup_s": round(warmup_s, 1),
            **figures(written, seen, rows, pd.DataFrame(), created, duration)}  # fmt: skip


def _fast_train_config(tmp: str) -> Path:
    from wine_assets.quality.assets import train_run_config

    path = Path(tmp) / "train.yaml"
    path.write_text(json.dumps(train_run_config(1)))  # YAML is a superset of JSON
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--barrels", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--drain", type=float, default=20.0)
    parser.add_argument("--topology", choices=["both", "embedded", "production"], default="both")
    args = parser.parse_args()
    result: dict = {"interval_s": args.interval, "goal": GOAL}
    run = (args.barrels, args.interval, args.duration, args.drain)
    if args.topology in ("both", "embedded"):
        result["embedded"] = embedded(*run)
        emit(result, args.json)  # kept should the production run fail
    if args.topology in ("both", "production"):
        result["production"] = production(*run)
    result["goal_met"] = all(
        result[k]["goal_met"] for k in ("embedded", "production") if k in result
    )
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
