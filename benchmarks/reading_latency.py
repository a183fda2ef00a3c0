"""Reading-to-prediction latency under ``dagster dev`` with the simulator writing every 10 s.

Starts ``dagster dev`` (webserver + daemon, embedded defaults in a temporary home) with a
trained champion and ``--barrels`` seeded barrels, waits until the seeds are scored
(``startup_s``), runs the simulator for ``--duration`` seconds, then reads every prediction
partition back and writes ``p50_s``/``p95_s`` (simulator write -> prediction in the store),
``missed`` (changes never scored) and ``double_scored``, and where the time goes (p50/p95 of
``detect``: write -> run created, ``queue_start``: created -> started, ``run``: -> scored).
Goal: p95_s <= 10, missed = 0, double_scored = 0.

    python benchmarks/reading_latency.py --json FILE [--barrels 100 --interval 10 --duration 180]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from figures import emit

from platform_core.settings import init_dagster_home

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_checked(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def measure(barrels: int, interval: float, duration: float, drain: float) -> dict:
    from platform_core.storage import PlatformStorage
    from wine_assets.readings.simulator import seed_store, tick
    from wine_assets.readings.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        home = init_dagster_home(Path(tmp) / "home")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PLATFORM_STORAGE_ROOT": f"{tmp}/storage",
            "WINE_READINGS_STORE": f"sqlite:///{tmp}/readings.db",
        }
        run_checked(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "wine_assets.definitions",
                "-j",
                "wine_retrain",
                "-c",
                str(_fast_train_config(tmp)),
            ],
            env,
        )
        rng = np.random.default_rng(0)
        written: list[tuple[str, int, float]] = []
        with open_store(env["WINE_READINGS_STORE"]) as store:
            seeded = seed_store(store, barrels, rng, "both")
        dev_log = open(Path(tmp) / "dev.log", "w")  # noqa: SIM115 (closed in finally)
        dev = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-m", "wine_assets.definitions", "-p", "0"],
            cwd=REPO,
            env=env,
            stdout=dev_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # The seeds wait for `dagster dev` to start; only the simulator's changes, written
            # once the platform is up (seeds scored), count for latency.
            startup_s = _wait_scored(env["WINE_READINGS_STORE"], len(seeded), timeout=300)
            deadline = time.time() + duration
            with open_store(env["WINE_READINGS_STORE"]) as store:
                while time.time() < deadline:
                    started = time.time()
                    before = store.max_seq()
                    tick(store, rng)
                    written += [
                        (r.barrel_id, r.seq, time.time()) for r in store.changed_since(before)
                    ]
                    time.sleep(max(0.0, interval - (time.time() - started)))
            time.sleep(drain)
        except BaseException:
            dev_log.flush()
            print((Path(tmp) / "dev.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            os.killpg(dev.pid, signal.SIGTERM)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
            dev_log.close()
        runs = _snapshot_runs(home)
        storage = PlatformStorage.local(f"{tmp}/storage")
        keys = storage.list_keys("tables/barrel_quality_predictions")
        preds = (
            pd.concat([storage.read_parquet(k) for k in keys], ignore_index=True)
            if keys
            else pd.DataFrame(
                columns=["barrel_id", "reading_seq", "reading_updated_at", "scored_at"]
            )
        )
    changes = pd.DataFrame(written, columns=["barrel_id", "reading_seq", "written_at"])
    scored = preds.groupby(["barrel_id", "reading_seq"]).size()
    double = int((scored > 1).sum())
    joined = changes.merge(
        preds.drop_duplicates(["barrel_id", "reading_seq"]),
        on=["barrel_id", "reading_seq"],
        how="left",
    )
    lat = (
        pd.to_datetime(joined["scored_at"], utc=True)
        - pd.to_datetime(joined["reading_updated_at"], utc=True)
    ).dt.total_seconds()
    missed = int(lat.isna().sum())
    stages = _stages(joined, runs)
    return {
        "barrels": barrels,
        "startup_s": round(startup_s, 1),
        "interval_s": interval,
        "duration_s": duration,
        "changes": len(changes),
        "scored": int(lat.notna().sum()),
        "missed": missed,
        "double_scored": double,
        "snapshot_runs": len(keys),
        "p50_s": round(float(lat.quantile(0.5)), 3) if lat.notna().any() else None,
        "p95_s": round(float(lat.quantile(0.95)), 3) if lat.notna().any() else None,
        "max_s": round(float(lat.max()), 3) if lat.notna().any() else None,
        **stages,
        "goal": "p95_s <= 10, missed == 0, double_scored == 0",
    }


def _snapshot_runs(home: Path) -> pd.DataFrame:
    """Each snapshot run's partition, creation (sensor tick) and start (worker up) times."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)  # the instance's storage reads it (dagster.yaml)
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="barrel_snapshot"))
    return pd.DataFrame(
        [
            {
                "partition": r.dagster_run.tags.get("dagster/partition"),
                "created": r.create_timestamp.timestamp(),
                "started": r.start_time,
            }
            for r in records
        ],
        columns=["partition", "created", "started"],
    )


def _stages(joined: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """p50/p95 of the three stages of a change's latency, each change in the first run whose
    snapshot covers it: written -> run created (sensor saw it; Dagster's sensor loop ticks
    every 5 s), created -> run started (queue, worker start-up), started -> scored.
    """
    if runs.empty or joined["scored_at"].isna().all():
        return {}
    runs = runs.assign(seq=runs["partition"].str.removeprefix("seq-").astype(int))
    runs = runs.sort_values("seq")
    scored = joined.dropna(subset=["scored_at"]).sort_values("reading_seq")
    covered = pd.merge_asof(
        scored.astype({"reading_seq": "int64"}),
        runs.astype({"seq": "int64"}),
        left_on="reading_seq",
        right_on="seq",
        direction="forward",
    )
    written = pd.to_datetime(covered["reading_updated_at"], utc=True).map(pd.Timestamp.timestamp)
    done = pd.to_datetime(covered["scored_at"], utc=True).map(pd.Timestamp.timestamp)
    out = {}
    for name, seconds in {
        "detect": covered["created"] - written,
        "queue_start": covered["started"] - covered["created"],
        "run": done - covered["started"],
    }.items():
        out[f"{name}_p50_s"] = round(float(seconds.quantile(0.5)), 3)
        out[f"{name}_p95_s"] = round(float(seconds.quantile(0.95)), 3)
    return out


def _wait_scored(url: str, barrels: int, timeout: float) -> float:
    """Seconds until every seeded barrel has a prediction in the store."""
    sys.path.insert(0, str(REPO))
    from tests.polling import wait_for
    from wine_assets.readings.store import open_store

    started = time.time()
    with open_store(url) as store:
        wait_for(
            lambda: len(store.predictions()),
            timeout,
            f"the {barrels} seeded barrels scored (predictions)",
            until=lambda scored: scored >= barrels,
        )
    return time.time() - started


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
    args = parser.parse_args()
    figures = measure(args.barrels, args.interval, args.duration, args.drain)
    ok = figures["p95_s"] is not None and figures["p95_s"] <= 10
    figures["goal_met"] = bool(ok and figures["missed"] == 0 and figures["double_scored"] == 0)
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
