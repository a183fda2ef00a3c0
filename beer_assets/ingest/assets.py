"""Punk API → raw landing (append-only) → cleaned beer table + quarantine, and the checks on
the cleaned table."""

import warnings
from collections.abc import Iterable
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from beer_assets.ingest import GROUP
from beer_assets.ingest.clean import clean_beers, column_descriptions
from beer_assets.ingest.landing import RAW_PREFIX, LandingWriter, iter_raw_pages, list_landings
from beer_assets.ingest.quality import hard_violations, id_problems, soft_violations
from beer_assets.ingest.quarantine import sort_records
from beer_assets.punkapi.client import FetchResult, Page
from beer_assets.punkapi.resource import PunkApiResource
from platform_core.automation import BUILD_WHEN_MISSING, RUN_WITH_ASSET
from platform_core.storage import PlatformStorage
from platform_core.tables import table_schema


class IngestConfig(dg.Config):
    """How to ingest: a full crawl of every page, or the 5-minute ``random`` poll."""

    mode: Literal["crawl", "random"] = Field(default="crawl")
    count: int = Field(default=1, ge=1, le=80, description="Random beers per poll.")


@dg.asset(
    group_name=GROUP,
    kinds={"python", "json"},
    automation_condition=BUILD_WHEN_MISSING,
    description="Punk API responses landed exactly as received, append-only, one folder per "
    "ingestion under raw/punkapi/ingest_date=…/ingested_at=…-<mode>/, each page as it arrives; "
    "manifest.json last (complete: false, with the error, when a request failed for good).",
)
def punkapi_raw_beers(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    punk_api: PunkApiResource,
    storage: PlatformStorage,
) -> dg.MaterializeResult:
    """Land each response as it arrives, so a failure on page N keeps pages 1..N-1.

    On failure the landing keeps the pages already fetched, its manifest says
    ``complete: false`` (pages landed, requests spent, the error), and the asset fails with
    the original error. Cleaning still reads those pages (see ``list_landings``).
    """
    writer = LandingWriter(storage, config.mode, context.run.run_id)
    with punk_api.get_client() as client:  # closes the client's HTTP session
        responses: Iterable[Page | FetchResult] = (
            client.iter_pages(include_empty=True)
            if config.mode == "crawl"
            else (client.random() for _ in range(config.count))
        )
        try:
            landing = writer.land_all(responses)
        except Exception:
            context.log.error(
                f"ingestion failed; kept {len(writer.checksums)} page(s) already fetched in "
                f"{writer.folder}, marked incomplete in its manifest.json"
            )
            raise
    context.log.info(f"landed {landing.records} records in {landing.folder}")
    return dg.MaterializeResult(
        metadata={
            "mode": config.mode,
            "landing": dg.MetadataValue.path(storage.uri(landing.folder)),
            "records": landing.records,
            "pages": landing.pages,
            "requests": landing.requests,
            "retries": landing.retries,
            "size_bytes": landing.size_bytes,
            "landings_total": len({k.split("/")[-2] for k in storage.list_keys(RAW_PREFIX)}),
        }
    )


class QuarantineConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.05, ge=0, le=1, description="Largest tolerated share of invalid items."
    )


@dg.multi_asset(
    outs={
        "beers_clean": dg.AssetOut(
            group_name=GROUP,
            automation_condition=BUILD_WHEN_MISSING,
            kinds={"pandas", "parquet"},
            description="One row per beer id (latest landed version wins): the original IBU "
            "model's nine columns plus attenuation, volumes, first-brewed date and ingredient "
            "features.",
        ),
        "punkapi_quarantine": dg.AssetOut(
            group_name=GROUP,
            automation_condition=BUILD_WHEN_MISSING,
            kinds={"pandas", "parquet"},
            description="Landed items that failed the v2 schema, with the reason for each.",
        ),
    },
    deps=[punkapi_raw_beers],
    check_specs=[
        dg.AssetCheckSpec(
            "quarantine_share_below_threshold",
            asset="beers_clean",
            blocking=True,
            description="Share of landed items that failed validation stays under the limit.",
            automation_condition=RUN_WITH_ASSET,
        )
    ],
)
def validated_beers(
    context: dg.AssetExecutionContext, storage: PlatformStorage, config: QuarantineConfig
):
    """Validate every landed item; valid ones are cleaned, the rest quarantined with reasons.

    Reads the union of all landings (latest version of a beer wins), including the pages of
    incomplete landings whose manifest records the failure (they are real API responses);
    a landing without a manifest (being written, or its process died mid-write) is skipped
    with a warning and listed in the ``landings_skipped`` metadata. See ``list_landings``.
    """
    landings = list_landings(storage)
    skipped = [f"{x.name}: {x.status}" for x in landings if not x.readable]
    incomplete = [x.name for x in landings if x.status == "incomplete"]
    for landing in landings:
        if not landing.readable:
            context.log.warning(
                f"skipping landing {landing.folder} ({landing.status}): it may be still being "
                "written or its ingestion died mid-write; its pages are not read"
            )
        elif landing.missing or landing.unlisted:
            context.log.warning(
                f"landing {landing.folder}: pages listed in its manifest but not on storage "
                f"{list(landing.missing)}; page files not in its manifest (not read) "
                f"{list(landing.unlisted)}"
            )
    sorted_ = sort_records(iter_raw_pages(storage, landings))
    clean = clean_beers(sorted_.valid)
    nulls = {c: int(n) for c, n in clean.isna().sum().items() if n}
    yield dg.Output(
        clean,
        output_name="beers_clean",
        metadata={
            "dagster/column_schema": table_schema(clean, column_descriptions),
            "valid_items_seen": len(sorted_.valid),
            "landings_read": sum(x.readable for x in landings),
            "landings_incomplete": dg.MetadataValue.json(incomplete),
            "landings_skipped": dg.MetadataValue.json(skipped),
            "null_counts": dg.MetadataValue.json(nulls),
            "preview": dg.MetadataValue.md(clean.head(10)[_PREVIEW].to_markdown(index=False)),
        },
    )
    yield dg.Output(
        sorted_.quarantine,
        output_name="punkapi_quarantine",
        metadata={
            "quarantined": len(sorted_.quarantine),
            "items_seen": sorted_.seen,
            "share": round(sorted_.quarantine_share, 4),
            "reasons": dg.MetadataValue.json(_reason_counts(sorted_.quarantine)),
        },
    )
    share = sorted_.quarantine_share
    yield dg.AssetCheckResult(
        asset_key="beers_clean",
        check_name="quarantine_share_below_threshold",
        passed=share <= config.max_quarantine_share,
        metadata={
            "share": round(share, 4),
            "quarantined": len(sorted_.quarantine),
            "items_seen": sorted_.seen,
            "threshold": config.max_quarantine_share,
        },
        description=f"{len(sorted_.quarantine)} of {sorted_.seen} landed items quarantined",
    )


_PREVIEW = ["id", "name", "abv", "ibu", "target_og", "tinseth_ibu_est"]


def _reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """How often each field is blamed (the text before the first colon of each reason)."""
    counts: dict[str, int] = {}
    for reasons in quarantine["reasons"].dropna():
        for reason in str(reasons).split("; "):
            field = reason.split(":", 1)[0]
            counts[field] = counts.get(field, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# Asset checks on the cleaned beer table: ids, value ranges, row count, schema.

CLEAN = dg.AssetKey("beers_clean")
MAX_SOFT_SHARE = 0.10


@dg.asset_check(asset=CLEAN, blocking=True, description="Every row has an id; no id twice.")
def ids_unique_and_present(beers_clean: pd.DataFrame) -> dg.AssetCheckResult:
    problems = id_problems(beers_clean)
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        metadata={k: dg.MetadataValue.json(v[:50]) for k, v in problems.items()}
        | {"rows": len(beers_clean)},
    )


@dg.asset_check(
    asset=CLEAN,
    blocking=True,
    description="No physically impossible values (abv, ibu, ebc, srm, gravities).",
)
def values_in_physical_range(beers_clean: pd.DataFrame) -> dg.AssetCheckResult:
    found = hard_violations(beers_clean)
    return dg.AssetCheckResult(
        passed=not found,
        metadata={r.rule: dg.MetadataValue.json(r.ids[:50]) for r in found}
        | {"violations": sum(len(r.ids) for r in found)},
    )


@dg.asset_check(
    asset=CLEAN,
    blocking=True,
    description="Known source errors (og < fg, implausible pH) listed; ERROR only above "
    f"{MAX_SOFT_SHARE:.0%} of rows.",
)
def values_plausible(beers_clean: pd.DataFrame) -> dg.AssetCheckResult:
    found = soft_violations(beers_clean)
    flagged = {i for r in found for i in r.ids}
    share = len(flagged) / max(len(beers_clean), 1)
    too_many = share > MAX_SOFT_SHARE
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR if too_many else dg.AssetCheckSeverity.WARN,
        metadata={r.rule: dg.MetadataValue.json(r.ids) for r in found}
        | {"share_flagged": round(share, 4), "max_share": MAX_SOFT_SHARE},
    )


class RowCountConfig(dg.Config):
    """Run config of ``row_count_not_falling``: how an operator accepts an intended shrink."""

    accepted_row_count: int | None = Field(
        default=None,
        ge=0,
        description="Set to the table's new, smaller row count to accept a deliberate shrink "
        "in this run only; the check then passes at exactly that count and it becomes the "
        "baseline for later runs.",
    )


ROW_COUNT_CHECK_DESCRIPTION = (
    "The table never loses rows unnoticed: its row count is compared with the last row count "
    "this check accepted (not merely the previous materialization, which is recorded even when "
    "this check fails, so re-running cannot accept a loss). To accept an intended shrink, run "
    "with config accepted_row_count set to the new row count."
)


@dg.asset_check(asset=CLEAN, blocking=True, description=ROW_COUNT_CHECK_DESCRIPTION)
def row_count_not_falling(
    context: dg.AssetCheckExecutionContext, config: RowCountConfig, beers_clean: pd.DataFrame
) -> dg.AssetCheckResult:
    """Fail (ERROR) on a loss of rows: the rule is ``ROW_COUNT_CHECK_DESCRIPTION`` (the check's
    description in the UI), the baseline :func:`_baseline_row_count`."""
    baseline, source = _baseline_row_count(context.instance)
    now = len(beers_clean)
    shrunk = baseline is not None and now < baseline
    accepted = shrunk and now == config.accepted_row_count
    return dg.AssetCheckResult(
        passed=not shrunk or accepted,
        metadata={
            "rows": now,
            "previous_rows": baseline if baseline is not None else -1,
            "baseline_from": source,
            "accepted_row_count": config.accepted_row_count
            if config.accepted_row_count is not None
            else -1,
        },
        description=f"{now} rows; baseline {baseline} ({source})"
        + (" — shrink accepted by config accepted_row_count" if accepted else ""),
    )


#: How many of the latest evaluations / earlier materializations are looked at.
_HISTORY_LIMIT = 100


def _baseline_row_count(instance: dg.DagsterInstance) -> tuple[int | None, str]:
    """The row count to compare with, and where it came from.

    The ``rows`` metadata of the latest earlier passing evaluation of this check (failing ones
    are skipped). With none on record (e.g. history before the check existed), the largest
    ``dagster/row_count`` of the materializations before the latest one (the latest is the one
    being checked).
    """
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(CLEAN, "row_count_not_falling"), limit=_HISTORY_LIMIT
    )
    for record in history:  # newest first; planned ones have no evaluation yet
        evaluation = record.event.asset_check_evaluation if record.event else None
        rows = evaluation.metadata.get("rows") if evaluation and evaluation.passed else None
        if rows is not None and rows.value is not None:
            return int(rows.value), "last passing check"
    records = instance.fetch_materializations(CLEAN, limit=_HISTORY_LIMIT).records[1:]
    counts = [
        int(value.value)
        for r in records
        if (value := r.asset_materialization.metadata.get("dagster/row_count")) is not None
    ]
    if counts:
        return max(counts), "largest earlier materialization"
    return None, "no earlier materialization"


with warnings.catch_warnings():  # a beta API in Dagster 1.13: keep its warning out of logs
    warnings.simplefilter("ignore", dg.BetaWarning)
    schema_checks = dg.build_column_schema_change_checks(
        assets=[CLEAN], severity=dg.AssetCheckSeverity.ERROR
    )
