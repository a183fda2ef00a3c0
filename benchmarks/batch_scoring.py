"""Batch scoring throughput: the barrel scorer catching up vs the bare model.

Seeds ``--rows`` barrels into a fresh SQLite readings store (UCI rows, resampled) and
promotes a champion, then times the barrel scorer (``wine-scorer``'s ``BarrelScorer``) scoring
every reading from position 0, page by page, as it does after an outage (``rows_per_s``: read
the history, screen, predict, commit the ledger, the write-back and the position), and
``wine_model.predict`` on the same rows in the same process (``bare_rows_per_s``: the forest's
own ``predict`` behind it). Goal: ratio >= 0.8. ``load_s``: reading the champion's files with
their sha256 check and loading them (skops), imports already done; goal <= 1 s.

With ``--repeats N`` both sides run N times, alternating (a repeat starts from an empty ledger:
the store then updates its predictions instead of inserting them), and each side's best time
counts: on a shared 2-core machine single runs of either side vary by 10-15 %.
``asset_phases_s`` splits the best scorer run into scoring, committing and the rest.

    python benchmarks/batch_scoring.py --json FILE --rows 1000000 [--repeats 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from figures import emit

REPO = Path(__file__).resolve().parents[1]


def timed(spent: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding the seconds each call takes to ``spent[name]``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - t0

    return call


def measure(rows: int, batch: int, repeats: int) -> dict:
    from platform_core.model_store import ModelStoreResource
    from platform_core.registry import ModelRegistry
    from platform_core.storage import PlatformStorage
    from wine_assets.features import FEATURES, read_uci
    from wine_assets.quality import MODEL_NAME
    from wine_assets.quality import model as wine_model
    from wine_assets.quality.assets import register_champion
    from wine_assets.quality.consumer import BarrelScorer, ChampionSource
    from wine_assets.quality.ledger import open_ledger
    from wine_assets.readings.schema import Reading
    from wine_assets.readings.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        storage = PlatformStorage.local(f"{tmp}/storage")
        url = f"sqlite:///{tmp}/readings.db"
        uci = read_uci()
        registry = ModelRegistry(storage, MODEL_NAME)
        mv = register_champion(storage, uci, "benchmark")
        storage.write_parquet("tables/wine_training_data.parquet", uci)

        rng = np.random.default_rng(0)
        sample = uci.iloc[rng.integers(0, len(uci), rows)].reset_index(drop=True)
        t0 = time.perf_counter()
        with open_store(url) as store:
            store.create()
            for start in range(0, rows, batch):
                part = sample.iloc[start : start + batch]
                store.put(
                    [
                        Reading(
                            barrel_id=f"b{start + i:08d}",
                            wine_type=wt,
                            temperature_c=14.0,
                            **dict(zip(FEATURES, vals, strict=True)),
                        )
                        for i, (wt, *vals) in enumerate(
                            part[["wine_type", *FEATURES]].itertuples(index=False)
                        )
                    ]
                )
            readings = store.history_frame(0, store.max_seq())
        seed_s = time.perf_counter() - t0
        asset_times, bare_times, load_times = [], [], []
        phases: list[dict[str, float]] = []
        for _ in range(repeats):
            with sqlite3.connect(f"{tmp}/readings.db") as conn:  # an empty ledger, position 0
                conn.execute("DROP TABLE IF EXISTS scoring_log")
                conn.execute("DELETE FROM meta WHERE key = 'scorer_cursor'")
            spent = {"score": 0.0, "commit": 0.0}
            t0 = time.perf_counter()
            with open_store(url) as store:
                ledger = open_ledger(store)
                source = ChampionSource(ModelStoreResource(storage=storage))
                scorer = BarrelScorer(store, ledger, source.current, page=100_000)
                scorer.rows = timed(spent, "score", scorer.rows)
                ledger.commit = timed(spent, "commit", ledger.commit)
                scored = 0
                while added := scorer.step():
                    scored += added
                scorer.close()
                ledger.close()
            asset_times.append(time.perf_counter() - t0)
            spent["other"] = asset_times[-1] - spent["score"] - spent["commit"]
            phases.append({k: round(v, 3) for k, v in spent.items()})
            snap = readings
            t0 = time.perf_counter()  # the bare model: load the champion's files and predict
            loaded = wine_model.from_files(registry.verify(mv))
            load_times.append(time.perf_counter() - t0)
            wine_model.predict(loaded, snap)
            bare_times.append(time.perf_counter() - t0)
            del loaded
        asset_s, bare_s = min(asset_times), min(bare_times)
    return {
        "rows": rows,
        "scored": scored,
        "asset_s": round(asset_s, 3),
        "bare_s": round(bare_s, 3),
        "rows_per_s": round(rows / asset_s, 1),
        "bare_rows_per_s": round(rows / bare_s, 1),
        "ratio": round(bare_s / asset_s, 3),
        "asset_runs_s": [round(t, 3) for t in asset_times],
        # The best scorer run's time in BarrelScorer.rows (screen, predict, intervals, the
        # ledger frame), in the ledger's commit, and the rest (reading, loading the champion).
        "asset_phases_s": phases[asset_times.index(asset_s)],
        "bare_runs_s": [round(t, 3) for t in bare_times],
        "load_s": round(min(load_times), 3),
        "seed_s": round(seed_s, 3),
        "goal": "rows_per_s / bare_rows_per_s >= 0.8; load_s <= 1",
        "goal_met": bare_s / asset_s >= 0.8 and min(load_times) <= 1.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000, help="readings per store write")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; the best counts")
    args = parser.parse_args()
    figures = measure(args.rows, args.batch, args.repeats)
    emit(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
