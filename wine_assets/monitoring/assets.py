"""``wine_drift_report``: one Eurybia drift report per burst of predictions, filed by hour,
and its two checks (drift AUC, share of drifting features).

The partitions are the UTC hours that hold predictions (``YYYY-MM-DD-HH:00``, dynamic: the
drift sensor adds an hour when its first rows are reported, so there is no partition for an
hour without predictions, at most 8 760 a year). A sensor run carries the log positions it
reports in the ``wine/drift_positions`` tag (``first-last``, inclusive): its report compares
only those rows of its hour (the rows new since the previous report) with the training data
the champion learned from, so a batch sent after another one in the same hour gets a report
of its own. A run without the tag (launched by hand, a backfill) reports every row of its hour.

Each report writes Eurybia's self-contained HTML report and a JSON summary to
``monitoring/wine_drift/<hour>/<first>-<last>/`` (``.../hour/`` for a whole hour) and
``<hour>/latest.json`` (the hour's newest report), and plots the drift AUC of the recent
reports (the original service's monitoring page). The metadata's ``report`` is a link to
``wine-api``'s ``/reports/<hour>/<first>-<last>`` (``WINE_API_URL``), which serves it from
storage.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from platform_core.storage import PlatformStorage
from wine_assets import freshness
from wine_assets.monitoring import GROUP
from wine_assets.monitoring.drift import DRIFT_COLUMNS, compare, drift_frame, rejected_features
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.monitoring.report_html import external_resources
from wine_assets.monitoring.reports import (
    REPORT_PREFIX,
    WHOLE_HOUR,
    hour_window,
    summary_keys,
)
from wine_assets.monitoring.thresholds import DriftThresholds, Thresholds
from wine_assets.quality import MODEL_NAME
from wine_assets.quality import model as wine_model
from wine_assets.retention.archive import logged_window

#: The UTC hours holding predictions; the drift sensor adds them.
drift_partitions = dg.DynamicPartitionsDefinition(name="wine_drift_hours")
#: Run tag naming the log positions a report covers: ``first-last``, both included.
POSITIONS_TAG = "wine/drift_positions"


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (summary.json stays strict JSON)."""
    return None if math.isnan(value) else value


def hour_folder_name(start: datetime) -> str:
    """An hour's folder name in storage and in ``/reports`` URLs (no ``:``)."""
    return f"{start.astimezone(UTC):%Y-%m-%dT%H%MZ}"


def window_folder(start: datetime) -> str:
    """Storage folder of one hour's reports."""
    return f"{REPORT_PREFIX}/{hour_folder_name(start)}"


def report_folder(start: datetime, label: str) -> str:
    """Storage folder of one report: its hour, then its positions (or ``hour``)."""
    return f"{window_folder(start)}/{label}"


def latest_key(start: datetime) -> str:
    return f"{window_folder(start)}/latest.json"


@dataclass(frozen=True)
class Positions:
    """Log positions ``first..last`` (both included) that one report covers."""

    first: int
    last: int

    @property
    def label(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def bounds(self) -> tuple[int, int]:
        """``(after, upto]`` as ``PredictionLog.window`` takes them."""
        return self.first - 1, self.last

    @classmethod
    def parse(cls, tag: str | None) -> "Positions | None":
        if not tag:
            return None
        match = re.fullmatch(r"(\d+)-(\d+)", tag.strip())
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError(f"{POSITIONS_TAG}: expected FIRST-LAST positions, got {tag!r}")
        return cls(int(match[1]), int(match[2]))


class DriftReportConfig(dg.Config):
    min_rows: int = Field(
        default=30, description="Below this many logged rows the report does not compare."
    )
    max_rows: int = Field(
        default=100_000, description="Eurybia's sample size for the drift classifier."
    )
    history_windows: int = Field(default=168, description="Reports shown in the AUC plot.")


class WineApiResource(dg.ConfigurableResource):
    """Where a browser reaches ``wine-api`` (WINE_API_URL): report links point there."""

    url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the prediction service as the Dagster UI's user opens it.",
    )

    def report_url(self, start: datetime, label: str) -> str:
        return f"{self.url.rstrip('/')}/reports/{hour_folder_name(start)}/{label}"


def read_summary(
    storage: PlatformStorage, start: datetime, label: str | None = None
) -> dict | None:
    """The summary of one report of the hour starting at ``start``; without ``label``, of
    the hour's newest report."""
    key = f"{report_folder(start, label)}/summary.json" if label else latest_key(start)
    return json.loads(storage.read_bytes(key)) if storage.exists(key) else None


def _history(storage: PlatformStorage, limit: int) -> pd.DataFrame:
    rows = [json.loads(storage.read_bytes(k)) for k in summary_keys(storage)[-limit:]]
    frame = pd.DataFrame(rows, columns=["window_start", "last_logged_at", "drift_auc", "rows"])
    frame["at"] = pd.to_datetime(
        frame["last_logged_at"].fillna(frame["window_start"]), utc=True, format="ISO8601"
    )
    return frame.dropna(subset=["drift_auc"]).sort_values("at")


def auc_plot(history: pd.DataFrame, thresholds: Thresholds, title: str) -> dg.MetadataValue:
    """Drift AUC per report with the WARN/ERROR thresholds (as the original service plotted it)."""
    from platform_core.plots import figure_markdown, pyplot

    plt = pyplot()  # Agg backend, imported in the step, not when the code location loads

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(history["at"], history["drift_auc"], marker="o", lw=1.2)
    ax.axhline(thresholds.auc_warn, color="orange", ls="--", lw=1, label="WARN")
    ax.axhline(thresholds.auc_error, color="red", ls="--", lw=1, label="ERROR")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(ylim=(0.4, 1.02), ylabel="drift AUC", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.autofmt_xdate()
    return figure_markdown(fig)


@dg.asset(
    group_name=GROUP,
    kinds={"eurybia", "pandas", "html"},
    partitions_def=drift_partitions,
    freshness_policy=freshness.DRIFT,
    deps=[dg.AssetKey("wine_quality_champion")],
    description="Eurybia SmartDrift of logged predictions against the training data: one "
    "report per burst of new predictions (the sensor's runs, tag wine/drift_positions) or per "
    "whole hour (a run by hand); drift AUC, per-feature tests, prediction shift, HTML report.",
)
def wine_drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    wine_training_data: pd.DataFrame,
    prediction_log: PredictionLogResource,
    model_store: ModelStoreResource,
    storage: PlatformStorage,
    drift_thresholds: DriftThresholds,
    wine_api: WineApiResource,
) -> dg.MaterializeResult:
    start, end = hour_window(context.partition_key)
    positions = Positions.parse(context.run.tags.get(POSITIONS_TAG))
    label = positions.label if positions else WHOLE_HOUR
    with prediction_log.open() as log:  # rows pruned from the log are read from the archive
        logged = logged_window(log, storage, start, end, positions.bounds if positions else None)
    covered = (
        f"positions {positions.first}-{positions.last} of the hour"
        if positions
        else "every row of the hour"
    )
    summary: dict = {
        "partition": context.partition_key,
        "report": label,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "positions": positions.label if positions else None,
        "rows": len(logged),
        "first_position": int(logged["position"].min()) if len(logged) else None,
        "last_position": int(logged["position"].max()) if len(logged) else None,
        "first_logged_at": logged["logged_at"].min().isoformat() if len(logged) else None,
        "last_logged_at": logged["logged_at"].max().isoformat() if len(logged) else None,
        "run_id": context.run.run_id,
    }
    metadata: dict = {
        "rows": len(logged),
        "covers": covered,
        "positions": summary["positions"] or "",
        "logged_between": f"{summary['first_logged_at']} - {summary['last_logged_at']}",
        "window": f"{start.isoformat()} - {end.isoformat()}",
    }
    folder = report_folder(start, label)

    def keep(summary: dict) -> None:
        data = json.dumps(summary).encode()
        storage.write_bytes(f"{folder}/summary.json", data)
        storage.write_bytes(latest_key(start), data)

    if len(logged) < config.min_rows:
        summary["drift_auc"] = None
        keep(summary)
        context.log.info(f"{len(logged)} rows < min_rows {config.min_rows}: not compared")
        return dg.MaterializeResult(metadata={**metadata, "compared": False})

    champion, files = model_store.champion_files(MODEL_NAME)
    result = compare(
        drift_frame(logged),
        drift_frame(wine_training_data),
        wine_model.from_files(files),
        title=f"Wine prediction drift {context.partition_key} UTC ({covered})",
        sample_size=config.max_rows,
    )
    report = storage.write_bytes(f"{folder}/report.html", result.report_html)
    offline = not external_resources(result.report_html.decode("utf-8"))
    if not offline:
        context.log.warning("the HTML report still loads files from the internet")
    t = drift_thresholds.values()
    rejected = result.rejected(t.alpha)
    summary |= {
        "drift_auc": result.auc,
        "prediction_shift": _finite(result.prediction_shift),
        "prediction_shift_ks": _finite(result.prediction_shift_ks),
        "mean_quality_current": result.mean_quality_current,
        "mean_quality_baseline": result.mean_quality_baseline,
        "pvalues": result.tests["pvalue"].to_dict(),
        "tests": result.tests["testname"].to_dict(),
        "model_version": champion.version,
        "report_uri": report.uri,
        "report_url": wine_api.report_url(start, label),
        "computed_at": datetime.now(UTC).isoformat(),
    }
    keep(summary)
    history = _history(storage, config.history_windows)
    tests = dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "feature": f,
                    "test": str(r["testname"]),
                    "statistic": float(r["statistic"]),
                    "pvalue": float(r["pvalue"]),
                    "rejects": bool(r["pvalue"] < t.alpha),
                }
            )  # fmt: skip
            for f, r in result.tests.iterrows()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("feature", "string"),
                dg.TableColumn("test", "string", description="Eurybia's univariate test"),
                dg.TableColumn("statistic", "float"),
                dg.TableColumn("pvalue", "float"),
                dg.TableColumn("rejects", "bool", description=f"pvalue < alpha = {t.alpha:g}"),
            ]
        ),
    )
    report_file = (
        dg.MetadataValue.url(report.uri) if storage.is_s3 else dg.MetadataValue.path(
            str(storage.path(f"{folder}/report.html"))
        )
    )  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "compared": True,
            "rows_baseline": result.rows_baseline,
            "drift_auc": result.auc,
            # NaN (no out-of-fold scores kept with a champion older than them) is not JSON
            "prediction_shift": dg.MetadataValue.float(result.prediction_shift),
            "prediction_shift_ks": dg.MetadataValue.float(result.prediction_shift_ks),
            "mean_predicted_quality": result.mean_quality_current,
            "mean_predicted_quality_training": result.mean_quality_baseline,
            "features_rejected": dg.MetadataValue.json(rejected),
            "features_rejected_share": len(rejected) / len(DRIFT_COLUMNS),
            "feature_tests": tests,
            "model_version": champion.version,
            "model_versions_logged": dg.MetadataValue.json(
                sorted(int(v) for v in logged["model_version"].unique())
            ),
            "report": dg.MetadataValue.url(wine_api.report_url(start, label)),
            "report_file": report_file,
            "report_bytes": report.size_bytes,
            "report_offline": offline,
            "drift_auc_history": auc_plot(history, t, f"drift AUC, last {len(history)} reports"),
        }
    )


# Alerts on each drift report: drift AUC and the share of drifting features.
#
# Both checks are partitioned like the report and read the summary the asset wrote: in a run
# that carries ``wine/drift_positions`` (the sensor's), the summary of those positions, so a
# check always judges the report of its own run; in a run without it (by hand), the hour's
# newest report. Severity follows the thresholds crossed
# (``DriftThresholds``): below WARN passes; WARN..ERROR fails as WARN; above ERROR fails as
# ERROR. The test batches: ``normal`` passes; ``corrupted`` (three features far outside the
# training ranges) fails the AUC check as ERROR; ``noisy`` (+N(0.1, 0.01) on every feature)
# also fails it as ERROR on the 11-feature model: +0.1 moves density (sd 0.003) and chlorides
# (sd 0.035) far outside what the model learned, so the classifier separates it perfectly.


def _severity(value: float, warn: float, error: float) -> tuple[bool, dg.AssetCheckSeverity]:
    if value >= error:
        return False, dg.AssetCheckSeverity.ERROR
    return value < warn, dg.AssetCheckSeverity.WARN


def _summary(
    context: dg.AssetCheckExecutionContext, storage: PlatformStorage
) -> dict | dg.AssetCheckResult:
    """The report this check judges (its run's positions, else the hour's newest), or the
    check's result when that report compared nothing (too few rows)."""
    positions = Positions.parse(context.run.tags.get(POSITIONS_TAG))
    start, _ = hour_window(context.partition_key)
    summary = read_summary(storage, start, positions.label if positions else None)
    if summary is not None and summary.get("drift_auc") is not None:
        return summary
    rows = 0 if summary is None else summary["rows"]
    return dg.AssetCheckResult(
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not evaluated: {rows} logged rows in the report, too few to compare",
        metadata={"rows": rows},
    )


def _covers(summary: dict) -> str:
    positions = summary.get("positions")
    return f" (positions {positions})" if positions else " (whole hour)"


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
    if isinstance(summary, dg.AssetCheckResult):
        return summary
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
    if isinstance(summary, dg.AssetCheckResult):
        return summary
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
