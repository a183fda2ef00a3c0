"""``wine_drift_report``: one Eurybia drift report per hour of the prediction log.

Each hourly partition compares the predictions logged in its window with the training data
the champion learned from, writes Eurybia's HTML report and a small JSON summary to platform
storage, and plots the drift AUC of the recent windows (system B's monitoring page). The
current hour is a partition too (``end_offset=1``): the sensor refreshes it as rows arrive.
"""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from platform_core.storage import PlatformStorage
from wine_assets.monitoring.drift import DRIFT_COLUMNS, compare, drift_frame
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.monitoring.thresholds import DriftThresholds, Thresholds
from wine_assets.quality import model as wine_model
from wine_assets.quality.snapshot import MODEL_NAME

GROUP = "wine_monitoring"
REPORT_PREFIX = "monitoring/wine_drift"
drift_partitions = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", end_offset=1)


def window_folder(start: datetime) -> str:
    """Storage folder of one window's files (no ``:`` in keys)."""
    return f"{REPORT_PREFIX}/{start.astimezone(UTC):%Y-%m-%dT%H%MZ}"


def summary_key(start: datetime) -> str:
    return f"{window_folder(start)}/summary.json"


class DriftReportConfig(dg.Config):
    min_rows: int = Field(
        default=30, description="Below this many logged rows the window is not compared."
    )
    max_rows: int = Field(
        default=100_000, description="Eurybia's sample size for the drift classifier."
    )
    history_windows: int = Field(default=168, description="Windows shown in the AUC plot.")


def read_summary(storage: PlatformStorage, start: datetime) -> dict | None:
    key = summary_key(start)
    return json.loads(storage.read_bytes(key)) if storage.exists(key) else None


def _history(storage: PlatformStorage, limit: int) -> pd.DataFrame:
    keys = [k for k in storage.list_keys(REPORT_PREFIX) if k.endswith("/summary.json")]
    rows = [json.loads(storage.read_bytes(k)) for k in keys[-limit:]]
    frame = pd.DataFrame(rows, columns=["window_start", "drift_auc", "rows"])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    return frame.dropna(subset=["drift_auc"]).sort_values("window_start")


def auc_plot(history: pd.DataFrame, thresholds: Thresholds, title: str) -> dg.MetadataValue:
    """Drift AUC per window with the WARN/ERROR thresholds (system B's monitoring graph)."""
    from platform_core.plots import figure_markdown, pyplot

    plt = pyplot()  # Agg backend, imported in the step, not when the code location loads

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(history["window_start"], history["drift_auc"], marker="o", lw=1.2)
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
    deps=[dg.AssetKey("wine_quality_model_candidate")],
    description="Eurybia SmartDrift of the predictions logged in each hour against the "
    "training data: drift AUC, per-feature tests, prediction shift, HTML report.",
)
def wine_drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    wine_training_data: pd.DataFrame,
    prediction_log: PredictionLogResource,
    model_store: ModelStoreResource,
    storage: PlatformStorage,
    drift_thresholds: DriftThresholds,
) -> dg.MaterializeResult:
    window = context.partition_time_window
    with prediction_log.open() as log:
        logged = log.window(window.start, window.end)
    summary: dict = {
        "partition": context.partition_key,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "rows": len(logged),
        "max_position": int(logged["position"].max()) if len(logged) else 0,
    }
    metadata: dict = {
        "rows": len(logged),
        "window": f"{window.start.isoformat()} - {window.end.isoformat()}",
    }
    if len(logged) < config.min_rows:
        summary["drift_auc"] = None
        storage.write_bytes(summary_key(window.start), json.dumps(summary).encode())
        context.log.info(f"{len(logged)} rows < min_rows {config.min_rows}: not compared")
        return dg.MaterializeResult(metadata={**metadata, "compared": False})

    champion, files = model_store.champion_files(MODEL_NAME)
    result = compare(
        drift_frame(logged),
        drift_frame(wine_training_data),
        wine_model.from_files(files),
        title=f"Wine prediction drift {context.partition_key} UTC",
        sample_size=config.max_rows,
    )
    report = storage.write_bytes(f"{window_folder(window.start)}/report.html", result.report_html)
    t = drift_thresholds.values()
    rejected = result.rejected(t.alpha)
    summary |= {
        "drift_auc": result.auc,
        "prediction_js_divergence": result.prediction_js_divergence,
        "mean_quality_current": result.mean_quality_current,
        "mean_quality_baseline": result.mean_quality_baseline,
        "pvalues": result.tests["pvalue"].to_dict(),
        "tests": result.tests["testname"].to_dict(),
        "model_version": champion.version,
        "report_uri": report.uri,
        "computed_at": datetime.now(UTC).isoformat(),
    }
    storage.write_bytes(summary_key(window.start), json.dumps(summary).encode())
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
    report_link = (
        dg.MetadataValue.url(report.uri)
        if storage.is_s3
        else dg.MetadataValue.path(str(storage.path(f"{window_folder(window.start)}/report.html")))
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "compared": True,
            "rows_baseline": result.rows_baseline,
            "drift_auc": result.auc,
            "prediction_js_divergence": result.prediction_js_divergence,
            "mean_predicted_quality": result.mean_quality_current,
            "mean_predicted_quality_training": result.mean_quality_baseline,
            "features_rejected": dg.MetadataValue.json(rejected),
            "features_rejected_share": len(rejected) / len(DRIFT_COLUMNS),
            "feature_tests": tests,
            "model_version": champion.version,
            "model_versions_logged": dg.MetadataValue.json(
                sorted(int(v) for v in logged["model_version"].unique())
            ),
            "report": report_link,
            "report_bytes": report.size_bytes,
            "drift_auc_history": auc_plot(history, t, f"drift AUC, last {len(history)} windows"),
        }
    )
