"""Asset checks on the cleaned beer table: ids, value ranges, row count, schema."""

import warnings

import dagster as dg
import pandas as pd

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


@dg.asset_check(
    asset=CLEAN,
    blocking=True,
    description="The table never loses rows between materializations (ids are never removed).",
)
def row_count_not_falling(
    context: dg.AssetCheckExecutionContext, beers_clean: pd.DataFrame
) -> dg.AssetCheckResult:
    previous = _previous_row_count(context.instance)
    now = len(beers_clean)
    return dg.AssetCheckResult(
        passed=previous is None or now >= previous,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": now, "previous_rows": previous if previous is not None else -1},
    )


def _previous_row_count(instance: dg.DagsterInstance) -> int | None:
    """Row count of the materialization before the latest one (the latest is this run's)."""
    records = instance.fetch_materializations(CLEAN, limit=2).records
    if len(records) < 2:
        return None
    value = records[1].asset_materialization.metadata.get("dagster/row_count")
    return int(value.value) if value is not None else None


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
