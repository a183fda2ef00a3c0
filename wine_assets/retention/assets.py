"""The daily archives of the hot stores, as Dagster assets.

``barrel_readings_archive`` (the readings store's history), ``barrel_predictions_archive``
(the scorer's ledger: each reading's prediction or quarantine) and ``prediction_log_archive``
(every answered prediction) have one partition per closed UTC day. Materializing a day
archives it to ``archive/<table>/day=YYYY-MM-DD/<table>.parquet`` in the platform storage
(merged with what an earlier run archived), and the blocking check ``holds_every_row`` re-reads
the file: the expected row count, each key once, every row of the day still in the hot table
present (hence its key range); for the readings, also every reading the scorer recorded that
day (the barrel predictions, hot or archived). Only when it passes does the run prune: every
day older than ``READINGS_RETENTION_DAYS`` / ``PREDICTION_LOG_RETENTION_DAYS``, each archived
and verified again right before its rows are deleted (``wine_assets.retention.archive``).
Readings are pruned after the predictions of the same day and never above the scorer's
position.

The ``wine_retention_daily`` schedule runs the three for the previous day at 00:30 UTC: one
run a day. A day missed while the daemon was down is archived when it is pruned at the
latest; a backfill of the missing partitions archives it sooner.
"""

from collections.abc import Callable
from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.settings import (
    DEFAULT_PREDICTION_LOG_RETENTION_DAYS,
    DEFAULT_READINGS_RETENTION_DAYS,
    int_setting,
)
from platform_core.storage import PlatformStorage
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.quality.ledger import open_ledger
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.retention import GROUP
from wine_assets.retention.archive import (
    DEFAULT_BATCH_SIZE,
    ArchiveMismatchError,
    HotTable,
    archive_day,
    barrel_predictions_table,
    prediction_log_table,
    read_archive,
    readings_table,
    retain,
)

CHECK = "holds_every_row"
#: Closed UTC days (the current day has no partition until it ends).
archive_partitions = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")


class RetentionSettings(dg.ConfigurableResource):
    """How long the hot stores keep rows (the archive keeps them for good)."""

    readings_days: int = Field(
        default=DEFAULT_READINGS_RETENTION_DAYS,
        ge=1,
        description="READINGS_RETENTION_DAYS: days of readings history the store keeps.",
    )
    prediction_log_days: int = Field(
        default=DEFAULT_PREDICTION_LOG_RETENTION_DAYS,
        ge=1,
        description="PREDICTION_LOG_RETENTION_DAYS: days of logged predictions kept.",
    )
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, ge=1, description="Rows deleted per transaction/request."
    )


def retention_resource() -> RetentionSettings:
    return RetentionSettings(
        readings_days=int_setting("READINGS_RETENTION_DAYS", DEFAULT_READINGS_RETENTION_DAYS),
        prediction_log_days=int_setting(
            "PREDICTION_LOG_RETENTION_DAYS", DEFAULT_PREDICTION_LOG_RETENTION_DAYS
        ),
    )


def _archive_and_prune(
    context: dg.AssetExecutionContext,
    storage: PlatformStorage,
    table: HotTable,
    retention_days: int,
    batch_size: int,
    expected: Callable[[date], set[int]] | None = None,
) -> dg.MaterializeResult:
    """Archive the partition's day, check the file (and that it holds the ``expected`` keys
    of the day, known from elsewhere), then prune what is past retention."""
    day = date.fromisoformat(context.partition_key)
    asset_key = context.asset_key
    try:
        archived = archive_day(storage, table, day)
        missing = sorted(expected(day) - archived.keys) if expected else []
        if missing:
            raise ArchiveMismatchError(
                f"{archived.uri}: {len(missing)} {table.key}s the scorer recorded for the day "
                f"are in neither the store nor the archive ({missing[:5]}…)"
            )
    except ArchiveMismatchError as exc:
        context.log.error(f"{exc}: nothing pruned")
        return dg.MaterializeResult(
            metadata={"problem": str(exc)},
            check_results=[
                dg.AssetCheckResult(
                    asset_key=asset_key,
                    check_name=CHECK,
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"problem": str(exc)},
                )
            ],
        )
    pruned = retain(storage, table, retention_days, batch_size=batch_size)
    deleted = sum(p.deleted for p in pruned)
    context.log.info(
        f"{table.name} {day}: {archived.rows} rows archived ({archived.uri}); "
        f"{deleted} rows pruned from {len(pruned)} days older than {retention_days} days"
    )
    key_range = f"{archived.key_min}-{archived.key_max}" if archived.rows else ""
    return dg.MaterializeResult(
        metadata={
            "rows": archived.rows,
            "bytes": archived.size_bytes,
            "path": dg.MetadataValue.url(archived.uri),
            f"{table.key}_range": key_range,
            "hot_rows_of_day": archived.hot_rows,
            "written": archived.written,
            "retention_days": retention_days,
            "pruned_days": dg.MetadataValue.json([p.archived.day.isoformat() for p in pruned]),
            "pruned_rows": deleted,
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=CHECK,
                passed=True,
                metadata={
                    "archived_rows": archived.rows,
                    "hot_rows_of_day": archived.hot_rows,
                    f"{table.key}_range": key_range,
                },
            )
        ],
    )


def _check_spec(asset: str, what: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK,
        asset=asset,
        blocking=True,
        description=f"The day's archive file, read back, holds {what} once each and every "
        "one still in the hot store; nothing is pruned otherwise.",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    partitions_def=archive_partitions,
    check_specs=[_check_spec("barrel_readings_archive", "the day's readings")],
    # The day's predictions go first: a reading is pruned after what became of it.
    deps=["barrel_predictions_archive"],
    description="Every barrel reading written on the UTC day (superseded ones included), "
    "archived to parquet in storage; readings older than READINGS_RETENTION_DAYS are then "
    "pruned from the readings store's history (the current reading of each barrel stays).",
)
def barrel_readings_archive(
    context: dg.AssetExecutionContext,
    readings_store: ReadingsStoreResource,
    storage: PlatformStorage,
    retention: RetentionSettings,
) -> dg.MaterializeResult:
    with readings_store.open() as store:
        ledger = open_ledger(store)
        try:
            scored_upto = ledger.cursor()
        finally:
            ledger.close()
        table = readings_table(store, scored_upto=scored_upto)

        def scored(day: date) -> set[int]:
            """The seqs of the day's readings the scorer recorded (lost seqs had none)."""
            ledger = open_ledger(store)
            try:
                hot = ledger.day(day.isoformat())
            finally:
                ledger.close()
            archived = read_archive(storage, "barrel_predictions", day)
            rows = pd.concat([f for f in (hot, archived) if f is not None and len(f)] or [hot])
            return set(rows.loc[rows["outcome"] != "lost", "seq"].astype("int64").tolist())

        return _archive_and_prune(
            context, storage, table, retention.readings_days, retention.batch_size, scored
        )


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    partitions_def=archive_partitions,
    check_specs=[_check_spec("barrel_predictions_archive", "the day's scored readings")],
    description="What the scorer did with every reading of the UTC day (prediction, "
    "quarantine with its reason, or lost seq), archived to parquet in storage; days older "
    "than READINGS_RETENTION_DAYS are then pruned from the scoring ledger.",
)
def barrel_predictions_archive(
    context: dg.AssetExecutionContext,
    readings_store: ReadingsStoreResource,
    storage: PlatformStorage,
    retention: RetentionSettings,
) -> dg.MaterializeResult:
    with readings_store.open() as store:
        ledger = open_ledger(store)
        try:
            return _archive_and_prune(
                context,
                storage,
                barrel_predictions_table(ledger),
                retention.readings_days,
                retention.batch_size,
            )
        finally:
            ledger.close()


@dg.asset(
    group_name=GROUP,
    kinds={"parquet"},
    partitions_def=archive_partitions,
    check_specs=[_check_spec("prediction_log_archive", "the day's logged predictions")],
    description="Every prediction the API answered on the UTC day, archived to parquet in "
    "storage; rows older than PREDICTION_LOG_RETENTION_DAYS are then pruned from the log "
    "(drift reports of those hours read the archive).",
)
def prediction_log_archive(
    context: dg.AssetExecutionContext,
    prediction_log: PredictionLogResource,
    storage: PlatformStorage,
    retention: RetentionSettings,
) -> dg.MaterializeResult:
    with prediction_log.open() as log:
        return _archive_and_prune(
            context,
            storage,
            prediction_log_table(log),
            retention.prediction_log_days,
            retention.batch_size,
        )
