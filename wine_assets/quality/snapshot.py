"""Barrel snapshots and their quality predictions, one dynamic partition per snapshot.

The sensor names each snapshot after the highest update position it saw (``seq-000000001234``),
so a partition key is also the run key. Partition ``seq-N`` covers the window of changes
``(M, N]`` where ``seq-M`` is the partition before it: every reading written in the window is
scored, read from the store's append-only history, including readings that a newer one had
already replaced by the time the run looked. Windows never overlap and leave no gap, so a
change is never scored twice, nor skipped, however late a run starts.

Seqs are handed out without holes, so a window's history should hold every seq in it. On
DynamoDB a seq is reserved before its reading is written (and the seq index is eventually
consistent), so a reading can become visible a moment after a higher one: the snapshot re-reads
for a short while and the ``window_complete`` check names any seq still not visible.

A reading with a missing value or a value outside the training ranges is quarantined, not
scored: the snapshot keeps it with its reason (``quarantine_reason``), the ERROR checks fail and
name it, and the other barrels are still scored. One faulty sensor must not stop every
barrel's prediction, and the model is not asked about inputs it never saw.
"""

import time
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from wine_assets import freshness
from wine_assets.features import FEATURES, WINE_TYPES
from wine_assets.quality import model as wine_model
from wine_assets.quality import trust as wine_trust
from wine_assets.quality.scoring import score_and_write
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.schema import Reading
from wine_assets.readings.store import ReadingsStore, utc_now

GROUP = "wine_quality"
MODEL_NAME = "wine_quality"
snapshot_partitions = dg.DynamicPartitionsDefinition(name="wine_snapshots")
SNAPSHOT = dg.AssetKey("wine_sensor_snapshot")


def snapshot_key(seq: int) -> str:
    return f"seq-{seq:012d}"


def key_seq(key: str) -> int:
    """Inverse of ``snapshot_key``; a clear error for a hand-made key."""
    prefix, _, digits = key.partition("-")
    if prefix != "seq" or not digits.isdigit():
        raise dg.Failure(f"snapshot partition {key!r} is not of the form seq-<update position>")
    return int(digits)


#: Partition keys read per page while looking for the previous snapshot.
_PAGE = 200


def snapshot_window(context: dg.AssetExecutionContext) -> tuple[int, int]:
    """``(after, upto)``: from the previous snapshot partition's position to this one's.

    The previous partition is the newest-created one below this position: the sensor creates
    them in increasing order (its cursor only grows), so that is also the highest one below.
    Partitions are read newest first, a page at a time, so a new snapshot finds its predecessor
    on the first page however many partitions exist (docs/decisions/0003-snapshot-window-paging.md).
    """
    upto = key_seq(context.partition_key)
    cursor = None
    while True:
        page = context.instance.get_paginated_dynamic_partitions(
            snapshot_partitions.name, limit=_PAGE, ascending=False, cursor=cursor
        )
        for key in page.results:
            if key.startswith("seq-") and key[4:].isdigit() and int(key[4:]) < upto:
                return int(key[4:]), upto
        if not page.has_more:
            return 0, upto
        cursor = page.cursor


class SnapshotConfig(dg.Config):
    freshness_s: float = Field(
        default=300.0, description="Every barrel must have reported within this many seconds."
    )
    window_wait_s: float = Field(
        default=3.0,
        description="How long to re-read while some seq of the window is not visible yet.",
    )


def read_window(
    store: ReadingsStore, after: int, upto: int, wait_s: float
) -> tuple[list[Reading], list[Reading], list[int]]:
    """Current readings, the window's history and the window's seqs still not visible after
    re-reading the history for up to ``wait_s`` (current readings are read first: a reading
    that shows up later is then in the history, never lost)."""
    current = store.all()
    deadline = time.monotonic() + wait_s
    while True:
        window = store.history(after, upto)
        missing = sorted(set(range(after + 1, upto + 1)) - {r.seq for r in window})
        if not missing or time.monotonic() >= deadline:
            return current, window, missing
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def training_ranges(training: pd.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """Per wine type, the [min, max] of each feature in the training data."""
    return {
        t: {f: (float(g[f].min()), float(g[f].max())) for f in FEATURES}
        for t, g in training.groupby("wine_type")
    }


def screen_features(snapshot: pd.DataFrame, ranges: dict) -> tuple[pd.Series, dict]:
    """One comparison of every feature with its wine type's training range, read two ways:
    per row, why it must not be scored (missing or out-of-range features, else None), and per
    feature, the barrels whose value lies outside the range (the range check's metadata)."""
    values = snapshot[FEATURES].to_numpy(dtype=np.float64)
    lo = np.full(values.shape, -np.inf)
    hi = np.full(values.shape, np.inf)
    for wine_type in WINE_TYPES:
        rows = (snapshot["wine_type"] == wine_type).to_numpy()
        lo[rows] = [ranges[wine_type][f][0] for f in FEATURES]
        hi[rows] = [ranges[wine_type][f][1] for f in FEATURES]
    missing = np.isnan(values)
    with np.errstate(invalid="ignore"):
        outside = (values < lo) | (values > hi)
    reasons = np.full(len(values), None, dtype=object)
    for i in np.flatnonzero(missing.any(axis=1) | outside.any(axis=1)):  # only flagged rows
        reasons[i] = "; ".join(
            [f"{FEATURES[j]} missing" for j in np.flatnonzero(missing[i])]
            + [
                f"{FEATURES[j]} {values[i, j]:g} outside {lo[i, j]:g}-{hi[i, j]:g}"
                for j in np.flatnonzero(outside[i])
            ]
        )
    barrels = snapshot["barrel_id"].to_numpy()
    by_feature = {
        f: barrels[outside[:, j]].tolist() for j, f in enumerate(FEATURES) if outside[:, j].any()
    }
    return pd.Series(reasons, index=snapshot.index, dtype="string"), by_feature


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas", "parquet"},
    partitions_def=snapshot_partitions,
    freshness_policy=freshness.SCORING,
    description="Point-in-time copy of every barrel's current reading (history kept: one "
    "partition per snapshot); readings with missing or out-of-range values are kept with their "
    "quarantine_reason and not scored.",
    check_specs=[
        dg.AssetCheckSpec(
            "no_missing_values",
            asset=SNAPSHOT,
            description="ERROR names readings with a missing feature; they are quarantined "
            "(not scored), the other barrels are.",
        ),
        dg.AssetCheckSpec(
            "within_training_ranges",
            asset=SNAPSHOT,
            description="ERROR names readings outside the training ranges of their wine type; "
            "they are quarantined (not scored), the other barrels are.",
        ),
        dg.AssetCheckSpec("barrels_fresh", asset=SNAPSHOT),
        dg.AssetCheckSpec("window_complete", asset=SNAPSHOT),
    ],
)
def wine_sensor_snapshot(
    context: dg.AssetExecutionContext,
    config: SnapshotConfig,
    wine_training_data: pd.DataFrame,
    readings_store: ReadingsStoreResource,
):
    after, upto = snapshot_window(context)
    with readings_store.open() as store:
        current, window, not_visible = read_window(store, after, upto, config.window_wait_s)
    if not current:
        raise dg.Failure("the readings store holds no barrels: seed it with `wine-sim seed`")
    seen = {r.seq for r in current}
    # Every barrel's current reading, plus the window's readings a newer one has replaced.
    snap = pd.DataFrame(
        [r.to_dict() | {"current": True} for r in current]
        + [r.to_dict() | {"current": False} for r in window if r.seq not in seen]
    )
    snap["snapshot"] = context.partition_key
    snap["quarantine_reason"], bad = screen_features(snap, training_ranges(wine_training_data))
    in_window = snap["seq"].between(after + 1, upto)
    quarantined = snap["quarantine_reason"].notna()
    yield dg.Output(
        snap,
        metadata={
            "barrels": int(snap["current"].sum()),
            "window": f"({after}, {upto}]",
            "changes_in_window": int(in_window.sum()),
            "superseded_in_window": int((in_window & ~snap["current"]).sum()),
            "quarantined_in_window": int((in_window & quarantined).sum()),
            "quarantined_barrels": int(snap.loc[quarantined, "barrel_id"].nunique()),
            "max_seq": int(snap["seq"].max()),
            "by_type": dg.MetadataValue.json(
                snap.loc[snap["current"], "wine_type"].value_counts().to_dict()
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="window_complete",
        passed=not not_visible,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(not_visible)} of the window's {upto - after} writes not visible "
        f"after {config.window_wait_s:g}s (they will not be scored)",
        metadata={"not_visible_seqs": dg.MetadataValue.json(not_visible[:100])},
    )
    missing = {c: int(n) for c, n in snap[[*FEATURES, "temperature_c"]].isna().sum().items() if n}
    yield dg.AssetCheckResult(
        check_name="no_missing_values",
        passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{sum(missing.values())} missing values (those readings are not scored)",
        metadata={"missing": dg.MetadataValue.json(missing)},
    )
    n_bad = len({b for barrels in bad.values() for b in barrels})
    n_barrels = int(snap["current"].sum())
    yield dg.AssetCheckResult(
        check_name="within_training_ranges",
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{n_bad} of {n_barrels} barrels have readings outside the training "
        "ranges (those readings are not scored)",
        metadata={f: dg.MetadataValue.json(sorted(set(b))[:20]) for f, b in bad.items()}
        | {"barrels_out_of_range": n_bad},
    )
    now = datetime.now(UTC)
    current_rows = snap[snap["current"]]
    age = (now - pd.to_datetime(current_rows["updated_at"], utc=True)).dt.total_seconds()
    stale = current_rows.loc[age > config.freshness_s, "barrel_id"].tolist()
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
    freshness_policy=freshness.SCORING,
    deps=[dg.AssetKey("wine_quality_model_candidate")],
    description="The champion's quality for every reading written in the snapshot's window "
    "(superseded ones too); the newest per barrel is written back to the readings store with "
    "the model version.",
)
def barrel_quality_predictions(
    context: dg.AssetExecutionContext,
    wine_sensor_snapshot: pd.DataFrame,
    readings_store: ReadingsStoreResource,
    model_store: ModelStoreResource,
) -> dg.Output[pd.DataFrame]:
    champion, files = model_store.champion_files(MODEL_NAME)
    model = wine_model.from_files(files)
    after, upto = snapshot_window(context)
    snap = wine_sensor_snapshot
    window = snap[snap["seq"].between(after + 1, upto)].sort_values("seq")
    held = window["quarantine_reason"].notna()
    todo = window[~held] if held.any() else window  # no copy of a large clean window
    scored_at = utc_now()
    # One prediction per barrel goes to the store: the newest reading's. Current readings are
    # one per barrel, so only a window holding superseded readings can repeat a barrel.
    newest = (
        np.ones(len(todo), bool)
        if todo["current"].all()
        else ~todo["barrel_id"].duplicated(keep="last").to_numpy()
    )
    with (
        readings_store.open() as store,
        # A slower run of an older window cannot replace a newer score (the store refuses an
        # older reading_seq).
        store.prediction_batch(model_version=champion.version, scored_at=scored_at) as batch,
    ):
        quality = score_and_write(model, todo, newest, batch)
    # P(good) and the 90 % interval go to this table (NaN for a champion without a
    # calibration); the readings store keeps the score only.
    p_good, interval = wine_trust.annotate(model.trust, todo["wine_type"].to_numpy(), quality)
    out = pd.DataFrame(
        {
            "barrel_id": todo["barrel_id"].astype("string"),
            "wine_type": todo["wine_type"].astype("string"),
            "reading_seq": todo["seq"].astype("int64"),
            "reading_updated_at": todo["updated_at"].astype("string"),
            "predicted_quality": quality.astype("float64"),
            "p_good": p_good,
            "quality_low_90": interval[:, 0],
            "quality_high_90": interval[:, 1],
            "model_version": champion.version,
            "scored_at": scored_at,
        }
    )
    # A store batch shares one updated_at: parse each distinct stamp once, not 1M times.
    codes, stamps = pd.factorize(todo["updated_at"])
    since = pd.Timestamp(scored_at) - pd.to_datetime(stamps, utc=True)
    lag = since.total_seconds().to_numpy()[codes]
    context.log.info(
        f"{champion.label} scored {len(out)} changed barrels; {int(held.sum())} quarantined"
    )
    quarantined = window.loc[held, ["barrel_id", "seq", "quarantine_reason"]]
    return dg.Output(
        out,
        metadata={
            "scored": len(out),
            "window": f"({after}, {upto}]",
            "superseded_scored": len(out) - int(newest.sum()),
            "quarantined": int(held.sum()),
            "quarantined_readings": dg.MetadataValue.json(
                [
                    f"{b} seq {q}: {r}"
                    for b, q, r in quarantined.head(10).itertuples(index=False, name=None)
                ]
            ),
            "model_version": champion.version,
            "mean_quality": float(quality.mean()) if len(out) else 0.0,
            "write_to_score_p50_s": float(np.median(lag)) if len(out) else 0.0,
            "write_to_score_max_s": float(lag.max()) if len(out) else 0.0,
        },
    )
