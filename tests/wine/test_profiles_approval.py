"""MODEL_APPROVAL for the profile model: auto serves a new fit at once; manual keeps it pending
(assignments stay on the champion) until a person materializes sensor_profile_champion with
run config {version, approver}."""

import dagster as dg
import pandas as pd
import pytest

from platform_core.champion import champion_run_config
from platform_core.registry import ModelRegistry, Status
from platform_core.storage import PlatformStorage
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.profiles import MODEL_NAME
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.generate import write_days
from wine_assets.profiles.partitions import ASSIGNMENTS, CHAMPION, read_days


@pytest.fixture
def setup(tmp_path):
    drop = tmp_path / "drop"
    write_days(drop, sensors=80, days=3, seed=11)
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    return storage, drop, ModelRegistry(storage, MODEL_NAME)


def approve(resources: dict, instance: dg.DagsterInstance, version: int) -> None:
    """What a person does in the UI: sensor_profile_champion materialized with run config."""
    result = dg.materialize(
        profile_assets,
        selection=[CHAMPION],
        resources=resources,
        instance=instance,
        run_config=champion_run_config(CHAMPION, version, "vintner"),
    )
    assert result.success
    meta = result.asset_materializations_for_node(CHAMPION.path[-1])[0].metadata
    assert (meta["decision"].value, meta["approver"].value) == ("approved", "vintner")


def assign_again(resources: dict, instance: dg.DagsterInstance, first: str, last: str):
    """Re-run only the assignments of some days (after an approval)."""
    return materialize_days(resources, instance, first, last, selection=[ASSIGNMENTS])


def model_versions(storage: PlatformStorage, days: list[str]) -> set[int]:
    return set(read_days(storage, ASSIGNMENTS, days)["model_version"])


@pytest.mark.parametrize("approval", ["auto", "manual"])
def test_a_new_fit_serves_at_once_under_auto_and_waits_for_approval_under_manual(setup, approval):
    storage, drop, registry = setup
    resources = profile_resources(storage, drop, approval=approval)
    day = "2023-02-16"
    with dg.instance_for_test() as instance:
        # v1 as champion in either mode (approved by hand under manual), then a refit.
        first = materialize_days(
            resources, instance, "2023-02-15", "2023-02-15", raise_on_error=False
        )
        if approval == "manual":
            approve(resources, instance, 1)
            assert assign_again(resources, instance, "2023-02-15", "2023-02-15").success
        else:
            assert first.success
        assert registry.champion().version == 1

        second = dg.materialize(
            profile_assets, resources=resources, instance=instance, partition_key=day
        )
        assert second.success
        v1, v2 = registry.versions()
        meta = second.asset_materializations_for_node("sensor_profile_champion")[0].metadata
        assert v2.params["warm_start_from"] == 1
        if approval == "auto":
            assert (v1.status, v2.status) == (Status.RETIRED, Status.CHAMPION)
            assert model_versions(storage, [day]) == {2}
            assert meta["champion_version"].value == 2
            return

        # manual: v2 passed no_empty_cluster but waits; the day is assigned by v1.
        assert (v1.status, v2.status) == (Status.CHAMPION, Status.PENDING_APPROVAL)
        assert v2.history[-1]["reason"].endswith("waiting for approval")
        assert meta["decision"].value == "pending_approval"
        assert meta["champion_version"].value == 1
        checks = {c.check_name: c.passed for c in second.get_asset_check_evaluations()}
        assert checks["no_empty_cluster"]
        assert model_versions(storage, [day]) == {1}

        approve(resources, instance, 2)
        v1, v2 = registry.versions()
        assert (v1.status, v2.status) == (Status.RETIRED, Status.CHAMPION)
        assert assign_again(resources, instance, day, day).success
        assert model_versions(storage, [day]) == {2}


def test_under_manual_the_first_model_waits_and_the_assignments_fail_naming_it(setup):
    """No champion yet: the first fit is pending like any other (a person approves every
    model that serves); the assignments fail saying which version to approve, and after
    approval a re-run of that step assigns the days."""
    storage, drop, registry = setup
    resources = profile_resources(storage, drop, approval="manual")
    days = ["2023-02-15", "2023-02-16"]
    with dg.instance_for_test() as instance:
        result = materialize_days(resources, instance, *days, raise_on_error=False)
        assert not result.success
        [v1] = registry.versions()
        assert v1.status == Status.PENDING_APPROVAL and registry.champion() is None
        meta = result.asset_materializations_for_node("sensor_profile_champion")[0].metadata
        assert meta["champion_version"].value == "none"
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "sensor_profile_assignments"
        message = failure.step_failure_data.error.message
        assert "sensor_profiles has no champion yet; approve one of [1]" in message
        assert "materialize sensor_profile_champion" in message
        assert not instance.get_materialized_partitions(ASSIGNMENTS)

        # The next day's fit is pending too (a cold start again: nothing approved to warm from).
        later = materialize_days(
            resources, instance, "2023-02-17", "2023-02-17", raise_on_error=False
        )
        assert not later.success
        assert [v.status for v in registry.versions()] == [Status.PENDING_APPROVAL] * 2
        assert registry.get(2).params["warm_start_from"] is None

        approve(resources, instance, 1)
        assert registry.champion().version == 1
        assert registry.get(2).status == Status.PENDING_APPROVAL  # still waiting, not served
        assert assign_again(resources, instance, days[0], "2023-02-17").success
        assert model_versions(storage, [*days, "2023-02-17"]) == {1}
        assert instance.get_materialized_partitions(ASSIGNMENTS) == {*days, "2023-02-17"}
    stored = read_days(storage, ASSIGNMENTS, days)
    assert stored["profile"].notna().all() and pd.api.types.is_integer_dtype(
        stored["model_version"]
    )
