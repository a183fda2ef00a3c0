"""Barrel snapshots and their quality predictions, one dynamic partition per snapshot.

The sensor names each snapshot after the highest update position it saw (``seq-000000001234``),
so a partition key is also the run key: a change is never scored twice, nor skipped.
"""

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from wine_assets.features import FEATURES, WINE_TYPES
from wine_assets.quality import model as wine_model
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.schema import Prediction
from wine_assets.readings.store import utc_now

GROUP = "wine_quality"
MODEL_NAME = "wine_quality"
snapshot_partitions = dg.DynamicPartitionsDefinition(name="wine_snapshots")
SNAPSHOT = dg.AssetKey("wine_sensor_snapshot")


def snapshot_key(seq: int) -> str:
    return f"seq-{seq:012d}"


class SnapshotConfig(dg.Config):
    freshness_s: float = Field(
        default=300.0, description="Every barrel must have reported within this many seconds."
    )


def training_ranges(training: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """Per wine type, the [min, max] of each feature in the training data."""
    return {
        t: {f: (float(g[f].min()), float(g[f].max())) for f in FEATURES}
        for t, g in training.groupby("wine_type")
    }


def out_of_range(snapshot: pd.DataFrame, ranges: dict) -> dict[str, list[str]]:
    """Feature → barrels whose value lies outside that wine type's training range."""
    found: dict[str, list[str]] = {}
    for wine_type in WINE_TYPES:
        rows = snapshot[snapshot["wine_type"] == wine_type]
        for f in FEATURES:
            lo, hi = ranges[wine_type][f]
            bad = rows.loc[(rows[f] < lo) | (rows[f] > hi), "barrel_id"].tolist()
            if bad:
                found.setdefault(f, []).extend(bad)
    return found


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas", "parquet"},
    partitions_def=snapshot_partitions,
    description="Point-in-time copy of every barrel's current reading (history kept: one "
    "partition per snapshot).",
    check_specs=[
        dg.AssetCheckSpec("no_missing_values", asset=SNAPSHOT, blocking=True),
        dg.AssetCheckSpec("within_training_ranges", asset=SNAPSHOT, blocking=True),
        dg.AssetCheckSpec("barrels_fresh", asset=SNAPSHOT),
    ],
)
def wine_sensor_snapshot(
    context: dg.AssetExecutionContext,
    config: SnapshotConfig,
    wine_training_data: pd.DataFrame,
    readings_store: ReadingsStoreResource,
):
    with readings_store.open() as store:
        readings = store.all()
    snap = pd.DataFrame([r.to_dict() for r in readings])
    if snap.empty:
        raise dg.Failure("the readings store holds no barrels: seed it with `wine-sim seed`")
    snap["snapshot"] = context.partition_key
    yield dg.Output(
        snap,
        metadata={
            "barrels": len(snap),
            "max_seq": int(snap["seq"].max()),
            "by_type": dg.MetadataValue.json(snap["wine_type"].value_counts().to_dict()),
        },
    )
    missing = {c: int(n) for c, n in snap[[*FEATURES, "temperature_c"]].isna().sum().items() if n}
    yield dg.AssetCheckResult(
        check_name="no_missing_values",
        passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"missing": dg.MetadataValue.json(missing)},
    )
    bad = out_of_range(snap, training_ranges(wine_training_data))
    n_bad = len({b for barrels in bad.values() for b in barrels})
    yield dg.AssetCheckResult(
        check_name="within_training_ranges",
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{n_bad} of {len(snap)} barrels outside the training ranges",
        metadata={f: dg.MetadataValue.json(sorted(set(b))[:20]) for f, b in bad.items()}
        | {"barrels_out_of_range": n_bad},
    )
    now = datetime.now(UTC)
    age = (now - pd.to_datetime(snap["updated_at"], utc=True)).dt.total_seconds()
    stale = snap.loc[age > config.freshness_s, "barrel_id"].tolist()
    yield dg.AssetCheckResult(
        check_name="barrels_fresh",
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stale)} barrels silent for more than {config.freshness_s:g}s",
        metadata={"stale": dg.MetadataValue.json(stale[:50]), "oldest_s": float(age.max())},
    )


@dg.asset(
    group_name=GROUP,
    kinds={"scikit-learn", "pandas", "parquet"},
    partitions_def=snapshot_partitions,
    deps=[dg.AssetKey("wine_quality_model_candidate")],
    description="The champion's quality for every barrel whose reading changed since it was "
    "last scored; written back to the readings store with the model version.",
)
def barrel_quality_predictions(
    context: dg.AssetExecutionContext,
    wine_sensor_snapshot: pd.DataFrame,
    readings_store: ReadingsStoreResource,
    model_store: ModelStoreResource,
) -> dg.Output[pd.DataFrame]:
    champion, files = model_store.champion_files(MODEL_NAME)
    model = wine_model.from_files(files)
    with readings_store.open() as store:
        scored_seq = {p.barrel_id: p.reading_seq for p in store.predictions()}
        todo = wine_sensor_snapshot[
            wine_sensor_snapshot["seq"]
            > wine_sensor_snapshot["barrel_id"].map(scored_seq).fillna(0)
        ]
        quality = wine_model.predict(model, todo) if len(todo) else np.array([])
        scored_at = utc_now()
        preds = [
            Prediction(b, float(q), champion.version, int(s), scored_at)
            for b, q, s in zip(todo["barrel_id"], quality, todo["seq"], strict=True)
        ]
        store.write_predictions(preds)
    out = pd.DataFrame(
        {
            "barrel_id": todo["barrel_id"].astype("string"),
            "wine_type": todo["wine_type"].astype("string"),
            "reading_seq": todo["seq"].astype("int64"),
            "reading_updated_at": todo["updated_at"].astype("string"),
            "predicted_quality": quality.astype("float64"),
            "model_version": champion.version,
            "scored_at": scored_at,
        }
    )
    lag = (
        pd.to_datetime(out["scored_at"], utc=True)
        - pd.to_datetime(out["reading_updated_at"], utc=True)
    ).dt.total_seconds()
    context.log.info(f"{champion.label} scored {len(out)} changed barrels")
    return dg.Output(
        out,
        metadata={
            "scored": len(out),
            "unchanged_skipped": len(wine_sensor_snapshot) - len(out),
            "model_version": champion.version,
            "mean_quality": float(quality.mean()) if len(out) else 0.0,
            "write_to_score_p50_s": float(lag.median()) if len(out) else 0.0,
            "write_to_score_max_s": float(lag.max()) if len(out) else 0.0,
        },
    )
