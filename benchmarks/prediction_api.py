"""Prediction service latency under open-loop load, with the PostgreSQL prediction log.

Starts a throwaway PostgreSQL server on loopback (tests/pg_server.py, made durable again:
``fsync`` and ``synchronous_commit`` on, as in production), trains and promotes a champion into
a temporary storage, and runs ``wine-api`` as its own process with ``PREDICTION_LOG_DSN``
pointing at that server. A separate client process then offers single ``POST /predict``
requests on a fixed schedule (open loop: request i is due at ``i / rate``; its latency runs
from that due time, so a stalled server cannot hide queueing behind a slower client).

1. ``--rate`` requests/s for ``--seconds``: ``p50_ms``, ``p99_ms``, ``requests_ok`` and
   ``logged_rows`` (rows in the log afterwards; must equal ``requests_ok``).
2. A ladder of rates, ``--step-seconds`` each, stopping at the first rate whose p99 reaches
   100 ms or that loses a request: ``max_rps`` is the highest rate that held.

Baseline in the same run: ``bare_predict_ms`` (one-row ``wine_model.predict`` in-process,
median), the floor any HTTP answer sits on; ``service_cpu_ms_per_request`` (the service
process's CPU time over the load phase per answered request) shows the cost independently of
what else the machine runs (``load_average_1m``). Goal: ``p99_ms`` <= 25 at 200 requests/s,
``logged_rows`` = ``requests_ok``, ``max_rps`` >= 1000.

    python benchmarks/prediction_api.py --json FILE [--rate 200 --seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

REPO = Path(__file__).resolve().parents[1]
LADDER = (200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2500, 3000)


# -- client (runs as its own process: `prediction_api.py --client URL RATE SECONDS`) --------


async def _offer(url: str, rate: float, seconds: float, bodies: list[bytes]) -> dict:
    import aiohttp

    n = int(rate * seconds)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            try:
                async with session.post(f"{url}/predict", data=bodies[i % len(bodies)],
                                        headers=headers) as r:  # fmt: skip
                    await r.read()
                    if r.status == 200:
                        latencies.append(time.perf_counter() - due)
                        return
                    key = str(r.status)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                key = type(exc).__name__
            failures[key] = failures.get(key, 0) + 1

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if (
            latencies
        ) else None  # fmt: skip

    return {
        "rate": rate,
        "offered": n,
        "requests_ok": len(latencies),
        "failures": failures,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
        "achieved_rps": round(len(latencies) / elapsed, 1),
    }


def client_main(url: str, rate: float, seconds: float, bodies_file: str) -> int:
    bodies = [line.encode() for line in Path(bodies_file).read_text().splitlines()]
    print(json.dumps(asyncio.run(_offer(url, rate, seconds, bodies))))
    return 0


def offer(url: str, rate: float, seconds: float, bodies_file: Path) -> dict:
    """Run the client process for one rate; its JSON summary."""
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(rate), str(seconds), str(bodies_file)],
        capture_output=True, text=True, check=True, timeout=seconds * 4 + 120,
    )  # fmt: skip
    return json.loads(out.stdout)


# -- the run --------------------------------------------------------------------------------


def measure(
    rate: float, seconds: float, step_seconds: float, durable: bool = True, workers: int = 1
) -> dict:
    sys.path.insert(0, str(REPO))
    import requests

    from platform_core.registry import ModelRegistry
    from platform_core.storage import PlatformStorage
    from tests.conftest import free_port, wait_http
    from tests.pg_server import PostgresServer
    from wine_assets.features import FEATURES, read_uci
    from wine_assets.quality import MODEL_NAME
    from wine_assets.quality import model as wine_model
    from wine_assets.quality.assets import register_champion

    uci = read_uci()
    pg = PostgresServer()
    pg.init()
    pg.start()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if durable:  # commits reach the disk, as on a production server
                pg.make_durable()
            dsn = pg.create_database("predictions")

            storage = PlatformStorage.local(f"{tmp}/storage")
            mv = register_champion(storage, uci, "benchmark")
            loaded = wine_model.from_files(ModelRegistry(storage, MODEL_NAME).verify(mv))
            one_row = uci.iloc[[0]]
            bare = []
            for _ in range(200):
                t0 = time.perf_counter()
                wine_model.predict(loaded, one_row)
                bare.append(time.perf_counter() - t0)

            bodies_file = Path(tmp) / "bodies.jsonl"
            sample = uci.sample(2000, random_state=0)
            bodies_file.write_text(
                "\n".join(
                    json.dumps({"wine_type": t, **dict(zip(FEATURES, map(float, v), strict=True))})
                    for t, *v in sample[["wine_type", *FEATURES]].itertuples(index=False)
                )
            )
            port = free_port()
            env = {
                **os.environ,
                "PLATFORM_STORAGE_ROOT": storage.root,
                "PREDICTION_LOG_DSN": dsn,
                "WINE_READINGS_STORE": f"sqlite:///{tmp}/readings.db",
            }
            service = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("wine-api")),
                    *("--port", str(port), "--workers", str(workers)),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{url}/health")
                for _ in range(50):  # warm the service: champion loaded, connection open
                    requests.post(f"{url}/predict", data=bodies_file.read_text().split("\n")[0])
                warm, cpu0 = _logged(dsn), _cpu_s(service.pid)
                load = offer(url, rate, seconds, bodies_file)
                cpu_ms = 1000 * (_cpu_s(service.pid) - cpu0) / max(1, load["requests_ok"])
                logged = _logged(dsn) - warm
                ladder = []
                for step in LADDER:
                    cpu0 = _cpu_s(service.pid)
                    result = offer(url, step, step_seconds, bodies_file)
                    result["cpu_ms_per_request"] = round(
                        1000 * (_cpu_s(service.pid) - cpu0) / max(1, result["requests_ok"]), 3
                    )
                    ladder.append(result)
                    held = (
                        result["requests_ok"] == result["offered"]
                        and result["p99_ms"] is not None
                        and result["p99_ms"] < 100
                    )
                    if not held:
                        break
            finally:
                service.terminate()
                service.wait(timeout=30)
        finally:
            pg.cleanup()
    max_rps = max(
        (r["rate"] for r in ladder if r["requests_ok"] == r["offered"] and r["p99_ms"] < 100),
        default=0,
    )
    return {
        "rate": rate,
        "seconds": seconds,
        "durable_log": durable,
        "workers": workers,
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "max_ms": load["max_ms"],
        "requests_ok": load["requests_ok"],
        "offered": load["offered"],
        "failures": load["failures"],
        "logged_rows": logged,
        "max_rps": max_rps,
        "ladder": [
            {
                k: r[k]
                for k in ("rate", "requests_ok", "offered", "p50_ms", "p99_ms", "failures")
                + ("cpu_ms_per_request",)
            }
            for r in ladder
        ],
        "step_seconds": step_seconds,
        "service_cpu_ms_per_request": round(cpu_ms, 3),
        "bare_predict_ms": round(1000 * statistics.median(bare), 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "goal": "p99_ms <= 25 at 200 rps, logged_rows == requests_ok, max_rps >= 1000",
        "goal_met": bool(
            load["p99_ms"] is not None
            and load["p99_ms"] <= 25
            and logged == load["requests_ok"] == load["offered"]
            and max_rps >= 1000
        ),
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its children (uvicorn workers)."""
    total, pids = 0.0, [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _logged(dsn: str) -> int:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM prediction_log")
        return int(cur.fetchone()[0])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, rate, seconds, bodies = sys.argv
        return client_main(url, float(rate), float(seconds), bodies)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s offered")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--step-seconds", type=float, default=5.0, help="per max_rps step")
    parser.add_argument(
        "--no-durable",
        dest="durable",
        action="store_false",
        help="keep the test server's fsync=off (measures what durability costs)",
    )
    parser.add_argument("--workers", type=int, default=1, help="wine-api worker processes")
    args = parser.parse_args()
    figures = measure(args.rate, args.seconds, args.step_seconds, args.durable, args.workers)
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
