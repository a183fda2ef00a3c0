"""Sensor profiles as daily-partitioned assets: temperatures → features → model → assignments.

Each asset handles the run's whole partition range in one step (single-run backfills) and
keeps one parquet file per day. Every stage reports rows, columns, memory (the frame's and the
process's peak) and, for the model and the assignments, the cluster distribution as a plot.
"""

import functools
import logging
import resource
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from platform_core.champion import Headline, build_champion_asset
from platform_core.model_store import ModelStoreResource
from platform_core.plots import bar_plot
from platform_core.registry import ModelVersion, PromotionDecision
from platform_core.storage import PlatformStorage
from platform_core.tables import table_metadata
from wine_assets import freshness
from wine_assets.profiles import GROUP, MODEL_NAME, cluster_predictions
from wine_assets.profiles.drop import DropFileError, list_drop_files, read_drop_file
from wine_assets.profiles.features import (
    DESCRIPTIONS,
    MODEL_FEATURES,
    daily_features,
    model_rows,
    nonfinite_model_inputs,
)
from wine_assets.profiles.generate import is_synthetic
from wine_assets.profiles.model import ProfileModel, assign, cluster_sizes, fit
from wine_assets.profiles.partitions import (
    ASSIGNMENTS,
    CHAMPION,
    FEATURES,
    MODEL,
    TEMPERATURES,
    daily_partitions,
    day_key,
    each_day,
    read_day,
    read_days,
    run_days,
    run_window,
    single_run,
)
from wine_assets.profiles.readings_source import hourly_temperatures
from wine_assets.profiles.resources import SensorProfilesSettings
from wine_assets.readings.resource import ReadingsStoreResource

#: The four daily assets: one partition a day, a range of days in one run, one freshness.
daily_asset = functools.partial(
    dg.asset,
    group_name=GROUP,
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    freshness_policy=freshness.PROFILES,
)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stage_metadata(frame: pd.DataFrame, storage: PlatformStorage, asset: dg.AssetKey, days: list):
    """Rows/columns/schema/memory of the run's frame, where its files are, and the peak RSS."""
    folder = storage.uri(f"tables/{'/'.join(asset.path)}")
    descriptions = DESCRIPTIONS if asset == FEATURES else None
    return table_metadata(frame, folder, descriptions) | {
        "days": len(days),
        "first_day": days[0],
        "last_day": days[-1],
        "process_peak_rss_mb": peak_rss_mb(),
    }


#: Lists longer than this are cut in metadata: a range run's metadata is copied onto every day's
#: event (Dagster has no per-partition metadata), so a per-day list would grow with days².
LIST_CAP = 10


def capped(names: list[str]) -> list[str]:
    """``names``, or its first ``LIST_CAP`` and a count of the rest."""
    if len(names) <= LIST_CAP:
        return names
    return [*names[:LIST_CAP], f"... and {len(names) - LIST_CAP} more"]


def per_day(counts: dict[str, int]) -> dg.MetadataValue:
    """A per-day count as its range (lowest, median, highest, on which days): compact on every
    day's event however long the run; the full table goes to the run's log once."""
    days = sorted(counts, key=lambda d: (counts[d], d))
    return dg.MetadataValue.json(
        {
            "days": len(days),
            "min": counts[days[0]],
            "min_day": days[0],
            "median": float(np.median(list(counts.values()))),
            "max": counts[days[-1]],
            "max_day": days[-1],
        }
    )


def split_by_day(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of each day present in ``frame`` (one sort, none for a one-day file)."""
    day_of_row = frame["timestamp"].to_numpy().astype("datetime64[D]")
    first, last = day_of_row.min(), day_of_row.max()
    if first == last:
        return {str(first): frame}
    order = np.argsort(day_of_row, kind="stable")
    sorted_days = day_of_row[order]
    out = {}
    for d in np.unique(sorted_days):
        lo, hi = np.searchsorted(sorted_days, [d, d + 1])
        out[str(d)] = frame.iloc[order[lo:hi]].reset_index(drop=True)
    return out


#: A rejected file's reason is cut to this many characters in metadata (a reader's message can
#: be long, and the list is copied onto every day's event); the run's log has it whole.
REASON_CAP = 200


def drop_source(
    settings: SensorProfilesSettings,
    storage: PlatformStorage,
    days: list[str],
    start: datetime,
    end: datetime,
    log: logging.Logger | dg.DagsterLogManager | None = None,
) -> tuple[dict[str, list[pd.DataFrame]], pd.DataFrame, dict]:
    """Each day's rows from the drop files (file by file: no one big concat), an empty frame
    of their types, and the files used and rejected; on S3 through the storage resource's
    connection.

    A file that cannot be read (:class:`DropFileError`: unreadable, missing column, a bad
    timestamp, sensor id or temperature) is rejected whole, never half-used: a warning names
    the file and the reason, and the metadata counts it (``files_rejected``) and names it
    (``files_rejected_list``, ``file: reason``, capped). The drop sensor reports such a file
    once and marks it seen, but it stays in the drop location, so every later run skips it
    again (and reports it again) instead of failing until someone deletes it.

    The run fails, as before, only when no file gives readings for its days: then the
    rejected files are named in the failure, as they may be the ones that held them. Days no
    usable file covers are written empty and flagged (``empty_days``), as before; a
    location that cannot be listed still fails.
    """
    files = list_drop_files(settings.drop_location(storage.s3))
    parts: dict[str, list[pd.DataFrame]] = {d: [] for d in days}
    used, rejected, empty = [], [], None
    for f in files:
        try:
            frame = read_drop_file(f, start, end)
        except DropFileError as exc:
            reason = str(exc).removeprefix(f"{f.name}: ")
            if log is not None:
                log.warning(f"drop file {f.name} rejected, not used: {reason}")
            rejected.append(f"{f.name}: {reason}")
            continue
        if len(frame):
            used.append(f.name)
            for day, part in split_by_day(frame).items():
                parts[day].append(part)
            empty = frame.iloc[0:0]
    rejects = {
        "files_rejected": len(rejected),
        "files_rejected_list": dg.MetadataValue.json(
            capped([r if len(r) <= REASON_CAP else r[: REASON_CAP - 3] + "..." for r in rejected])
        ),
    }
    if empty is None:
        why = f"; rejected: {capped(rejected)}" if rejected else ""
        raise dg.Failure(
            f"no readings for {days[0]}..{days[-1]} in {settings.drop_dir} "
            f"({len(files)} files looked at, {len(rejected)} rejected){why}",
            metadata=rejects,
        )
    origin = {
        "drop_location": str(settings.drop_dir),
        # the generated month of a fresh machine, not measured readings (see generate.py)
        "synthetic": is_synthetic(settings.drop_dir),
    }
    return parts, empty, {"files_used": dg.MetadataValue.json(capped(used))} | rejects | origin


def readings_source(
    readings_store: ReadingsStoreResource, days: list[str], start: datetime, end: datetime
) -> tuple[dict[str, list[pd.DataFrame]], pd.DataFrame, dict]:
    """Each day's hourly rows from the readings store's history (barrel = sensor, text id),
    an empty frame of their types, and how many readings they average."""
    with readings_store.open() as store:
        history = store.temperature_history(start, end)
    if history.empty:
        raise dg.Failure(f"no readings for {days[0]}..{days[-1]} in the readings store ({store!r})")
    hourly = hourly_temperatures(history)
    parts: dict[str, list[pd.DataFrame]] = {d: [] for d in days}
    for day, part in split_by_day(hourly).items():
        parts[day].append(part)
    return parts, hourly.iloc[0:0], {"store_readings_used": len(history)}


@daily_asset(
    kinds={"pandas", "parquet"},
    description="Hourly readings (sensor_id, timestamp, temperature) of each day, from the drop "
    "location (PROFILES_DROP_DIR) or, with PROFILES_SOURCE=readings, the readings store's "
    "history averaged per barrel and hour; NaN/inf kept as dropped, for the features to count.",
)
def sensor_temperatures(
    context: dg.AssetExecutionContext,
    sensor_profiles: SensorProfilesSettings,
    readings_store: ReadingsStoreResource,
    storage: PlatformStorage,
) -> dg.MaterializeResult:
    days = run_days(context)
    start, end = run_window(context)
    source = sensor_profiles.source_name()
    if source == "readings":
        parts, empty, source_metadata = readings_source(readings_store, days, start, end)
    else:
        parts, empty, source_metadata = drop_source(
            sensor_profiles, storage, days, start, end, context.log
        )

    def one_day(day: str) -> pd.DataFrame:
        chunks = parts.pop(day)  # a day's chunks are released once the day is written
        temps = chunks[0] if len(chunks) == 1 else pd.concat([empty, *chunks], ignore_index=True)
        storage.write_parquet(day_key(TEMPERATURES, day), temps)
        return temps

    rows_per_day: dict[str, int] = {}
    sensors, nan, inf, memory = [], 0, 0, 0
    for day, temps in zip(days, each_day(days, one_day), strict=True):
        values = temps["temperature"].to_numpy()
        rows_per_day[day] = len(temps)
        sensors.append(temps["sensor_id"].unique())
        nan, inf = nan + int(np.isnan(values).sum()), inf + int(np.isinf(values).sum())
        memory += int(temps.memory_usage(deep=True).sum())
    context.log.info(f"rows per day: {rows_per_day}")
    empty_days = [d for d, n in rows_per_day.items() if not n]
    return dg.MaterializeResult(
        metadata=stage_metadata(temps, storage, TEMPERATURES, days)
        | {
            "dagster/row_count": sum(rows_per_day.values()),
            "memory_mb": round(memory / 2**20, 3),
            "source": source,
            **source_metadata,
            "sensors": len(pd.unique(np.concatenate(sensors))),
            "nan_values": nan,
            "inf_values": inf,
            "empty_days": len(empty_days),
            "empty_days_list": dg.MetadataValue.json(capped(empty_days)),
            "rows_per_day": per_day(rows_per_day),
        }
    )


class FeaturesConfig(dg.Config):
    lookback_days: int = Field(
        default=7, description="Days before each day whose sensor counts set its bounds."
    )
    min_count_ratio: float = Field(
        default=0.5, description="A day below this share of the lookback median count warns."
    )
    max_count_ratio: float = Field(
        default=1.5, description="A day above this multiple of the lookback median count warns."
    )


def sensor_counts(storage: PlatformStorage, days: list[str], lookback: int) -> dict[str, int]:
    """Sensors per day for the ``lookback`` stored days before ``days[0]`` (where they exist)."""
    first = date.fromisoformat(days[0])
    counts = {}
    for back in range(lookback, 0, -1):
        day = date.fromordinal(first.toordinal() - back).isoformat()
        if storage.exists(day_key(FEATURES, day)):
            counts[day] = int(read_day(storage, FEATURES, day)["sensor_id"].nunique())
    return counts


def counts_out_of_bounds(
    counts: dict[str, int], days: list[str], config: FeaturesConfig
) -> dict[str, dict]:
    """Days whose sensor count leaves [min, max] × the median of the previous days' counts."""
    ordered = sorted(counts)
    bad = {}
    for day in days:
        before = [counts[d] for d in ordered if d < day][-config.lookback_days :]
        before = [n for n in before if n > 0]
        if not before:
            continue
        median = float(np.median(before))
        lo, hi = config.min_count_ratio * median, config.max_count_ratio * median
        if not lo <= counts.get(day, 0) <= hi:
            bad[day] = {"sensors": counts.get(day, 0), "bounds": [lo, hi]}
    return bad


@daily_asset(
    kinds={"pandas", "parquet"},
    deps=[TEMPERATURES],
    description="Per sensor and day: mean, std, min, max of the finite readings, their count, "
    "NaN/inf counts and share missing; too few readings → flagged, never filled in.",
    check_specs=[
        dg.AssetCheckSpec(
            "model_inputs_finite",
            asset=FEATURES,
            blocking=True,
            description="No NaN/inf in the features of any sensor-day the model will see.",
        ),
        dg.AssetCheckSpec(
            "sensor_count_within_bounds",
            asset=FEATURES,
            description="Each day's sensor count is within bounds of the previous days'.",
        ),
    ],
)
def sensor_daily_features(
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    sensor_profiles: SensorProfilesSettings,
    storage: PlatformStorage,
) -> dg.MaterializeResult:
    days = run_days(context)

    def one_day(day: str) -> pd.DataFrame:
        feats = daily_features(
            read_day(storage, TEMPERATURES, day), day, sensor_profiles.min_readings
        )
        storage.write_parquet(day_key(FEATURES, day), feats)
        return feats

    parts = each_day(days, one_day)
    features = pd.concat(parts, ignore_index=True)
    counts = sensor_counts(storage, days, config.lookback_days) | {
        d: int(p["sensor_id"].nunique()) for d, p in zip(days, parts, strict=True)
    }
    out_of_bounds = counts_out_of_bounds(counts, days, config)
    nonfinite = nonfinite_model_inputs(features)
    flagged = int((~features["enough_readings"].astype(bool)).sum())
    context.log.info(f"sensors per day: { {d: counts[d] for d in days} }")
    return dg.MaterializeResult(
        metadata=stage_metadata(features, storage, FEATURES, days)
        | {
            "sensor_days": len(features),
            "flagged_too_few_readings": flagged,
            "nan_values_excluded": int(features["nan_values"].sum()),
            "inf_values_excluded": int(features["inf_values"].sum()),
            "sensors_per_day": per_day({d: counts[d] for d in days}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="model_inputs_finite",
                passed=not any(nonfinite.values()),
                metadata={"nonfinite": dg.MetadataValue.json(nonfinite)},
            ),
            dg.AssetCheckResult(
                check_name="sensor_count_within_bounds",
                passed=not out_of_bounds,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{len(out_of_bounds)} of {len(days)} days outside the bounds",
                metadata={"out_of_bounds": dg.MetadataValue.json(out_of_bounds)},
            ),
        ],
    )


def serving_label(champion: ModelVersion | None) -> str:
    """The version the assignments use: the champion, or none until one is approved."""
    return f"v{champion.version}" if champion else "none: approve a pending version"


def no_empty_profile(candidate: ModelVersion) -> str | None:
    """A fit with an empty profile never serves (the champion refuses it, as the blocking
    ``no_empty_cluster`` check does in the candidate's run)."""
    empty = candidate.metrics.get("empty_profiles", 0)
    return f"{int(empty)} empty profiles" if empty else None


def continuous_training(
    model_store: ModelStoreResource, candidate: ModelVersion, champion: ModelVersion | None
) -> PromotionDecision:
    """A refit on new days that passed its checks qualifies: champion now, or pending under
    MODEL_APPROVAL=manual (there is no score to compare across different days)."""
    warm_from = candidate.params.get("warm_start_from")
    how = f"warm start from v{warm_from}" if warm_from else "cold start"
    return model_store.qualified(f"continuous training ({how})")


PROFILE_HEADLINES = [
    Headline(
        "inertia",
        "spread within profiles",
        "sum of squared standardised distances of the sensor-days to their profile's centre "
        "(on the model's own days: compare only fits of similar days)",
    ),
    Headline(
        "centre_shift_max",
        "largest profile move",
        "how far (°C, feature units) a profile centre moved from the model it started from",
    ),
    Headline(
        "trained_rows",
        "sensor-days learned from",
        "sensor-days with enough readings in the fit",
        lower_is_better=False,
    ),
    Headline("empty_profiles", "empty profiles", "profiles with no sensor-day (must be 0)"),
]

sensor_profile_champion = build_champion_asset(
    name=CHAMPION.path[-1],
    candidate=MODEL,
    model_name=MODEL_NAME,
    group_name=GROUP,
    headlines=PROFILE_HEADLINES,
    requirement=no_empty_profile,
    decider=continuous_training,
    candidate_version_field="model_version",
    # Built by the profiles job with its days (the drop sensor, the readings schedule).
    automation_condition=None,
    description="The profile model that assigns the sensor-days.",
)


class ProfileModelConfig(dg.Config):
    seed: int = Field(default=0, description="k-means++ seed for a cold start (no previous).")
    max_iter: int = Field(default=300, description="Lloyd iterations at most.")


def distribution_plot(sizes: dict[str, int], title: str) -> dg.MetadataValue:
    return bar_plot({f"profile {p}": n for p, n in sizes.items()}, title)


@daily_asset(
    kinds={"scikit-learn", "json"},
    deps=[FEATURES],
    description="k-means (PROFILES_K profiles) on the standardised daily features of the run's "
    "days, started from the current model's centres; registered as a candidate with its "
    "sha256 (sensor_profile_champion decides whether it serves).",
    check_specs=[
        dg.AssetCheckSpec(
            "no_empty_cluster",
            asset=MODEL,
            blocking=True,
            description="Every profile has sensor-days; else the model is rejected.",
        )
    ],
)
def sensor_profile_model(
    context: dg.AssetExecutionContext,
    config: ProfileModelConfig,
    sensor_profiles: SensorProfilesSettings,
    storage: PlatformStorage,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    days = run_days(context)
    features = read_days(storage, FEATURES, days)
    registry = model_store.registry(MODEL_NAME)
    champion = registry.champion()
    previous = ProfileModel.from_files(registry.verify(champion)) if champion else None
    try:
        result = fit(
            features, sensor_profiles.k, previous, seed=config.seed, max_iter=config.max_iter
        )
    except ValueError as exc:
        raise dg.Failure(f"sensor_profile_model {days[0]}..{days[-1]}: {exc}") from exc
    sizes = cluster_sizes(result.labels, sensor_profiles.k)
    empty = [p for p, n in sizes.items() if n == 0]
    model = result.model
    warm_from = champion.version if model.warm_start else None
    shift_max = float(np.nanmax(result.centre_shift)) if model.warm_start else None
    metrics = {
        "inertia": model.inertia,
        "n_iter": model.n_iter,
        "trained_rows": len(result.labels),
        "empty_profiles": len(empty),
    }
    if shift_max is not None:
        metrics["centre_shift_max"] = shift_max
    # Registered as a candidate: sensor_profile_champion decides whether it serves.
    mv = registry.register(
        model.to_files(),
        metrics=metrics,
        params={"k": model.k, "features": list(MODEL_FEATURES), "days": [days[0], days[-1]]}
        | {"warm_start_from": warm_from},
        run_id=context.run.run_id,
    )
    context.log.info(f"{mv.label} registered: {sizes}; serving now {serving_label(champion)}")
    return dg.MaterializeResult(
        metadata=stage_metadata(model_rows(features), storage, MODEL, days)
        | {
            "dagster/uri": storage.uri(registry.file_key(mv.version, "model.json")),
            "model_version": mv.version,
            "serving_version": serving_label(champion),
            "sha256": mv.files["model.json"],
            "warm_start_from": warm_from if warm_from is not None else "none (cold start)",
            "inertia": model.inertia,
            "n_iter": model.n_iter,
            "centre_shift": dg.MetadataValue.json(result.centre_shift if warm_from else []),
            "centre_shift_max": shift_max if shift_max is not None else float("nan"),
            "flagged_excluded": int(len(features) - len(result.labels)),
            "centres": dg.MetadataValue.json(
                {
                    f"profile {i}": dict(zip(MODEL_FEATURES, c, strict=True))
                    for i, c in enumerate(model.centres)
                }
            ),
            "cluster_distribution": dg.MetadataValue.json(sizes),
            "cluster_distribution_plot": distribution_plot(sizes, "sensor-days per profile"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_empty_cluster",
                passed=not empty,
                description=f"empty profiles: {empty}" if empty else "every profile has members",
                metadata={"sizes": dg.MetadataValue.json(sizes)},
            )
        ],
    )


@daily_asset(
    kinds={"pandas", "parquet", "postgres"},
    deps=[FEATURES, CHAMPION],
    description="The champion model's profile of every sensor-day (none when flagged), with the "
    "model version and run id; also in PostgreSQL cluster_predictions when PROFILES_DSN is set.",
)
def sensor_profile_assignments(
    context: dg.AssetExecutionContext,
    sensor_profiles: SensorProfilesSettings,
    storage: PlatformStorage,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    days = run_days(context)
    champion, files = model_store.champion_files(MODEL_NAME, CHAMPION.to_user_string())
    model = ProfileModel.from_files(files)
    assigned_at = datetime.now(UTC).isoformat(timespec="seconds")

    def one_day(day: str) -> pd.DataFrame:
        part = assign(model, read_day(storage, FEATURES, day)).assign(
            model_version=champion.version, run_id=context.run.run_id, assigned_at=assigned_at
        )
        storage.write_parquet(day_key(ASSIGNMENTS, day), part)
        return part

    parts = each_day(days, one_day)
    assignments = pd.concat(parts, ignore_index=True)
    written = None
    if sensor_profiles.dsn:
        written = cluster_predictions.replace_days(
            sensor_profiles.dsn,
            assignments,
            date.fromisoformat(days[0]),
            date.fromisoformat(days[-1]),
        )
    sizes = cluster_sizes(assignments["profile"], model.k)
    return dg.MaterializeResult(
        metadata=stage_metadata(assignments, storage, ASSIGNMENTS, days)
        | {
            "model_version": champion.version,
            "unassigned_flagged": int(assignments["profile"].isna().sum()),
            "postgres_rows": written if written is not None else "PROFILES_DSN not set",
            "cluster_distribution": dg.MetadataValue.json(sizes),
            "cluster_distribution_plot": distribution_plot(sizes, "sensor-days per profile"),
        }
    )


profile_assets = [
    sensor_temperatures,
    sensor_daily_features,
    sensor_profile_model,
    sensor_profile_champion,
    sensor_profile_assignments,
]
