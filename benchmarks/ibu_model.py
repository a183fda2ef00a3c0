"""IBU model accuracy: our candidate vs system C's model on the same split and the same CV folds.

Loads the Punk API dump from $PLATFORM_DATA_DIR/punkapi/beers.json (default: the repo's data/
folder), cleans it with ``clean_beers`` and scores both specs on

* system C's split (IBU-known rows in id order, test_size 0.33, random_state 42), and
* repeated 5-fold CV (``--repeats`` repeats, ``--seed`` picks the folds; both specs share them).

Goals: candidate seed-split MAE <= 15.0 and CV MAE <= 18.0; system C's spec reproduces its
published MAE 20.478 (+-0.01) on its split.  ``--check`` exits 1 when a goal fails.

    python benchmarks/ibu_model.py --json FILE [--seed N] [--repeats R] [--check]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from figures import emit, timed

from beer_assets.ibu import model as ibu
from beer_assets.ingest.clean import clean_beers
from platform_core import settings

GOAL_SEED_SPLIT_MAE = 15.0
GOAL_CV_MAE = 18.0
SEED_MAE_TOLERANCE = 0.01


def dump_path() -> Path:
    """The dump under PLATFORM_DATA_DIR (settings' default); exit with a hint if missing."""
    path = settings.data_dir() / "punkapi" / "beers.json"
    if not path.is_file():
        sys.exit(
            f"error: Punk API dump not found at {path}. Set PLATFORM_DATA_DIR to the folder "
            "holding punkapi/beers.json (e.g. PLATFORM_DATA_DIR=/work/shared/data)."
        )
    return path


def score(spec: ibu.ModelSpec, clean: Any, seed: int, repeats: int) -> dict[str, Any]:
    """Seed-split and CV metrics plus wall times for one spec."""
    split, split_s = timed(ibu.evaluate_seed_split, spec, clean)
    cv, cv_s = timed(ibu.evaluate_cv, spec, clean, n_splits=5, n_repeats=repeats, seed=seed)
    model, fit_s = timed(ibu.fit, spec, clean)
    top = sorted(ibu.feature_importance(model).items(), key=lambda kv: -kv[1])[:8]
    return {
        "seed_split": {
            k: split[k] for k in ("mae", "median_ae", "rmse", "r2", "n_train", "n_test")
        },
        "cv": {k: v for k, v in cv.items() if k != "fold_mae"} | {"fold_mae": cv["fold_mae"]},
        "timings_s": {"seed_split": split_s, "cv": cv_s, "fit_all_rows": fit_s},
        "top_feature_importance": dict(top),
    }


def run(seed: int, repeats: int) -> dict[str, Any]:
    """Everything the JSON report holds."""
    path = dump_path()
    records, load_s = timed(lambda: json.loads(path.read_text(encoding="utf-8")))
    clean, clean_s = timed(clean_beers, records)
    cand = score(ibu.CANDIDATE_SPEC, clean, seed, repeats)
    base = score(ibu.SEED_SPEC, clean, seed, repeats)
    goals = {
        "candidate_seed_split_mae_le_15": cand["seed_split"]["mae"] <= GOAL_SEED_SPLIT_MAE,
        "candidate_cv_mae_le_18": cand["cv"]["mae"] <= GOAL_CV_MAE,
        "seed_spec_reproduces_20_478": abs(base["seed_split"]["mae"] - ibu.SEED_SPLIT_MAE)
        <= SEED_MAE_TOLERANCE,
        "candidate_beats_seed_spec_on_cv": cand["cv"]["mae"] < base["cv"]["mae"],
    }
    return {
        "seed_split_mae": cand["seed_split"]["mae"],
        "seed_split_rmse": cand["seed_split"]["rmse"],
        "seed_split_r2": cand["seed_split"]["r2"],
        "cv_mae": cand["cv"]["mae"],
        "cv_mae_std": cand["cv"]["mae_std"],
        "cv_rmse": cand["cv"]["rmse"],
        "cv_r2": cand["cv"]["r2"],
        "seed_model_seed_split_mae": base["seed_split"]["mae"],
        "seed_model_seed_split_rmse": base["seed_split"]["rmse"],
        "seed_model_seed_split_r2": base["seed_split"]["r2"],
        "seed_model_cv_mae": base["cv"]["mae"],
        "seed_model_cv_mae_std": base["cv"]["mae_std"],
        "seed_model_cv_rmse": base["cv"]["rmse"],
        "seed_model_cv_r2": base["cv"]["r2"],
        "goals": goals,
        "all_goals_pass": all(goals.values()),
        "targets": {
            "seed_split_mae_max": GOAL_SEED_SPLIT_MAE,
            "cv_mae_max": GOAL_CV_MAE,
            "seed_model_seed_split_mae": ibu.SEED_SPLIT_MAE,
            "seed_model_tolerance": SEED_MAE_TOLERANCE,
        },
        "cv_config": {"n_splits": 5, "n_repeats": repeats, "seed": seed},
        "timings_s": {
            "load": load_s,
            "clean": clean_s,
            "candidate": cand["timings_s"],
            "seed_model": base["timings_s"],
        },
        "candidate": {"spec": ibu.CANDIDATE_SPEC.to_json(), **cand},
        "seed_model": {"spec": ibu.SEED_SPEC.to_json(), **base},
        "rows": {"clean": len(clean), "with_ibu": int(clean["ibu"].notna().sum())},
        "data": str(path),
        "python": platform.python_version(),
        "xgboost": ibu.xgboost.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, type=Path, help="write the report here")
    parser.add_argument("--seed", type=int, default=0, help="CV fold seed (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="CV repeats (default 3)")
    parser.add_argument("--check", action="store_true", help="exit 1 if any goal fails")
    args = parser.parse_args(argv)
    report = run(args.seed, args.repeats)
    emit(report, args.json)
    return 1 if args.check and not report["all_goals_pass"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
