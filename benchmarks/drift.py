"""Drift AUC of system B's three batches, and the time of a report over 100 000 rows.

Trains the champion's spec on the UCI rows (red + white), then compares batches from
``wine-send-batch``'s generator (``normal``: training rows; ``noisy``: first half of the rows,
+N(0.1, 0.01) on every feature; ``corrupted``: volatile acidity +3, citric acid +5,
alcohol = 20) with the training data through the same ``compare`` the ``wine_drift_report``
asset runs: ``auc_normal``, ``auc_noisy``, ``auc_corrupted`` (``--rows`` each, several seeds:
the figure is the mean, the spread is reported). ``report_s_100k`` times the whole comparison
with Eurybia's HTML report over ``--report-rows`` current rows; ``compile_s_100k`` is the same
without the report and ``plain_compile_s_100k`` is Eurybia's own ``SmartDrift.compile`` on the
same frames (the baseline). Goal: ``auc_normal`` <= 0.6, ``auc_corrupted`` >= 0.95,
``report_s_100k`` <= 30.

Prediction shift (``drift.prediction_shift``: Wasserstein distance, in quality points, of the
model's scores of a batch from its out-of-fold scores of its training data): the model is
fitted on 80 % of UCI (duplicate-aware split) with its calibration, and
``shift_same_distribution`` is the held-out 20 % as it is; ``shift_heldout_noisy`` /
``shift_heldout_corrupted`` the same rows through system B's transformations, and
``shift_noisy`` / ``shift_corrupted`` the batches above. ``shift_normal_training_rows`` is the
``normal`` batch: rows the model trained on, whose in-sample scores fully grown trees recall
(a real difference from unseen wines, not a distribution shift). Goal:
``shift_same_distribution`` <= 0.05 and every shifted batch above it.

    python benchmarks/drift.py --json FILE [--rows 2000 --seeds 3 --report-rows 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from figures import emit, timed


def measure(rows: int, seeds: int, report_rows: int) -> dict:
    from eurybia import SmartDrift

    from wine_assets.features import FEATURES, read_uci
    from wine_assets.monitoring.drift import DeployedModel, compare, drift_frame
    from wine_assets.monitoring.send_batch import make_batch
    from wine_assets.quality import model as wine_model
    from wine_assets.quality.trust import fit_trust
    from wine_assets.readings.simulator import apply_mode

    uci = read_uci().reset_index(drop=True)
    held_out_fold = wine_model.fold_assignments(uci, 5, 1, seed=0, dedup=True)[0] == 0
    train, held_out = uci[~held_out_fold], uci[held_out_fold].reset_index(drop=True)
    fitted = wine_model.fit(wine_model.CANDIDATE_SPEC, train)
    fitted.trust = fit_trust(wine_model.CANDIDATE_SPEC, train)
    baseline = drift_frame(train)
    figures: dict = {"rows": rows, "seeds": seeds, "baseline_rows": len(baseline)}
    for kind in ("normal", "noisy", "corrupted"):
        aucs, shifts = [], []
        for seed in range(seeds):
            current = drift_frame(pd.DataFrame(make_batch(kind, rows, seed=seed)))
            result = compare(current, baseline, fitted, report=False)
            aucs.append(result.auc)
            shifts.append(result.prediction_shift)
        figures[f"auc_{kind}"] = round(statistics.mean(aucs), 4)
        figures[f"auc_{kind}_range"] = [round(min(aucs), 4), round(max(aucs), 4)]
        name = "shift_normal_training_rows" if kind == "normal" else f"shift_{kind}"
        figures[name] = round(statistics.mean(shifts), 4)
    same = compare(drift_frame(held_out), baseline, fitted, report=False)
    figures["heldout_rows"] = len(held_out)
    figures["shift_same_distribution"] = round(same.prediction_shift, 4)
    figures["shift_same_distribution_ks"] = round(same.prediction_shift_ks, 4)
    rng = np.random.default_rng(0)
    for kind in ("noisy", "corrupted"):
        wines = [
            {"wine_type": t, **apply_mode(dict(zip(FEATURES, v, strict=True)), kind, rng)}
            for t, v in zip(
                held_out["wine_type"], held_out[list(FEATURES)].itertuples(index=False), strict=True
            )
        ]
        shifted = compare(drift_frame(pd.DataFrame(wines)), baseline, fitted, report=False)
        figures[f"shift_heldout_{kind}"] = round(shifted.prediction_shift, 4)
    shifted_figures = [
        figures[k] for k in ("shift_noisy", "shift_corrupted", "shift_heldout_noisy",
                             "shift_heldout_corrupted")
    ]  # fmt: skip
    shift_ok = figures["shift_same_distribution"] <= 0.05 and all(
        v > figures["shift_same_distribution"] for v in shifted_figures
    )
    big = drift_frame(pd.DataFrame(make_batch("normal", report_rows, seed=0)))
    result, report_s = timed(compare, big, baseline, fitted, report=True)
    _, compile_s = timed(compare, big, baseline, fitted, report=False)
    plain = SmartDrift(df_current=big, df_baseline=baseline, deployed_model=DeployedModel(fitted))
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        _, plain_s = timed(plain.compile, full_validation=False, sampling=True)
    figures |= {
        "report_rows": report_rows,
        "report_s_100k": round(report_s, 2),
        "compile_s_100k": round(compile_s, 2),
        "plain_compile_s_100k": round(plain_s, 2),
        "report_mb": round(len(result.report_html) / 1e6, 2),
        "auc_100k_normal": round(result.auc, 4),
        "cpu_count": os.cpu_count(),
        "goal": "auc_normal <= 0.6, auc_corrupted >= 0.95, report_s_100k <= 30, "
        "shift_same_distribution <= 0.05 < every shifted batch's",
        "shift_goal_met": bool(shift_ok),
        "goal_met": bool(
            figures["auc_normal"] <= 0.6
            and figures["auc_corrupted"] >= 0.95
            and report_s <= 30
            and shift_ok
        ),
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rows", type=int, default=2000, help="rows per normal/noisy/corrupted")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--report-rows", type=int, default=100_000)
    args = parser.parse_args()
    emit(measure(args.rows, args.seeds, args.report_rows), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
