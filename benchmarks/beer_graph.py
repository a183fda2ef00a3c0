"""Wall time of the whole beer graph through Dagster vs the same work as a bare script.

Both run as fresh processes against a local Punk API server over HTTP, with fresh storage:
``wall_s`` is ``dagster job execute … punkapi_full_crawl`` in a fresh instance, ``bare_wall_s``
is this script's ``--bare`` mode calling the same library functions with no Dagster.
Goal: wall_s <= 1.5 * bare_wall_s + 5.

    python benchmarks/beer_graph.py --json FILE [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

from platform_core.settings import data_dir, init_dagster_home

REPO = Path(__file__).resolve().parents[1]


def bare(api_url: str, storage_root: str) -> None:
    """Crawl, land, validate, clean, evaluate (same CV as the asset), fit, register, predict."""
    from beer_assets.ibu import model as ibu
    from beer_assets.ingest.clean import clean_beers
    from beer_assets.ingest.landing import iter_raw_pages, land
    from beer_assets.ingest.quarantine import sort_records
    from beer_assets.punkapi.client import PunkApiClient
    from platform_core.registry import ModelRegistry, Status
    from platform_core.storage import PlatformStorage

    storage = PlatformStorage.local(storage_root)
    result = PunkApiClient(api_url, max_requests_per_hour=None).crawl()
    land(storage, result, mode="crawl", run_id="bare")
    sorted_ = sort_records(iter_raw_pages(storage))
    clean = clean_beers(sorted_.valid)
    storage.write_parquet("tables/beers_clean.parquet", clean)
    storage.write_parquet("tables/punkapi_quarantine.parquet", sorted_.quarantine)
    for spec in (ibu.CANDIDATE_SPEC, ibu.SEED_SPEC):
        ibu.evaluate_seed_split(spec, clean)
        ibu.evaluate_cv(spec, clean, n_repeats=3, seed=0)
    model = ibu.fit(ibu.CANDIDATE_SPEC, clean)
    registry = ModelRegistry(storage, "beer_ibu")
    mv = registry.register(ibu.to_files(model), metrics={}, params={})
    registry.set_status(mv.version, Status.CHAMPION, "bare")
    preds = clean[["id", "name"]].assign(ibu_predicted=ibu.predict(model, clean))
    storage.write_parquet("tables/ibu_predictions.parquet", preds)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def measure(repeats: int) -> dict:
    from beer_assets.punkapi.server import serve

    dump = data_dir() / "punkapi" / "beers.json"
    if not dump.is_file():
        sys.exit(f"missing {dump}: set PLATFORM_DATA_DIR")
    dagster = str(Path(sys.executable).with_name("dagster"))
    walls, bares = [], []
    with serve(dump) as server:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                home = init_dagster_home(Path(tmp) / "home")
                env = {
                    **os.environ,
                    "DAGSTER_HOME": str(home),
                    "PLATFORM_STORAGE_ROOT": f"{tmp}/storage",
                    "PUNK_API_URL": server.url,
                    "PUNK_API_MAX_REQUESTS_PER_HOUR": "0",
                }
                walls.append(
                    timed(
                        [
                            dagster,
                            "job",
                            "execute",
                            "-m",
                            "beer_assets.definitions",
                            "-j",
                            "punkapi_full_crawl",
                        ],
                        env,
                    )
                )
                bares.append(
                    timed([sys.executable, __file__, "--bare", server.url, f"{tmp}/bare"], env)
                )
    wall, bare_wall = statistics.median(walls), statistics.median(bares)
    return {
        "wall_s": round(wall, 3),
        "bare_wall_s": round(bare_wall, 3),
        "ratio": round(wall / bare_wall, 3),
        "overhead_s": round(wall - bare_wall, 3),
        "walls": [round(w, 3) for w in walls],
        "bare_walls": [round(b, 3) for b in bares],
        "goal": "wall_s <= 1.5 * bare_wall_s + 5",
        "goal_met": wall <= 1.5 * bare_wall + 5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", nargs=2, metavar=("API_URL", "STORAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(*args.bare)
        return 0
    figures = measure(args.repeats)
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
