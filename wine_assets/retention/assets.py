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

from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.settings import (
    DEFAULT_PREDICTION_LOG_RETENTION_DAYS,
    DEFAULT_READINGS_RETENTION_DAYS,
    int_setting,
)
from platform_core.storage import PlatformStorage
from wine_assets.quality.ledger import open_ledger
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
#: The keys a day's archive must hold, known from elsewhere than the hot table.
Expected = Callable[[date], set[int]]


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


#: ``open_table(stack, resources)``: a hot table, and the keys its day must hold when known
#: from elsewhere; what it opens is entered on ``stack`` and closed when the run is done.
TableOpener = Callable[[ExitStack, Any], tuple[HotTable, Expected | None]]


def _archive_asset(
    name: str,
    source: str,
    days: str,
    what: str,
    open_table: TableOpener,
    description: str,
    deps: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """A daily archive asset: archive the partition's day of the table ``open_table`` reads
    from the ``source`` resource, check the file (and that it holds the expected keys), then
    prune what is older than the ``days`` setting of :class:`RetentionSettings`."""

    @dg.asset(
        name=name,
        group_name=GROUP,
        kinds={"parquet"},
        partitions_def=archive_partitions,
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=name,
                blocking=True,
                description=f"The day's archive file, read back, holds {what} once each and "
                "every one still in the hot store; nothing is pruned otherwise.",
            )
        ],
        deps=deps,
        description=description,
        required_resource_keys={source, "storage", "retention"},
    )
    def archive(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        storage: PlatformStorage = context.resources.storage
        retention: RetentionSettings = context.resources.retention
        retention_days: int = getattr(retention, days)
        day = date.fromisoformat(context.partition_key)
        with ExitStack() as stack:
            table, expected = open_table(stack, context.resources)
            try:
                archived = archive_day(storage, table, day)
                missing = sorted(expected(day) - archived.keys) if expected else []
                if missing:
                    raise ArchiveMismatchError(
                        f"{archived.uri}: {len(missing)} {table.key}s the scorer recorded for "
                        f"the day are in neither the store nor the archive ({missing[:5]}…)"
                    )
            except ArchiveMismatchError as exc:
                context.log.error(f"{exc}: nothing pruned")
                problem = {"problem": str(exc)}
                return dg.MaterializeResult(
                    metadata=problem,
                    check_results=[
                        dg.AssetCheckResult(check_name=CHECK, passed=False, metadata=problem)
                    ],
                )
            pruned = retain(storage, table, retention_days, batch_size=retention.batch_size)
        deleted = sum(p.deleted for p in pruned)
        context.log.info(
            f"{table.name} {day}: {archived.rows} rows archived ({archived.uri}); "
            f"{deleted} rows pruned from {len(pruned)} days older than {retention_days} days"
        )
        key_range = {f"{table.key}_range": archived.key_range}
        return dg.MaterializeResult(
            metadata={
                "rows": archived.rows,
                "bytes": archived.size_bytes,
                "path": dg.MetadataValue.url(archived.uri),
                **key_range,
                "hot_rows_of_day": archived.hot_rows,
                "written": archived.written,
                "retention_days": retention_days,
                "pruned_days": dg.MetadataValue.json([p.archived.day.isoformat() for p in pruned]),
                "pruned_rows": deleted,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECK,
                    passed=True,
                    metadata={
                        "archived_rows": archived.rows,
                        "hot_rows_of_day": archived.hot_rows,
                        **key_range,
                    },
                )
            ],
        )

    return archive


def _readings(stack: ExitStack, resources: Any) -> tuple[HotTable, Expected]:
    store = stack.enter_context(resources.readings_store.open())
    with closing(open_ledger(store)) as ledger:
        scored_upto = ledger.cursor()

    def scored(day: date) -> set[int]:
        """The seqs of the day's readings the scorer recorded (lost seqs had none)."""
        with closing(open_ledger(store)) as ledger:
            hot = ledger.day(day.isoformat())
        archived = read_archive(resources.storage, "barrel_predictions", day)
        rows = pd.concat([f for f in (hot, archived) if f is not None and len(f)] or [hot])
        return set(rows.loc[rows["outcome"] != "lost", "seq"].astype("int64").tolist())

    return readings_table(store, scored_upto=scored_upto), scored


def _barrel_predictions(stack: ExitStack, resources: Any) -> tuple[HotTable, None]:
    store = stack.enter_context(resources.readings_store.open())
    return barrel_predictions_table(stack.enter_context(closing(open_ledger(store)))), None


def _prediction_log(stack: ExitStack, resources: Any) -> tuple[HotTable, None]:
    return prediction_log_table(stack.enter_context(resources.prediction_log.open())), None


barrel_readings_archive = _archive_asset(
    "barrel_readings_archive",
    "readings_store",
    "readings_days",
    "the day's readings",
    _readings,
    "Every barrel reading written on the UTC day (superseded ones included), "
    "archived to parquet in storage; readings older than READINGS_RETENTION_DAYS are then "
    "pruned from the readings store's history (the current reading of each barrel stays).",
    # The day's predictions go first: a reading is pruned after what became of it.
    deps=["barrel_predictions_archive"],
)
barrel_predictions_archive = _archive_asset(
    "barrel_predictions_archive",
    "readings_store",
    "readings_days",
    "the day's scored readings",
    _barrel_predictions,
    "What the scorer did with every reading of the UTC day (prediction, "
    "quarantine with its reason, or lost seq), archived to parquet in storage; days older "
    "than READINGS_RETENTION_DAYS are then pruned from the scoring ledger.",
)
prediction_log_archive = _archive_asset(
    "prediction_log_archive",
    "prediction_log",
    "prediction_log_days",
    "the day's logged predictions",
    _prediction_log,
    "Every prediction the API answered on the UTC day, archived to parquet in "
    "storage; rows older than PREDICTION_LOG_RETENTION_DAYS are then pruned from the log "
    "(drift reports of those hours read the archive).",
)
