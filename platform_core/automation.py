"""Declarative automation: what an empty instance builds by itself, with no click.

Assets that the live paths need (cleaned beers, each model's first candidate and champion,
the beer predictions) carry :data:`BUILD_WHEN_MISSING`; each code location runs one
automation sensor over them. On an empty instance the sensor requests the whole missing
chain in one run (a child whose parents are requested on the same tick rides along), and the
candidates' blocking promotion checks run in it. A user who wipes one of these assets sees
the same recovery on the next tick.
"""

import dagster as dg

from platform_core.run_tags import BACKGROUND, run_tags

#: Materialize while missing (first start, or after a wipe), once no parent is missing or in
#: progress. Dagster's ``on_missing()`` skips what is already missing when the condition is
#: first evaluated, which is exactly the first start, so the condition is spelled out. A
#: failed attempt is not retried in a loop: it shows as failed until a person re-runs it.
BUILD_WHEN_MISSING = (
    dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed()
).with_label("build_when_missing")

#: For a check defined inside a multi-asset (it runs in the asset's own step anyway). Dagster
#: counts such a check as requested with its asset, and a run whose requested checks are
#: listed, with none of them carrying a condition, gets only those checks: the blocking
#: promotion checks downstream were left out of the bootstrap run. Once one check of the
#: requested assets has a condition, every check without one rides along with its asset.
RUN_WITH_ASSET = dg.AutomationCondition.any_deps_updated()

AUTOMATION_TAGS = run_tags("automation", BACKGROUND)


def automation_sensor(location: str) -> dg.AutomationConditionSensorDefinition:
    """The location's automation sensor, on by default, its runs in the background lane."""
    return dg.AutomationConditionSensorDefinition(
        f"{location}_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        run_tags=AUTOMATION_TAGS,
        description="Builds what is missing (first start, or after a wipe): assets whose "
        "automation condition is on_missing.",
    )
