"""Run latency of the barrel history's day runs on the production topology (no Docker).

Starts what docker/docker-compose.yml runs (tests/topology/stack.py: PostgreSQL, moto as S3
and DynamoDB, one gRPC code server per location, webserver, daemon and wine-scorer on
docker/dagster.yaml), trains a wine champion through GraphQL, seeds barrels in DynamoDB and
waits until the scorer has scored them, then ``--runs`` times changes a few barrels' readings,
waits until the scorer has them and submits a ``barrel_snapshot`` run of today's partition
through GraphQL (what ``barrel_history_sensor`` requests at most hourly), one at a time. From
the instance:

- ``launch_to_start``: the daemon launching the run (RUN_STARTING) to the run worker, a child
  of the wine code server, starting it (RUN_START);
- ``submit_to_success``: the GraphQL submission to RUN_SUCCESS;
- ``work``: the run's own steps (first STEP_START to last STEP_SUCCESS), the bare work the
  orchestration wraps (``overhead_ratio`` = submit_to_success / work, medians).

Scoring itself is not a run any more: its latency is benchmarks/reading_latency.py's.
Goal: submit_to_success.p95_s <= 8.

    python benchmarks/topology.py --json FILE [--runs 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC
from pathlib import Path

import numpy as np
from figures import emit

REPO = Path(__file__).resolve().parents[1]


def percentiles(values: list[float], name: str) -> dict[str, float]:
    return {
        f"{name}.p50_s": round(float(np.percentile(values, 50)), 3),
        f"{name}.p95_s": round(float(np.percentile(values, 95)), 3),
    }


def event_times(topology, run_id: str) -> dict[str, float]:
    """First timestamp (epoch s) of each event type of the run, from PostgreSQL, and the last
    one as ``last_<TYPE>``."""
    rows = topology.sql(
        "SELECT dagster_event_type, min(timestamp), max(timestamp) FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type IS NOT NULL GROUP BY 1",
        run_id,
    )
    from dagster import DagsterEventType

    times = {}
    for stored, first, last in rows:
        kind = DagsterEventType(stored).name  # stored under legacy names: PIPELINE_START
        times[kind] = first.replace(tzinfo=UTC).timestamp()
        times[f"last_{kind}"] = last.replace(tzinfo=UTC).timestamp()
    return times


def measure(runs: int, barrels: int, per_change: int) -> dict:
    sys.path.insert(0, str(REPO))
    from platform_core.settings import data_dir
    from tests.polling import wait_for
    from tests.topology.stack import running_topology, settled
    from wine_assets.quality.assets import train_run_config
    from wine_assets.readings.simulator import seed_store, tick
    from wine_assets.readings.store import open_store

    artifacts = REPO / "test-artifacts" / "topology-benchmark"
    with running_topology(data_dir(), artifacts) as topology:
        t0 = time.perf_counter()
        retrain = topology.launch("wine", "wine_retrain", train_run_config(1))
        with open_store(topology.readings_url) as store:
            seed_store(store, barrels, np.random.default_rng(0), "both", data_dir=data_dir())
        if topology.wait_run(retrain, timeout_s=600) != "SUCCESS":
            raise RuntimeError(f"wine_retrain run {retrain} failed: see {artifacts}")
        wait_for(lambda: settled(topology), 180, "the seeded barrels scored")
        warmup_s = time.perf_counter() - t0
        from datetime import datetime

        today = datetime.now(UTC).date().isoformat()
        submitted: dict[str, float] = {}
        rng = np.random.default_rng(1)
        with open_store(topology.readings_url) as store:
            for _ in range(runs):
                tick(store, rng, barrels_per_tick=per_change)
                wait_for(lambda: settled(topology), 120, "the change scored", every_s=0.1)
                t_submit = time.time()
                run_id = topology.launch("wine", "barrel_snapshot", partition=today)
                submitted[run_id] = t_submit
                if topology.wait_run(run_id, timeout_s=300) != "SUCCESS":
                    raise RuntimeError(f"barrel_snapshot run {run_id} failed: see {artifacts}")
        launch, submit, work = [], [], []
        for run_id, t_submit in submitted.items():
            ev = event_times(topology, run_id)
            launch.append(ev["RUN_START"] - ev["RUN_STARTING"])
            submit.append(ev["RUN_SUCCESS"] - t_submit)
            work.append(ev["last_STEP_SUCCESS"] - ev["STEP_START"])
    figures = {
        "runs": len(submitted),
        "changes": runs,
        "barrels": barrels,
        "barrels_per_change": per_change,
        **percentiles(launch, "launch_to_start"),
        **percentiles(submit, "submit_to_success"),
        **percentiles(work, "work"),
        "overhead_ratio": round(float(np.median(submit) / np.median(work)), 2),
        "warmup_s": round(warmup_s, 1),
        "goal": "submit_to_success.p95_s <= 8",
    }
    figures["goal_met"] = figures["submit_to_success.p95_s"] <= 8
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runs", type=int, default=20, help="day runs to time")
    parser.add_argument("--barrels", type=int, default=50)
    parser.add_argument("--barrels-per-change", type=int, default=5)
    args = parser.parse_args()
    emit(measure(args.runs, args.barrels, args.barrels_per_change), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
