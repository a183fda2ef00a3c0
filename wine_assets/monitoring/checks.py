"""Alerts on each drift report: drift AUC and the share of drifting features.

Both checks are partitioned like the report and read the summary the asset wrote: in a run
that carries ``wine/drift_positions`` (the sensor's), the summary of those positions, so a
check always judges the report of its own run; in a run without it (by hand), the hour's
newest report. Severity follows the thresholds crossed
(``DriftThresholds``): below WARN passes; WARN..ERROR fails as WARN; above ERROR fails as
ERROR. The test batches: ``normal`` passes; ``corrupted`` (three features far outside the
training ranges) fails the AUC check as ERROR; ``noisy`` (+N(0.1, 0.01) on every feature)
also fails it as ERROR on the 11-feature model: +0.1 moves density (sd 0.003) and chlorides
(sd 0.035) far outside what the model learned, so the classifier separates it perfectly.
"""

import dagster as dg

from platform_core.storage import PlatformStorage
from wine_assets.monitoring.assets import (
    POSITIONS_TAG,
    Positions,
    drift_partitions,
    hour_window,
    read_summary,
    wine_drift_report,
)
from wine_assets.monitoring.drift import DRIFT_COLUMNS, rejected_features
from wine_assets.monitoring.thresholds import DriftThresholds


def _severity(value: float, warn: float, error: float) -> tuple[bool, dg.AssetCheckSeverity]:
    if value >= error:
        return False, dg.AssetCheckSeverity.ERROR
    return value < warn, dg.AssetCheckSeverity.WARN


def _summary(context: dg.AssetCheckExecutionContext, storage: PlatformStorage) -> dict | None:
    """The report this check judges: its run's positions, else the hour's newest."""
    positions = Positions.parse(context.run.tags.get(POSITIONS_TAG))
    start, _ = hour_window(context.partition_key)
    return read_summary(storage, start, positions.label if positions else None)


def _covers(summary: dict) -> str:
    positions = summary.get("positions")
    return f" (positions {positions})" if positions else " (whole hour)"


def _not_compared(summary: dict | None) -> dg.AssetCheckResult | None:
    if summary is not None and summary.get("drift_auc") is not None:
        return None
    rows = 0 if summary is None else summary["rows"]
    return dg.AssetCheckResult(
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not evaluated: {rows} logged rows in the report, too few to compare",
        metadata={"rows": rows},
    )


@dg.asset_check(
    asset=wine_drift_report,
    partitions_def=drift_partitions,
    description="Drift AUC of the report below the WARN / ERROR thresholds "
    "(DRIFT_AUC_WARN, DRIFT_AUC_ERROR; 0.5 = indistinguishable from training data).",
)
def drift_auc_below_threshold(
    context: dg.AssetCheckExecutionContext,
    storage: PlatformStorage,
    drift_thresholds: DriftThresholds,
) -> dg.AssetCheckResult:
    summary = _summary(context, storage)
    skipped = _not_compared(summary)
    if skipped is not None:
        return skipped
    t = drift_thresholds.values()
    auc = float(summary["drift_auc"])
    passed, severity = _severity(auc, t.auc_warn, t.auc_error)
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=f"drift AUC {auc:.3f} (WARN from {t.auc_warn:g}, ERROR from {t.auc_error:g})"
        f" over {summary['rows']} logged predictions{_covers(summary)}",
        metadata={"drift_auc": auc, "rows": summary["rows"], "auc_warn": t.auc_warn,
                  "auc_error": t.auc_error, "positions": summary.get("positions") or ""},
    )  # fmt: skip


@dg.asset_check(
    asset=wine_drift_report,
    partitions_def=drift_partitions,
    description="Share of features whose univariate drift test rejects at DRIFT_TEST_ALPHA, "
    "below DRIFT_FEATURES_WARN / DRIFT_FEATURES_ERROR.",
)
def drifting_features_share(
    context: dg.AssetCheckExecutionContext,
    storage: PlatformStorage,
    drift_thresholds: DriftThresholds,
) -> dg.AssetCheckResult:
    summary = _summary(context, storage)
    skipped = _not_compared(summary)
    if skipped is not None:
        return skipped
    t = drift_thresholds.values()
    rejected = rejected_features(summary["pvalues"], t.alpha)
    share = len(rejected) / len(DRIFT_COLUMNS)
    passed, severity = _severity(share, t.share_warn, t.share_error)
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=f"{len(rejected)} of {len(DRIFT_COLUMNS)} features drift (p < {t.alpha:g})"
        f"{_covers(summary)}",
        metadata={"share": share, "drifting": dg.MetadataValue.json(rejected)},
    )


drift_checks = [drift_auc_below_threshold, drifting_features_share]
