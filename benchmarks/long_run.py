"""Does the platform last? A month of barrel readings, retention, then the same measurements.

Measures a platform on its first day (one closed UTC day of readings, scores, prediction log
and the scorer's reports behind it), then pre-fills a second one with ``--days`` closed UTC days
at ``--barrels`` barrels every ``--interval`` seconds, bulk-written into the tables the platform
writes (the readings store's history and current readings, the scorer's ledger and position,
the prediction log) with realistic values, and the scorer's event shape in the instance
(runless materializations of ``wine_sensor_snapshot`` and ``barrel_quality_predictions`` per
day partition, one pair every ``--report-every`` seconds, as ``wine-scorer`` reports them);
runs the retention job (``wine_retention`` assets for yesterday: archive, check, prune past the
retention) and measures again. The month ends at today's midnight (UTC), as when the 00:30
schedule runs. The baseline is the first day, not an empty instance: an asset page with no
materialization to show answers in half the time of any page with its 100 latest, however
few events lie behind them (decision 0011); the empty page is reported beside it.

Figures:
* ``latency_ratio``: reading write -> prediction in the ledger, p95, with ``wine-scorer``
  running against each platform while ``--barrels`` readings are written every
  ``--tick-s`` for ``--measure-s`` (after the month / first day); goal <= 1.2;
* ``asset_page_ratio``: the UI's GraphQL query for the history assets' page
  (materializations, partition statuses and stats, checks), median of ``--page-reps``
  answers of ``dagster-webserver`` (after / first day); goal <= 1.2;
  ``asset_page_ratio_vs_empty``: the same against the page of an empty instance;
* ``hot_rows_ratio``: rows left in each hot table / (retention days x daily rows), the
  largest of readings history, scoring ledger (``--retention-days``) and prediction log
  (``--log-retention-days``, or all ``--days`` when fewer); goal <= 1.1.

Not pre-filled: Dagster runs (the history job's hourly runs and their events); the scorer's
reports are the instance's per-tick volume and the housekeeping job deletes old runs.

    python benchmarks/long_run.py --json FILE [--days 30 --barrels 100 --interval 10]
    python benchmarks/long_run.py --days 2 --barrels 10 --measure-s 20   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
from figures import emit, running, timed

from platform_core.settings import init_dagster_home

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HISTORY_ASSETS = ("wine_sensor_snapshot", "barrel_quality_predictions")
PAGE_QUERY = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  __typename ... on AssetNode {
    assetMaterializations(limit: 100) { runId partition timestamp
      metadataEntries { label } }
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    assetPartitionStatuses { __typename
      ... on TimePartitionStatuses { ranges { startKey endKey status } } }
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status } } } } } } }"""


def platform_env(root: Path) -> dict[str, str]:
    """The platform's settings for one temporary platform under ``root``."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(init_dagster_home(root / "home")),
        "PLATFORM_STORAGE_ROOT": str(root / "storage"),
        "WINE_READINGS_STORE": f"sqlite:///{root / 'readings.db'}",
        "PREDICTION_LOG_DSN": f"sqlite:///{root / 'log.db'}",
        "PLATFORM_HOME": str(root / "platform"),
    }


def prepare(env: dict[str, str], barrels: int) -> None:
    """A champion and the training table (the candidate recipe, made champion directly), and
    the stores with their tables and one reading per barrel."""
    from platform_core.storage import PlatformStorage
    from wine_assets.features import read_uci
    from wine_assets.monitoring.prediction_log import open_log
    from wine_assets.quality.assets import register_champion
    from wine_assets.quality.ledger import open_ledger
    from wine_assets.readings.simulator import seed_store
    from wine_assets.readings.store import open_store

    storage = PlatformStorage.local(env["PLATFORM_STORAGE_ROOT"])
    uci = read_uci()
    register_champion(storage, uci, "long_run benchmark")
    storage.write_parquet("tables/wine_training_data.parquet", uci)
    with open_store(env["WINE_READINGS_STORE"]) as store:
        seed_store(store, barrels, np.random.default_rng(0), "both")
        open_ledger(store).close()
    with open_log(env["PREDICTION_LOG_DSN"]) as log:
        log.create()


# -- pre-fill ---------------------------------------------------------------------------------


def _stamps(start: datetime, seconds: np.ndarray) -> np.ndarray:
    """ISO stamps in the store's format (``utc_now``: microseconds, +00:00)."""
    base = np.datetime64(start.replace(tzinfo=None), "us")
    moments = base + (seconds * 1e6).astype("timedelta64[us]")
    return np.char.add(np.datetime_as_string(moments, unit="us"), "+00:00")


def prefill(
    env: dict[str, str], days: int, barrels: int, interval: float, log_rows_per_day: int
) -> dict[str, int]:
    """Bulk-write ``days`` closed days into the stores; the rows written per day per table."""
    from wine_assets.features import FEATURES, read_uci
    from wine_assets.monitoring.prediction_log import COLUMNS as LOG_COLUMNS
    from wine_assets.quality.ledger import COLUMNS as LEDGER_COLUMNS
    from wine_assets.readings.schema import NUMERIC_FIELDS
    from wine_assets.readings.store import HISTORY_COLUMNS, open_store

    rng = np.random.default_rng(1)
    readings_db = env["WINE_READINGS_STORE"][len("sqlite://") :]
    uci = read_uci()
    with open_store(env["WINE_READINGS_STORE"]) as store:
        seeded = store.all()  # the barrels prepare() seeded: their wines drift for a month
    if len(seeded) != barrels:
        sys.exit(f"expected {barrels} seeded barrels, found {len(seeded)}")
    ids = np.array([r.barrel_id for r in seeded])
    types = np.array([r.wine_type for r in seeded])
    base = np.array([[getattr(r, f) for f in NUMERIC_FIELDS] for r in seeded])
    ticks = int(86_400 / interval)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    conn = sqlite3.connect(readings_db, isolation_level=None)
    (seq,) = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
    history_sql = (
        f"INSERT INTO reading_history ({', '.join(HISTORY_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"
    )
    ledger_sql = (
        f"INSERT INTO scoring_log ({', '.join(LEDGER_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})"
    )
    for d in range(days, 0, -1):
        start = midnight - timedelta(days=d)
        n = ticks * barrels
        seconds = np.repeat(np.arange(ticks) * interval, barrels) + rng.uniform(0, 0.05, n)
        stamps = _stamps(start, seconds)
        scored = _stamps(start, seconds + rng.uniform(0.2, 0.8, n))
        noise = 1 + rng.normal(0, 0.01, (n, base.shape[1]))
        values = np.round(np.tile(base, (ticks, 1)) * noise, 4)
        seqs = np.arange(seq + 1, seq + 1 + n)
        barrel = np.tile(ids, ticks)
        wine = np.tile(types, ticks)
        quality = np.round(rng.normal(5.8, 0.6, n), 3)
        day = start.date().isoformat()
        history = zip(
            seqs.tolist(),
            barrel.tolist(),
            wine.tolist(),
            *values.T.tolist(),
            stamps.tolist(),
            strict=True,
        )
        ledger = zip(
            seqs.tolist(), barrel.tolist(), wine.tolist(), [day] * n, stamps.tolist(),
            ["scored"] * n, scored.tolist(), [None] * n, quality.tolist(),
            np.round(rng.uniform(0, 1, n), 3).tolist(), (quality - 1).tolist(),
            (quality + 1).tolist(), [1] * n, strict=True,
        )  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(history_sql, history)
        conn.executemany(ledger_sql, ledger)
        conn.execute("COMMIT")
        seq += n
    # The current state: the last reading of each barrel, its score, the counters.
    last = values[-barrels:]
    conn.execute("BEGIN")
    conn.executemany(
        f"UPDATE readings SET {', '.join(f'{c} = ?' for c in NUMERIC_FIELDS)}, seq = ?, "
        "updated_at = ? WHERE barrel_id = ?",
        [
            (*row, int(s), str(t), str(b))
            for row, s, t, b in zip(
                last.tolist(), seqs[-barrels:], stamps[-barrels:], ids, strict=True
            )
        ],
    )
    conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (seq,))
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('scorer_cursor', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (seq,),
    )
    conn.execute("COMMIT")
    conn.close()
    log_db = env["PREDICTION_LOG_DSN"][len("sqlite://") :]
    conn = sqlite3.connect(log_db, isolation_level=None)
    log_sql = (
        f"INSERT INTO prediction_log ({', '.join(LOG_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(LOG_COLUMNS))})"
    )
    for d in range(days, 0, -1):
        start = midnight - timedelta(days=d)
        n = log_rows_per_day
        rows = uci.sample(n, replace=True, random_state=d)
        stamps = _stamps(start, np.sort(rng.uniform(0, 86_399, n)))
        quality = np.round(rng.normal(5.8, 0.6, n), 3)
        data = zip(
            [f"req-{d}-{i // 10}" for i in range(n)], [i % 10 for i in range(n)],
            ["batch"] * n, [None] * n, rows["wine_type"].tolist(),
            *rows[list(FEATURES)].to_numpy().T.tolist(), quality.tolist(),
            (quality >= 7).astype(int).tolist(), [1] * n, stamps.tolist(), strict=True,
        )  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(log_sql, data)
        conn.execute("COMMIT")
    conn.close()
    return {"readings": ticks * barrels, "barrel_predictions": ticks * barrels,
            "prediction_log": log_rows_per_day}  # fmt: skip


def prefill_instance(env: dict[str, str], days: int, report_every: float) -> int:
    """The scorer's reports for each closed day: one materialization of each history asset's
    day partition every ``report_every`` seconds; the number of events written."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    written = 0
    per_day = int(86_400 / report_every)
    midnight = datetime.now(UTC).date()
    with dg.DagsterInstance.get() as instance:
        for d in range(days, 0, -1):
            day = (midnight - timedelta(days=d)).isoformat()
            for i in range(per_day):
                for asset in HISTORY_ASSETS:
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(
                            asset_key=asset,
                            partition=day,
                            description="readings screened/scored by the barrel scorer",
                            metadata={
                                "seq_range": f"[{i * 600 + 1}, {(i + 1) * 600}]",
                                "first_seq": i * 600 + 1,
                                "last_seq": (i + 1) * 600,
                                "reported_by": "wine-scorer",
                                "readings": 600,
                                "scored": 600,
                                "quarantined": 0,
                                "lost": 0,
                                "model_version": 1,
                                "write_to_score_p50_s": 0.4,
                                "write_to_score_p95_s": 0.8,
                            },
                        )
                    )
                    written += 1
    return written


def run_retention(env: dict[str, str], retention_days: int, log_days: int) -> dict[str, Any]:
    """The retention job's assets for yesterday, as the 00:30 schedule runs them."""
    import dagster as dg

    from platform_core.storage import PlatformStorage
    from wine_assets.monitoring.prediction_log import PredictionLogResource
    from wine_assets.readings.resource import ReadingsStoreResource
    from wine_assets.retention.assets import (
        RetentionSettings,
        barrel_predictions_archive,
        barrel_readings_archive,
        prediction_log_archive,
    )

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        result, seconds = timed(
            dg.materialize,
            [barrel_predictions_archive, barrel_readings_archive, prediction_log_archive],
            partition_key=yesterday.isoformat(),
            instance=instance,
            resources={
                "storage": PlatformStorage.local(env["PLATFORM_STORAGE_ROOT"]),
                "readings_store": ReadingsStoreResource(url=env["WINE_READINGS_STORE"]),
                "prediction_log": PredictionLogResource(dsn=env["PREDICTION_LOG_DSN"]),
                "retention": RetentionSettings(
                    readings_days=retention_days, prediction_log_days=log_days
                ),
            },
        )
    pruned = {
        e.materialization.asset_key.path[0]: e.materialization.metadata["pruned_rows"].value
        for e in result.get_asset_materialization_events()
    }
    return {"retention_s": round(seconds, 1), "pruned_rows": pruned}


def hot_rows(env: dict[str, str]) -> dict[str, int]:
    readings = sqlite3.connect(env["WINE_READINGS_STORE"][len("sqlite://") :])
    log = sqlite3.connect(env["PREDICTION_LOG_DSN"][len("sqlite://") :])
    try:
        return {
            "readings": readings.execute("SELECT COUNT(*) FROM reading_history").fetchone()[0],
            "barrel_predictions": readings.execute("SELECT COUNT(*) FROM scoring_log").fetchone()[
                0
            ],
            "prediction_log": log.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0],
        }
    finally:
        readings.close()
        log.close()


# -- measurements -----------------------------------------------------------------------------


def latency(env: dict[str, str], root: Path, barrels: int, tick_s: float, measure_s: float) -> dict:
    """Write ``barrels`` readings every ``tick_s`` with ``wine-scorer`` running; the p50/p95
    of reading write -> scored (ledger ``scored_at`` - ``reading_updated_at``)."""
    from wine_assets.quality.ledger import open_ledger
    from wine_assets.readings.simulator import tick
    from wine_assets.readings.store import open_store

    rng = np.random.default_rng(2)
    with (
        open_store(env["WINE_READINGS_STORE"]) as store,
        running([str(BIN / "wine-scorer"), "--report-every", "60"], env, root / "scorer.log"),
    ):
        ledger = open_ledger(store)
        tick(store, rng, barrels_per_tick=barrels)  # a warm-up tick: scored once the scorer is up
        start = store.max_seq()
        deadline = time.monotonic() + 120
        while ledger.cursor() < start:  # the scorer is up and has caught up
            if time.monotonic() > deadline:
                sys.exit(f"wine-scorer did not start: {(root / 'scorer.log').read_text()[-2000:]}")
            time.sleep(0.2)
        end = time.monotonic() + measure_s
        while time.monotonic() < end:
            began = time.monotonic()
            tick(store, rng, barrels_per_tick=barrels)
            time.sleep(max(0.0, tick_s - (time.monotonic() - began)))
        upto = store.max_seq()
        deadline = time.monotonic() + 120
        while ledger.cursor() < upto and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = ledger.rows(start, upto)
        ledger.close()
    lag = (
        pd.to_datetime(rows["scored_at"], format="ISO8601")
        - pd.to_datetime(rows["reading_updated_at"], format="ISO8601")
    ).dt.total_seconds()
    return {
        "readings": upto - start,
        "scored": len(rows),
        "p50_s": round(float(lag.quantile(0.5)), 3),
        "p95_s": round(float(lag.quantile(0.95)), 3),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asset_page(env: dict[str, str], root: Path, reps: int) -> dict:
    """Median seconds of the history assets' page query on ``dagster-webserver``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "dagster-webserver"), "-m", "wine_assets.definitions", "-h", "127.0.0.1",
           "-p", str(port)]  # fmt: skip
    with running(cmd, env, root / "webserver.log"):
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"webserver did not start: {(root / 'webserver.log').read_text()[-2000:]}")
            time.sleep(0.5)
        times = []
        for rep in range(reps + 1):
            began = time.perf_counter()
            for asset in HISTORY_ASSETS:
                body = {"query": PAGE_QUERY, "variables": {"key": {"path": [asset]}}}
                answer = requests.post(f"{url}/graphql", json=body, timeout=300).json()
                if answer.get("errors") or "data" not in answer:
                    sys.exit(f"GraphQL errors: {answer.get('errors')}")
            if rep:  # the first answer warms the server's caches
                times.append(time.perf_counter() - began)
    return {"median_s": round(statistics.median(times), 3), "reps": reps}


def measure(env: dict[str, str], root: Path, args: argparse.Namespace) -> dict:
    return {
        "latency": latency(env, root, args.barrels, args.tick_s, args.measure_s),
        "asset_page": asset_page(env, root, args.page_reps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--barrels", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    parser.add_argument("--retention-days", type=int, default=7, help="readings, predictions")
    parser.add_argument("--log-retention-days", type=int, default=30, help="prediction log")
    parser.add_argument("--log-rows-per-day", type=int, default=10_000)
    parser.add_argument("--report-every", type=float, default=60.0)
    parser.add_argument("--tick-s", type=float, default=10.0, help="measurement tick")
    parser.add_argument("--measure-s", type=float, default=120.0)
    parser.add_argument("--page-reps", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.days <= args.retention_days:
        sys.exit(f"--days ({args.days}) must exceed --retention-days ({args.retention_days})")
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root, month_root = Path(tmp) / "fresh", Path(tmp) / "month"
        fresh, month = platform_env(fresh_root), platform_env(month_root)
        prepare(fresh, args.barrels)
        prepare(month, args.barrels)
        empty_page = asset_page(fresh, fresh_root, args.page_reps)
        prefill(fresh, 1, args.barrels, args.interval, args.log_rows_per_day)
        prefill_instance(fresh, 1, args.report_every)
        before = measure(fresh, fresh_root, args)
        daily, prefill_s = timed(
            prefill, month, args.days, args.barrels, args.interval, args.log_rows_per_day
        )
        events, events_s = timed(prefill_instance, month, args.days, args.report_every)
        retention = run_retention(month, args.retention_days, args.log_retention_days)
        rows = hot_rows(month)
        after = measure(month, month_root, args)
    kept_days = {
        "readings": args.retention_days,
        "barrel_predictions": args.retention_days,
        "prediction_log": min(args.log_retention_days, args.days),
    }
    # The seeds and the measurement's readings are a few rows on top.
    ratios = {table: rows[table] / (kept_days[table] * daily[table]) for table in daily}
    figures = {
        "latency_ratio": round(after["latency"]["p95_s"] / before["latency"]["p95_s"], 3),
        "asset_page_ratio": round(
            after["asset_page"]["median_s"] / before["asset_page"]["median_s"], 3
        ),
        "asset_page_ratio_vs_empty": round(
            after["asset_page"]["median_s"] / empty_page["median_s"], 3
        ),
        "hot_rows_ratio": round(max(ratios.values()), 4),
        "hot_rows_ratio_by_table": {t: round(r, 4) for t, r in ratios.items()},
        "first_day": before,
        "empty_asset_page": empty_page,
        "after_month": after,
        "hot_rows": rows,
        "daily_rows": daily,
        "instance_events": events,
        "prefill_s": round(prefill_s, 1),
        "instance_prefill_s": round(events_s, 1),
        **retention,
        "days": args.days,
        "barrels": args.barrels,
        "interval_s": args.interval,
        "retention_days": args.retention_days,
        "log_retention_days": args.log_retention_days,
        "goals": {"latency_ratio": 1.2, "asset_page_ratio": 1.2, "hot_rows_ratio": 1.1},
        "measured_on": date.today().isoformat(),
    }
    emit(figures, args.json)


if __name__ == "__main__":
    main()
