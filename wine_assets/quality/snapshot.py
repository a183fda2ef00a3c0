"""The barrel history: every reading of a UTC day, and its prediction, in daily partitions.

The barrel scorer (``wine-scorer``, ``consumer.py``) scores each reading within about a second
of its write and records what it did in the scoring ledger (``ledger.py``); Dagster learns of
that work as materializations of these assets' partition for the day, which the scorer reports
(``report_runless_asset_event``) at most once a minute with the seq range it covers. One
partition per UTC day (``end_offset=1``: today is one, updated as the day goes), so the
partition set grows by one a day, whatever the write rate.

A run of ``barrel_snapshot`` for a day (``barrel_history_sensor``: today at most hourly, the
day before once it has closed) writes the day's tables from the ledger and runs the checks:

* ``writes_accounted`` (ERROR): every write of the day is in the ledger, scored or quarantined,
  and the day's seq range has no hole (a seq reserved and never written is named as ``lost``);
* ``no_missing_values`` / ``within_training_ranges`` (ERROR): readings with a missing feature
  or one outside their wine type's training range were quarantined (kept with their reason,
  not scored; the other barrels were scored);
* ``barrels_fresh`` (WARN, today only): every barrel reported within ``freshness_s``.
"""

import functools
from contextlib import closing
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from wine_assets import freshness
from wine_assets.features import FEATURES, WINE_TYPES
from wine_assets.quality import GROUP
from wine_assets.readings.resource import ReadingsStoreResource

SNAPSHOT = dg.AssetKey("wine_sensor_snapshot")
PREDICTIONS = dg.AssetKey("barrel_quality_predictions")
TRAINING = dg.AssetKey("wine_training_data")
#: One partition per UTC day; ``end_offset=1`` makes today a partition, updated as it goes.
history_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
#: How far past a closed day's last ledger row the check looks for a write of that day.
_TAIL = 1000


@functools.lru_cache(maxsize=4096)
def reading_day(updated_at: str) -> str:
    """The UTC day (``YYYY-MM-DD``) of a stored ``updated_at``: a reading's partition."""
    moment = datetime.fromisoformat(updated_at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date().isoformat()


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


class HistoryConfig(dg.Config):
    freshness_s: float = Field(
        default=300.0, description="Every barrel must have reported within this many seconds."
    )


def accounting(
    ledger_seqs: set[int], history: list, day: str, closed: bool, tail: list
) -> dict[str, list[int]]:
    """The day's writes the ledger lacks (``unaccounted``) and the seqs of its range that are
    neither in the ledger nor a write of another day (``holes``)."""
    other_day = {r.seq for r in history if reading_day(r.updated_at) != day}
    day_writes = {r.seq for r in history if reading_day(r.updated_at) == day}
    if closed:
        day_writes |= {r.seq for r in tail if reading_day(r.updated_at) == day}
    lo, hi = (min(ledger_seqs), max(ledger_seqs)) if ledger_seqs else (1, 0)
    holes = set(range(lo, hi + 1)) - ledger_seqs - other_day - day_writes
    return {"unaccounted": sorted(day_writes - ledger_seqs), "holes": sorted(holes)}


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas", "parquet"},
    partitions_def=history_partitions,
    freshness_policy=freshness.SCORING,
    description="Every barrel reading of the UTC day, with what the barrel scorer did with it "
    "(outcome scored / quarantined / lost, and the quarantine_reason). The scorer reports the "
    "day's progress as it goes (seq range in the metadata); a run writes the table and checks "
    "that every write of the day is accounted for.",
    check_specs=[
        dg.AssetCheckSpec(
            "writes_accounted",
            asset=SNAPSHOT,
            description="ERROR names the day's writes neither scored nor quarantined, and the "
            "seqs of the day's range with no reading (reserved, never written).",
        ),
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
    ],
)
def wine_sensor_snapshot(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    readings_store: ReadingsStoreResource,
):
    from wine_assets.quality.ledger import open_ledger

    day = context.partition_key
    today = datetime.now(UTC).date().isoformat()
    with readings_store.open() as store:
        with closing(open_ledger(store)) as ledger:
            rows = ledger.day(day)
        seqs = set(rows["seq"].tolist())
        lo, hi = (min(seqs), max(seqs)) if seqs else (1, 0)
        history = store.history(lo - 1, hi) if seqs else []
        tail = store.history(hi, hi + _TAIL) if seqs and day < today else []
        current = store.all() if day == today else []
    gaps = accounting(seqs, history, day, day < today, tail)
    readings = pd.DataFrame([r.to_dict() for r in history if r.seq in seqs])
    if readings.empty:
        readings = pd.DataFrame(columns=["seq", "barrel_id", "wine_type", *FEATURES])
    outcome = rows[["seq", "outcome", "quarantine_reason"]]
    snap = outcome.merge(readings, on="seq", how="left")
    snap = snap.astype({"barrel_id": "string", "wine_type": "string"})
    quarantined = snap[snap["outcome"] == "quarantined"]
    missing = quarantined["quarantine_reason"].str.contains("missing", na=False)
    outside = quarantined["quarantine_reason"].str.contains("outside", na=False)
    seq_range = f"[{lo}, {hi}]" if seqs else "(none)"
    yield dg.Output(
        snap,
        metadata={
            "seq_range": seq_range,
            "first_seq": lo if seqs else 0,
            "last_seq": hi if seqs else 0,
            "readings": int((snap["outcome"] != "lost").sum()),
            "quarantined": len(quarantined),
            "lost": int((snap["outcome"] == "lost").sum()),
            "barrels": int(snap["barrel_id"].nunique()),
            "day_closed": day < today,
        },
    )
    yield dg.AssetCheckResult(
        check_name="writes_accounted",
        passed=not gaps["unaccounted"] and not gaps["holes"],
        description=f"{len(gaps['unaccounted'])} writes of {day} neither scored nor "
        f"quarantined; {len(gaps['holes'])} seqs of {seq_range} with no reading",
        metadata={
            "seq_range": seq_range,
            "unaccounted_seqs": dg.MetadataValue.json(gaps["unaccounted"][:100]),
            "hole_seqs": dg.MetadataValue.json(gaps["holes"][:100]),
            "lost_seqs": dg.MetadataValue.json(
                snap.loc[snap["outcome"] == "lost", "seq"].head(100).tolist()
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_missing_values",
        passed=not missing.any(),
        description=f"{int(missing.sum())} readings with a missing value (quarantined, not scored)",
        metadata={
            "readings": dg.MetadataValue.json(
                [f"{b} seq {q}: {r}" for b, q, r in _named(quarantined[missing])]
            )
        },
    )
    bad_barrels = sorted(set(quarantined.loc[outside, "barrel_id"].dropna()))
    yield dg.AssetCheckResult(
        check_name="within_training_ranges",
        passed=not outside.any(),
        description=f"{int(outside.sum())} readings of {len(bad_barrels)} barrels outside the "
        "training ranges (quarantined, not scored)",
        metadata={
            "barrels_out_of_range": len(bad_barrels),
            "barrels": dg.MetadataValue.json(bad_barrels[:50]),
            "readings": dg.MetadataValue.json(
                [f"{b} seq {q}: {r}" for b, q, r in _named(quarantined[outside])]
            ),
        },
    )
    now = datetime.now(UTC)
    ages = {r.barrel_id: (now - datetime.fromisoformat(r.updated_at)).total_seconds()
            for r in current}  # fmt: skip
    stale = sorted(b for b, age in ages.items() if age > config.freshness_s)
    yield dg.AssetCheckResult(
        check_name="barrels_fresh",
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stale)} barrels silent for more than {config.freshness_s:g}s"
        if day == today
        else f"{day} is closed: freshness is today's check",
        metadata={
            "stale": dg.MetadataValue.json(stale[:50]),
            "oldest_s": float(max(ages.values(), default=0.0)),
        },  # fmt: skip
    )


def _named(rows: pd.DataFrame) -> list[tuple[str, int, str]]:
    return list(rows[["barrel_id", "seq", "quarantine_reason"]].head(10).itertuples(False, None))


@dg.asset(
    group_name=GROUP,
    kinds={"scikit-learn", "pandas", "parquet"},
    partitions_def=history_partitions,
    freshness_policy=freshness.SCORING,
    # The scorer serves the champion that wine_quality_champion decided.
    deps=[SNAPSHOT, dg.AssetKey("wine_quality_champion")],
    description="The champion's quality, P(good) and 90 % interval for every reading of the "
    "UTC day that was scored (superseded ones too), as the barrel scorer computed them within "
    "about a second of the write; each barrel's newest score is also in the readings store.",
)
def barrel_quality_predictions(
    context: dg.AssetExecutionContext, readings_store: ReadingsStoreResource
) -> dg.Output[pd.DataFrame]:
    from wine_assets.quality.ledger import open_ledger

    with readings_store.open() as store, closing(open_ledger(store)) as ledger:
        rows = ledger.day(context.partition_key)
    scored = rows[rows["outcome"] == "scored"]
    out = pd.DataFrame(
        {
            "barrel_id": scored["barrel_id"],
            "wine_type": scored["wine_type"],
            "reading_seq": scored["seq"].astype("int64"),
            "reading_updated_at": scored["reading_updated_at"],
            "predicted_quality": scored["predicted_quality"],
            "p_good": scored["p_good"],
            "quality_low_90": scored["quality_low_90"],
            "quality_high_90": scored["quality_high_90"],
            "model_version": scored["model_version"],
            "scored_at": scored["scored_at"],
        }
    ).reset_index(drop=True)
    lag = (
        pd.to_datetime(out["scored_at"], utc=True)
        - pd.to_datetime(out["reading_updated_at"], utc=True)
    ).dt.total_seconds()
    seqs = rows["seq"]
    return dg.Output(
        out,
        metadata={
            "seq_range": f"[{seqs.min()}, {seqs.max()}]" if len(seqs) else "(none)",
            "scored": len(out),
            "quarantined": int((rows["outcome"] == "quarantined").sum()),
            "model_versions": dg.MetadataValue.json(
                sorted(int(v) for v in out["model_version"].dropna().unique())
            ),
            "mean_quality": float(out["predicted_quality"].mean()) if len(out) else 0.0,
            "write_to_score_p50_s": float(lag.quantile(0.5)) if len(out) else 0.0,
            "write_to_score_p95_s": float(lag.quantile(0.95)) if len(out) else 0.0,
        },
    )
