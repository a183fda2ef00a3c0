"""Wine quality model accuracy: candidate vs systems A and B on Cortez et al.'s protocol.

Reads the UCI red and white files from $PLATFORM_DATA_DIR/wine_quality/ (default: the repo's
data/ folder) through ``wine_assets.features.read_uci`` and scores every spec on the same folds:

* plain repeated 5-fold CV (Cortez: 20 repeats; ``--repeats``), folds drawn per wine type;
* the same with duplicate-aware folds (identical feature+quality rows share a fold): ``dedup_*``.

Candidate and system A (XGBoost defaults, one model per type) report MAD and accuracy within
T = 0.25/0.5/1.0 on the unrounded output; system B (random-forest classifier of quality >= 6)
reports accuracy and ROC AUC.  The candidate's median-of-trees aggregation is scored from the
same fits as ``candidate_median_*`` for comparison (whole-score outputs; not the candidate).
``good_accuracy`` reads the regressor's score as the service does (``model.is_good``: >= 6).

What a winemaker is served beside the score (``wine_assets.quality.trust``), on the first
``--trust-repeats`` repeats of the same duplicate-aware folds, per wine type: P(good)'s Brier
score and expected calibration error (``good_brier``, ``good_ece``; 10 bins) next to system B's
classifier on the same folds (``system_b_good_brier``, ``system_b_good_ece``), and the 90 %
conformal interval's coverage and mean width in quality points (``interval90_coverage``,
``interval90_width``). In every training part the regressor is fitted and calibrated from its
own inner out-of-fold predictions, then scored on the held-out part (nested: 6 fits a fold).
Trust goals: ``good_ece`` <= 0.03, ``good_brier`` < system B's, coverage within 0.88-0.92.
``--check`` exits 1 when a goal fails.

    python benchmarks/wine_model.py --json FILE [--repeats N] [--trust-repeats K] [--seed S]
        [--check]
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from figures import emit, timed

from platform_core import settings
from wine_assets.features import WINE_TYPES, read_uci
from wine_assets.quality import model as wq
from wine_assets.quality.trust import CONFIDENCE, ECE_BINS, evaluate_trust

#: Goals from the issue, per wine type: (metric, "max" | "min", bound).
GOALS: dict[str, list[tuple[str, str, float]]] = {
    "red": [("mad", "max", 0.37), ("acc_t05", "min", 0.71), ("acc_t10", "min", 0.92)]
    + [("dedup_mad", "max", 0.45)],
    "white": [("mad", "max", 0.38), ("acc_t05", "min", 0.70)],
}
REGRESSION_METRICS = ("mad", "acc_t025", "acc_t05", "acc_t10", "good_accuracy", "good_auc")


def data_dir() -> Path:
    """PLATFORM_DATA_DIR (settings' default); exit with a hint when the UCI files are missing."""
    base = settings.data_dir()
    missing = [
        str(path)
        for t in WINE_TYPES
        if not (path := base / "wine_quality" / f"winequality-{t}.csv").is_file()
    ]
    if missing:
        sys.exit(
            f"error: wine quality data not found: {', '.join(missing)}. Set PLATFORM_DATA_DIR "
            "to the folder holding wine_quality/winequality-{red,white}.csv "
            "(e.g. PLATFORM_DATA_DIR=/work/shared/data)."
        )
    return base


def _pick(scores: dict[str, float], prefix: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """``metrics`` and their ``_std`` from one scope of an evaluate_cv result, renamed."""
    out = {}
    for name in metrics:
        out[f"{prefix}{name}"] = scores[name]
        out[f"{prefix}{name}_std"] = scores[f"{name}_std"]
    return out


def _goals(figures: dict[str, float], wine: str) -> dict[str, bool]:
    out = {}
    for metric, sense, bound in GOALS[wine]:
        value = figures[metric]
        out[f"{metric}_{'le' if sense == 'max' else 'ge'}_{bound}"] = (
            value <= bound if sense == "max" else value >= bound
        )
    return out


TRUST_METRICS = (
    "good_brier",
    "good_ece",
    "good_accuracy_p05",
    "system_b_good_brier",
    "system_b_good_ece",
    "interval90_coverage",
    "interval90_width",
)


def _trust_goals(figures: dict[str, float]) -> dict[str, bool]:
    return {
        "good_ece_le_0.03": figures["good_ece"] <= 0.03,
        "good_brier_lt_system_b": figures["good_brier"] < figures["system_b_good_brier"],
        "interval90_coverage_in_0.88_0.92": 0.88 <= figures["interval90_coverage"] <= 0.92,
    }


def run(seed: int, repeats: int, trust_repeats: int = 5) -> dict[str, Any]:
    """Everything the JSON report holds."""
    base = data_dir()
    df, load_s = timed(read_uci, base)
    cv = {"n_splits": 5, "n_repeats": repeats, "seed": seed}
    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {"load": load_s}
    for label, spec, extra in [
        ("candidate", wq.CANDIDATE_SPEC, {"aggregates": ("median",)}),
        ("system_a", wq.SYSTEM_A_SPEC, {}),
        ("system_b", wq.SYSTEM_B_SPEC, {}),
    ]:
        for dedup in (False, True):
            key = f"{label}{'_dedup' if dedup else ''}"
            print(f"[wine_model] {key}: {repeats}x5 CV ...", file=sys.stderr, flush=True)
            results[key], timings[f"{key}_cv"] = timed(
                wq.evaluate_cv,
                spec,
                df,
                dedup=dedup,
                return_predictions=(key == "candidate"),
                **cv,
                **extra,
            )
        fitted, timings[f"{label}_fit_all_rows"] = timed(wq.fit, spec, df)
        files, timings[f"{label}_to_files"] = timed(wq.to_files, fitted)
        results[label]["model_bytes"] = sum(len(b) for b in files.values())
        if label == "candidate":
            _, timings["candidate_predict_all_rows"] = timed(wq.predict, fitted, df)

    print(f"[wine_model] trust: {trust_repeats}x5 nested CV ...", file=sys.stderr, flush=True)
    trust_figures, timings["trust_cv"] = timed(
        evaluate_trust,
        wq.CANDIDATE_SPEC,
        df,
        n_repeats=trust_repeats,
        seed=seed,
        baseline=wq.SYSTEM_B_SPEC,
    )
    cand, cand_d = results["candidate"], results["candidate_dedup"]
    report: dict[str, Any] = {}
    for wine in [*WINE_TYPES, "overall"]:
        figures: dict[str, Any] = {}
        figures |= _pick(cand[wine], "", REGRESSION_METRICS)
        figures |= _pick(cand_d[wine], "dedup_", REGRESSION_METRICS)
        figures |= _pick(results["system_a"][wine], "system_a_", REGRESSION_METRICS)
        figures |= _pick(results["system_a_dedup"][wine], "system_a_dedup_", REGRESSION_METRICS)
        figures |= _pick(results["system_b"][wine], "system_b_", ("accuracy", "auc"))
        figures |= _pick(results["system_b_dedup"][wine], "system_b_dedup_", ("accuracy", "auc"))
        median, median_d = cand["by_aggregate"]["median"], cand_d["by_aggregate"]["median"]
        figures |= _pick(median[wine], "candidate_median_", REGRESSION_METRICS)
        figures |= _pick(median_d[wine], "candidate_median_dedup_", REGRESSION_METRICS)
        figures["candidate_beats_system_a_mad"] = figures["mad"] < figures["system_a_mad"]
        figures["candidate_beats_system_a_dedup_mad"] = (
            figures["dedup_mad"] < figures["system_a_dedup_mad"]
        )
        if wine in trust_figures:
            figures |= {k: trust_figures[wine][k] for k in TRUST_METRICS}
            figures["trust_goals"] = _trust_goals(figures)
            figures["all_trust_goals_pass"] = all(figures["trust_goals"].values())
        if wine in GOALS:
            figures["goals"] = _goals(figures, wine)
            figures["all_goals_pass"] = all(figures["goals"].values())
            median_view = {
                "mad": figures["candidate_median_mad"],
                "acc_t05": figures["candidate_median_acc_t05"],
                "acc_t10": figures["candidate_median_acc_t10"],
                "dedup_mad": figures["candidate_median_dedup_mad"],
            }
            figures["goals_if_median_aggregate"] = _goals(median_view, wine)
            rows = (df["wine_type"] == wine).to_numpy()
            first_repeat = cand["predictions"][0, rows]
            figures["confusion_first_repeat"] = {
                str(true): {str(p): int(n) for p, n in row.items()}
                for true, row in wq.confusion(df.loc[rows, "quality"], first_repeat).iterrows()
            }
        report[wine] = figures

    for result in results.values():
        result.pop("predictions", None)
        result.pop("predictions_by_aggregate", None)
    report["all_goals_pass"] = all(report[w]["all_goals_pass"] for w in GOALS)
    report["all_trust_goals_pass"] = all(report[w]["all_trust_goals_pass"] for w in WINE_TYPES)
    report["trust_config"] = {
        "repeats": trust_repeats,
        "folds": "the first repeats of the dedup folds; calibration by inner 5-fold dedup CV",
        "confidence": CONFIDENCE,
        "ece_bins": ECE_BINS,
    }
    report["goals"] = {w: {f"{m}_{s}": b for m, s, b in g} for w, g in GOALS.items()}
    report["cv_config"] = cv | {"folds": "per wine type; dedup groups = type+features+quality"}
    report["folds_shared"] = {
        "plain": len({results[k]["folds_sha256"] for k in ("candidate", "system_a", "system_b")})
        == 1,
        "dedup": len(
            {results[f"{k}_dedup"]["folds_sha256"] for k in ("candidate", "system_a", "system_b")}
        )
        == 1,
    }
    report["timings_s"] = timings | {f"{k}_fit_total": r["fit_seconds"] for k, r in results.items()}
    report["specs"] = {
        "candidate": wq.CANDIDATE_SPEC.to_json(),
        "system_a": wq.SYSTEM_A_SPEC.to_json(),
        "system_b": wq.SYSTEM_B_SPEC.to_json(),
    }
    report["model_bytes"] = {k: results[k]["model_bytes"] for k in ("candidate", "system_a")} | {
        "system_b": results["system_b"]["model_bytes"]
    }
    report["rows"] = {w: int((df["wine_type"] == w).sum()) for w in WINE_TYPES}
    report["dedup_groups"] = cand_d["n_groups"]
    report["data"] = str(base / "wine_quality")
    report["versions"] = {
        "python": platform.python_version(),
        "scikit-learn": metadata.version("scikit-learn"),
        "xgboost": metadata.version("xgboost"),
    }
    return report


def summary(report: dict[str, Any]) -> str:
    """A few lines for humans (stderr); the JSON is the record."""
    lines = []
    for wine in WINE_TYPES:
        r = report[wine]
        lines.append(
            f"{wine:5s} candidate mad {r['mad']:.3f} t025 {r['acc_t025']:.3f} "
            f"t05 {r['acc_t05']:.3f} t10 {r['acc_t10']:.3f} dedup_mad {r['dedup_mad']:.3f} | "
            f"A mad {r['system_a_mad']:.3f} t05 {r['system_a_acc_t05']:.3f} "
            f"dedup_mad {r['system_a_dedup_mad']:.3f} | "
            f"B acc {r['system_b_accuracy']:.3f} auc {r['system_b_auc']:.3f} | "
            f"goals {'PASS' if r['all_goals_pass'] else 'FAIL'} "
            f"{[k for k, ok in r['goals'].items() if not ok]}"
        )
        lines.append(
            f"{wine:5s} P(good) brier {r['good_brier']:.4f} (B {r['system_b_good_brier']:.4f}) "
            f"ece {r['good_ece']:.4f} (B {r['system_b_good_ece']:.4f}) | interval90 coverage "
            f"{r['interval90_coverage']:.3f} width {r['interval90_width']:.2f} | trust goals "
            f"{'PASS' if r['all_trust_goals_pass'] else 'FAIL'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, type=Path, help="write the report here")
    parser.add_argument("--seed", type=int, default=0, help="CV fold seed (default 0)")
    parser.add_argument("--repeats", type=int, default=20, help="CV repeats (default 20)")
    parser.add_argument(
        "--trust-repeats", type=int, default=5, help="repeats of the nested P(good)/interval CV"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any goal fails")
    args = parser.parse_args(argv)
    report = run(args.seed, args.repeats, min(args.trust_repeats, args.repeats))
    emit(report, args.json)
    print(summary(report), file=sys.stderr)
    failed = not (report["all_goals_pass"] and report["all_trust_goals_pass"])
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
