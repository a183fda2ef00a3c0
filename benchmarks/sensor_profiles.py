"""Sensor-profile backfill throughput: the four daily assets in one run vs bare pandas.

Generates ``--sensors`` × ``--days`` hourly readings (one file per day, system E's layout;
``--noise`` plants system E's NaN/inf and drops a tenth of the sensors) or reads the files of
``--drop-dir`` (e.g. ``$PLATFORM_DATA_DIR/mock_ml_pipeline``, system E's own). Then, each in a
fresh process on the same files and fresh storage:

- ``wall_s``: one single-run backfill of every day through Dagster (``materialize`` of
  sensor_temperatures → sensor_daily_features → sensor_profile_model → sensor_profile_assignments
  over the whole range, checks included): read, validate, per-day parquet, features, k-means,
  assignments;
- ``bare_wall_s``: the same work written as a plain pandas + scikit-learn script (read, split
  by day, write per-day parquet, groupby features, standardise, k-means, assign, write).

``rows_per_s`` / ``bare_rows_per_s`` is the ratio (goal ≥ 0.7 at 10 000 × 90);
``peak_rss_mb`` is the Dagster process's peak resident memory (goal ≤ 4000).
``dagster_bookkeeping_s`` is the same range run with four no-op assets on the same kind of
instance (the project's dagster.yaml storage, the local default): the per-partition event cost
no asset code can avoid.
Workers run with Dagster's opt-ins as the Makefile and docker compose set them (unless set):
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 and DAGSTER_EVENT_BATCH_SIZE=100 (the latter
changes PostgreSQL only: a batch of materializations in one insert).

    python benchmarks/sensor_profiles.py --json FILE [--sensors S --days D] [--drop-dir DIR]
        [--repeats N]   # interleaved runs per side, the best of each is reported
        [--instance sqlite|postgres]   # Dagster storage: dagster dev's or production's
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit, timed

REPO = Path(__file__).resolve().parents[1]
#: How the platform runs Dagster (Makefile, docker compose): one planned event per asset for a
#: single-run backfill instead of one per asset and day. Set it to 0 to see the per-day cost.
PLANNED_EVENTS_VAR = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
#: ... and its per-day materializations stored in batches (one insert each on PostgreSQL).
EVENT_BATCH_VAR = "DAGSTER_EVENT_BATCH_SIZE"
#: The values the Makefile and docker compose give them (tests/topology/test_compose.py).
DAGSTER_OPT_INS = {PLANNED_EVENTS_VAR: "1", EVENT_BATCH_VAR: "100"}
#: Set by ``--instance postgres`` for each worker: its own database's ``postgres_db`` config.
INSTANCE_PG_VAR = "BENCH_INSTANCE_POSTGRES_DB"


def timed_cpu(func, *args, **kwargs):
    """``timed`` plus the process's CPU seconds (all threads): steadier than wall time when
    other work shares the machine."""
    cpu0 = time.process_time()
    result, wall = timed(func, *args, **kwargs)
    return result, wall, time.process_time() - cpu0


def bench_instance(root: Path):
    """The worker's Dagster instance: Dagster's standard SQLite storage under ``root`` (what
    the project's dagster.yaml gives ``dagster dev``), or, when the main process set
    INSTANCE_PG_VAR, PostgreSQL configured as docker/dagster.yaml does."""
    import dagster as dg

    home = root / "home"
    home.mkdir()
    pg = os.environ.get(INSTANCE_PG_VAR)
    if pg:
        storage = {"postgres": {"postgres_db": json.loads(pg)}}
    else:
        storage = {"sqlite": {"base_dir": str(home)}}
    return dg.instance_for_test(temp_dir=str(home), overrides={"storage": storage})


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def day_range(drop_dir: Path) -> tuple[str, str]:
    from wine_assets.profiles.drop import file_days, list_drop_files

    days = sorted({d for f in list_drop_files(drop_dir) for d in file_days(f.path)})
    return days[0], days[-1]


def run_dagster(drop_dir: Path, root: Path, first: str, last: str, k: int) -> dict:
    """One single-run backfill of the four assets over ``first``..``last``."""
    import dagster as dg
    import sklearn.cluster  # noqa: F401  (both sides pay the import before the clock starts)

    from platform_core.model_store import ModelStoreResource
    from platform_core.storage import PlatformStorage
    from platform_core.tables import ParquetTableIOManager
    from wine_assets.profiles.assets import profile_assets
    from wine_assets.profiles.resources import SensorProfilesSettings
    from wine_assets.profiles.sensor import range_tags
    from wine_assets.readings.resource import ReadingsStoreResource

    storage = PlatformStorage.local(str(root / "storage"))
    resources = {
        "storage": storage,
        "io_manager": ParquetTableIOManager(storage=storage),
        "model_store": ModelStoreResource(storage=storage),
        "sensor_profiles": SensorProfilesSettings(drop_dir=str(drop_dir), k=k),
        # Opened only with PROFILES_SOURCE=readings; the benchmark reads the drop files.
        "readings_store": ReadingsStoreResource(url="sqlite:///:memory:"),
    }
    tags = range_tags(first, last)
    with bench_instance(root) as instance:
        result, wall, cpu = timed_cpu(
            dg.materialize,
            profile_assets,
            resources=resources,
            instance=instance,
            tags=tags,
            raise_on_error=True,
        )
        meta = result.asset_materializations_for_node("sensor_temperatures")[0].metadata
        model = result.asset_materializations_for_node("sensor_profile_model")[0].metadata
        runs = len(instance.get_runs())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows": meta["dagster/row_count"].value,
        "runs": runs,
        "cluster_distribution": model["cluster_distribution"].value,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_floor(drop_dir: Path, root: Path, first: str, last: str, k: int) -> dict:
    """Dagster's own bookkeeping for the same range: four no-op assets with the same daily
    partitions and single-run policy on the same kind of instance (a materialization event per
    asset and day, and a planned event per asset and day unless the variable above is set)."""
    import dagster as dg

    from wine_assets.profiles.assets import profile_assets
    from wine_assets.profiles.partitions import daily_partitions, single_run
    from wine_assets.profiles.sensor import range_tags

    def noop(name: str, deps: list) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=daily_partitions, backfill_policy=single_run, deps=deps)
        def _asset() -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata={"rows": 0})

        return _asset

    assets: list = []
    for asset in profile_assets:
        assets.append(noop(asset.key.path[-1], assets[-1:]))
    tags = range_tags(first, last)
    with bench_instance(root) as instance:
        _, wall, cpu = timed_cpu(dg.materialize, assets, instance=instance, tags=tags)
    return {"wall_s": wall, "cpu_s": cpu, "rows": 0, "peak_rss_mb": peak_rss_mb()}


def run_bare(drop_dir: Path, root: Path, first: str, last: str, k: int) -> dict:
    """The same work as a plain script: no Dagster, no platform code."""
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans

    def work() -> int:
        out = root / "bare"
        frames = []
        for path in sorted(drop_dir.iterdir()):
            if path.suffix == ".parquet":
                frame = pd.read_parquet(path)
            elif path.suffix == ".csv":
                frame = pd.read_csv(path, engine="pyarrow")
                frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="%Y-%m-%d %H")
            else:
                continue
            frames.append(frame)
        temps = pd.concat(frames, ignore_index=True)
        del frames
        temps["temperature"] = temps["temperature"].astype("float64")
        start, end = pd.Timestamp(first), pd.Timestamp(last) + pd.Timedelta(days=1)
        temps = temps[(temps["timestamp"] >= start) & (temps["timestamp"] < end)]
        day = temps["timestamp"].dt.floor("D")
        feature_parts = []
        for d, part in temps.groupby(day, sort=True):
            name = d.strftime("%Y-%m-%d")
            (out / "temps").mkdir(parents=True, exist_ok=True)
            part.to_parquet(out / "temps" / f"{name}.parquet", index=False)
            t = part["temperature"].to_numpy()
            finite = np.isfinite(t)
            g = pd.DataFrame(
                {
                    "sensor_id": part["sensor_id"].to_numpy(),
                    "v": np.where(finite, t, np.nan),
                    "nan": np.isnan(t),
                    "inf": np.isinf(t),
                }
            ).groupby("sensor_id")
            f = g["v"].agg(["count", "mean", "std", "min", "max"])
            f["nan_values"], f["inf_values"] = g["nan"].sum(), g["inf"].sum()
            f["share_missing"] = np.clip(24 - f["count"], 0, None) / 24
            f["enough"] = f["count"] >= 18
            f = f.reset_index().assign(day=name)
            (out / "features").mkdir(parents=True, exist_ok=True)
            f.to_parquet(out / "features" / f"{name}.parquet", index=False)
            feature_parts.append(f)
        features = pd.concat(feature_parts, ignore_index=True)
        used = features[features["enough"]]
        x = used[["mean", "std", "min", "max"]].to_numpy()
        mean, std = x.mean(axis=0), x.std(axis=0)
        km = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=0)
        km.fit((x - mean) / std)
        labels = pd.array(np.full(len(features), pd.NA), dtype="Int64")
        labels[features["enough"].to_numpy()] = km.predict((x - mean) / std)
        features["profile"] = labels
        (out / "assignments").mkdir(parents=True, exist_ok=True)
        for name, part in features.groupby("day"):
            part[["sensor_id", "day", "profile"]].to_parquet(
                out / "assignments" / f"{name}.parquet", index=False
            )
        return len(temps)

    rows, wall, cpu = timed_cpu(work)
    return {"wall_s": wall, "cpu_s": cpu, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def in_fresh_process(mode: str, drop_dir: Path, first: str, last: str, k: int, pg=None) -> dict:
    """Run one side in its own interpreter, so each peak RSS is its own (with ``pg``, a
    PostgresServer, on a fresh database of it as the Dagster instance)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, __file__, "--worker", mode, "--drop-dir", str(drop_dir)]
        cmd += ["--first", first, "--last", last, "--k", str(k), "--work-dir", tmp]
        cmd += ["--json", str(out)]
        env = DAGSTER_OPT_INS | dict(os.environ)
        if pg is not None and mode != "bare":
            db = pg.create_database().rsplit("/", 1)[1]
            env[INSTANCE_PG_VAR] = json.dumps(
                {"hostname": "127.0.0.1", "port": pg.port, "db_name": db, "username": pg.user}
                | {"password": pg.password, "scheme": "postgresql+psycopg2"}
            )
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def start_postgres():
    """A throwaway PostgreSQL server (tests/pg_server.py) with durable commits, as production."""
    sys.path.insert(0, str(REPO))
    from tests.pg_server import PostgresServer

    pg = PostgresServer()
    pg.init()
    pg.start()
    pg.make_durable()
    return pg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--noise", action="store_true", help="system E's noise mode")
    parser.add_argument("--drop-dir", type=Path, help="use these files instead of generating")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per side")
    parser.add_argument(
        "--instance",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Dagster instance storage: SQLite (dagster dev's default) or a throwaway durable "
        "PostgreSQL server on loopback (production's storage)",
    )
    parser.add_argument("--worker", choices=["dagster", "bare", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--first", help=argparse.SUPPRESS)
    parser.add_argument("--last", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        run = {"dagster": run_dagster, "bare": run_bare, "floor": run_floor}[args.worker]
        figures = run(args.drop_dir, args.work_dir, args.first, args.last, args.k)
        args.json.write_text(json.dumps(figures))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        figures: dict = {}
        if args.drop_dir:
            drop_dir = args.drop_dir
            figures["source"] = str(drop_dir)
        else:
            from wine_assets.profiles.generate import write_days

            drop_dir = Path(tmp) / "drop"
            gen, gen_s = timed(
                write_days,
                drop_dir,
                args.sensors,
                args.days,
                noise=args.noise,
                fmt=args.format,
            )
            figures |= {
                "source": f"generated {args.format}, one file per day",
                "sensors": args.sensors,
                "days": args.days,
                "noise": args.noise,
                "generate_s": round(gen_s, 1),
            }
        first, last = day_range(drop_dir)
        pg = start_postgres() if args.instance == "postgres" else None
        try:
            # Interleaved repeats, best of each side: other processes on the machine slow one
            # side or the other, never both the same way.
            bares, dags = [], []
            for _ in range(args.repeats):
                bares.append(in_fresh_process("bare", drop_dir, first, last, args.k))
                dags.append(in_fresh_process("dagster", drop_dir, first, last, args.k, pg))
            floor = in_fresh_process("floor", drop_dir, first, last, args.k, pg)
        finally:
            if pg is not None:
                pg.cleanup()
        bare = min(bares, key=lambda f: f["wall_s"])
        dag = min(dags, key=lambda f: f["wall_s"])
    if bare["rows"] != dag["rows"]:
        raise RuntimeError(f"bare read {bare['rows']} rows, Dagster {dag['rows']}")
    rows = dag["rows"]
    ratio = bare["wall_s"] / dag["wall_s"]
    figures |= {
        "first_day": first,
        "last_day": last,
        "rows": rows,
        "runs": dag["runs"],
        "wall_s": round(dag["wall_s"], 2),
        "rows_per_s": round(rows / dag["wall_s"], 1),
        "peak_rss_mb": dag["peak_rss_mb"],
        "bare_wall_s": round(bare["wall_s"], 2),
        "bare_rows_per_s": round(rows / bare["wall_s"], 1),
        "bare_peak_rss_mb": bare["peak_rss_mb"],
        "ratio": round(ratio, 3),
        "cpu_s": round(dag["cpu_s"], 2),
        "bare_cpu_s": round(bare["cpu_s"], 2),
        "cpu_ratio": round(bare["cpu_s"] / dag["cpu_s"], 3),
        "dagster_bookkeeping_s": round(floor["wall_s"], 2),
        "dagster_bookkeeping_cpu_s": round(floor["cpu_s"], 2),
        "ratio_without_bookkeeping": round(bare["wall_s"] / (dag["wall_s"] - floor["wall_s"]), 3)
        if dag["wall_s"] > floor["wall_s"]
        else None,
        "repeats": args.repeats,
        "all_wall_s": [round(f["wall_s"], 2) for f in dags],
        "all_bare_wall_s": [round(f["wall_s"], 2) for f in bares],
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "instance": args.instance,
        **{var: os.environ.get(var, value) for var, value in DAGSTER_OPT_INS.items()},
        "cluster_distribution": dag["cluster_distribution"],
        "cpu_count": os.cpu_count(),
    }
    if args.drop_dir:  # system E's own files: a wall-time goal
        figures |= {"goal": "wall_s <= 20", "goal_met": dag["wall_s"] <= 20}
    else:
        figures |= {
            "goal": "at 10 000 x 90: ratio >= 0.7 and peak_rss_mb <= 4000",
            "goal_met": ratio >= 0.7 and dag["peak_rss_mb"] <= 4000,
        }
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
