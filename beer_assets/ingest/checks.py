"""Asset checks on the cleaned beer table: ids, value ranges, row count, schema."""

import warnings

import dagster as dg
import pandas as pd
from pydantic import Field

from beer_assets.ingest.quality import hard_violations, id_problems, soft_violations

CLEAN = dg.AssetKey("beers_clean")
MAX_SOFT_SHARE = 0.10


@dg.asset_check(asset=CLEAN, blocking=True, description="Every row has an id; no id twice.")
def ids_unique_and_present(beers_clean: pd.DataFrame) -> dg.AssetCheckResult:
    problems = id_problems(beers_clean)
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        severity=dg.AssetCheckSeverity.ERROR,
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
        severity=dg.AssetCheckSeverity.ERROR,
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
        severity=dg.AssetCheckSeverity.ERROR,
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

ingest_checks = [
    ids_unique_and_present,
    values_in_physical_range,
    values_plausible,
    row_count_not_falling,
    *schema_checks,
]
