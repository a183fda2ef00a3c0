"""Sensor-triggered run latency on the production topology (no Docker, same processes).

Starts what docker/docker-compose.yml runs (tests/topology/stack.py: PostgreSQL, moto as S3
and DynamoDB, one gRPC code server per location, webserver and daemon on docker/dagster.yaml),
trains a wine champion through GraphQL, seeds barrels in DynamoDB, then ``--runs`` times
changes a few barrels' readings and waits until the sensor's run has scored them (one change
at a time, so each figure is one run's latency, not a queue's). From the instance:

- ``launch_to_start``: the daemon launching the run (RUN_STARTING) to the run worker, a child
  of the wine code server, starting it (RUN_START);
- ``sensor_to_success``: the sensor tick that requested the run to RUN_SUCCESS;
- ``work``: the run's own steps (first STEP_START to last STEP_SUCCESS), the bare work the
  orchestration wraps (``overhead_ratio`` = sensor_to_success / work, medians);
- ``write_to_success``: the readings written (this script) to RUN_SUCCESS.

Goal: sensor_to_success.p95_s <= 8.

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
SENSOR = {
    "repositoryLocationName": "wine",
    "repositoryName": "__repository__",
    "sensorName": "barrel_readings_sensor",
}
TICKS = """query($sensor: SensorSelector!) { sensorOrError(sensorSelector: $sensor) {
  __typename ... on Sensor { sensorState { ticks(limit: 500) { timestamp runIds } } } } }"""


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
    from tests.topology.stack import running_topology, sensor_runs, settled
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
        warm = {run_id for run_id, _, _ in sensor_runs(topology)}

        written_at: dict[str, float] = {}  # run key -> when its newest change was written
        rng = np.random.default_rng(1)
        with open_store(topology.readings_url) as store:
            for _ in range(runs):
                seqs = tick(store, rng, barrels_per_tick=per_change)
                written_at[f"seq-{max(seqs):012d}"] = time.time()
                wait_for(lambda: settled(topology), 120, "the change scored", every_s=0.1)

        measured = [(r, k, s) for r, k, s in sensor_runs(topology) if r not in warm]
        ticks = topology.graphql(TICKS, {"sensor": SENSOR})["sensorOrError"]["sensorState"]
        tick_at = {rid: t["timestamp"] for t in ticks["ticks"] for rid in t["runIds"]}
        launch, sensor, work, write = [], [], [], []
        for run_id, key, status in measured:
            if status != "SUCCESS":
                raise RuntimeError(f"sensor run {run_id} ({key}) ended {status}")
            ev = event_times(topology, run_id)
            launch.append(ev["RUN_START"] - ev["RUN_STARTING"])
            sensor.append(ev["RUN_SUCCESS"] - tick_at[run_id])
            work.append(ev["last_STEP_SUCCESS"] - ev["STEP_START"])
            if key in written_at:
                write.append(ev["RUN_SUCCESS"] - written_at[key])
    figures = {
        "runs": len(measured),
        "changes": runs,
        "barrels": barrels,
        "barrels_per_change": per_change,
        **percentiles(launch, "launch_to_start"),
        **percentiles(sensor, "sensor_to_success"),
        **percentiles(work, "work"),
        **percentiles(write, "write_to_success"),
        "overhead_ratio": round(float(np.median(sensor) / np.median(work)), 2),
        "warmup_s": round(warmup_s, 1),
        "goal": "sensor_to_success.p95_s <= 8",
    }
    figures["goal_met"] = figures["sensor_to_success.p95_s"] <= 8
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--runs", type=int, default=20, help="sensor-triggered runs to time")
    parser.add_argument("--barrels", type=int, default=50)
    parser.add_argument("--barrels-per-change", type=int, default=5)
    args = parser.parse_args()
    emit(measure(args.runs, args.barrels, args.barrels_per_change), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
