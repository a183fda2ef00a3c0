"""One lifecycle for every model, on a toy model (no training): the candidate's blocking gate,
then the champion asset's decision, approval and rollback, with predictions downstream of the
champion. The gate's two ERROR paths (a file failing its checksum, a candidate no better than
the old system's model) stop the champion and the predictions; the champion keeps serving."""

import dagster as dg
import pytest
from pydantic import Field

from platform_core.champion import Headline, build_champion_asset, champion_run_config
from platform_core.model_store import ModelStoreResource
from platform_core.promotion import (
    BASELINE_SCORE,
    CHAMPION_SCORE,
    GATE,
    SCORE,
    build_gate_check,
)
from platform_core.registry import ModelRegistry, Status
from platform_core.storage import PlatformStorage

MODEL = "toy"
CANDIDATE = dg.AssetKey("toy_model_candidate")
CHAMPION = dg.AssetKey("toy_model_champion")
FILES = {"model.json": b'{"trees": [1, 2, 3]}', "spec.json": b'{"features": ["a"]}'}
BASELINE = "the old system's model"


class PlantConfig(dg.Config):
    score: float = Field(description="The candidate's CV error (lower is better).")
    baseline_score: float = Field(description="The old system's CV error on the same folds.")
    tamper: bool = Field(default=False, description="Change model.json after registering it.")


@dg.asset(key=CANDIDATE)
def toy_model_candidate(
    context: dg.AssetExecutionContext, config: PlantConfig, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    """Registers a planted candidate the way the model assets do (score, baseline, champion)."""
    registry = model_store.registry(MODEL)
    champion = registry.champion()
    metrics = {SCORE: config.score, BASELINE_SCORE: config.baseline_score}
    if champion is not None:
        metrics[CHAMPION_SCORE] = champion.metrics[SCORE]
    files = {**FILES, "score.txt": str(config.score).encode()}  # each version its own bytes
    mv = registry.register(files, metrics=metrics, params={}, run_id=context.run.run_id)
    if config.tamper:  # a file changed (or half copied) between registration and the gate
        model_store.storage.write_bytes(registry.file_key(mv.version, "model.json"), b"{}")
    return dg.MaterializeResult(metadata={"version": mv.version})


toy_model_champion = build_champion_asset(
    name="toy_model_champion",
    candidate=CANDIDATE,
    model_name=MODEL,
    group_name="toy",
    headlines=[Headline(SCORE, "toy error", "planted CV error")],
    baseline_label=BASELINE,
)


@dg.asset(deps=[CHAMPION])
def toy_predictions(model_store: ModelStoreResource) -> dg.MaterializeResult:
    champion, _ = model_store.champion_files(MODEL, CHAMPION.to_user_string())
    return dg.MaterializeResult(metadata={"model_version": champion.version})


candidate_gate = build_gate_check(CANDIDATE, MODEL, BASELINE)
ASSETS = [toy_model_candidate, toy_model_champion, toy_predictions, candidate_gate]


def run(
    storage: PlatformStorage, instance, approval: str = "auto", **plant
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources={"model_store": ModelStoreResource(storage=storage, approval=approval)},
        instance=instance,
        run_config={"ops": {CANDIDATE.to_python_identifier(): {"config": plant}}},
        raise_on_error=False,
    )


def by_hand(storage: PlatformStorage, instance, version: int, approver: str = "ana", **kw):
    """The champion and its predictions materialized with a person's run config."""
    return dg.materialize(
        ASSETS,
        selection=[CHAMPION, toy_predictions.key],
        resources={"model_store": ModelStoreResource(storage=storage, **kw)},
        instance=instance,
        run_config=champion_run_config(CHAMPION, version, approver),
        raise_on_error=False,
    )


def gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    """The gate's evaluation: a verdict recorded, not an exception in the check's step."""
    evaluations = result.get_asset_check_evaluations()
    failures = [
        e.step_failure_data.error.to_string()[-500:] for e in result.all_events if e.is_step_failure
    ]
    assert len(evaluations) == 1, f"{GATE} gave no evaluation; failures: {failures}"
    assert evaluations[0].check_name == GATE
    return evaluations[0]


def started(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def champion_meta(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.asset_materializations_for_node("toy_model_champion")
    return {k: v.value for k, v in event.metadata.items()}


def served(result: dg.ExecuteInProcessResult) -> int:
    (event,) = result.asset_materializations_for_node("toy_predictions")
    return event.metadata["model_version"].value


def test_a_better_candidate_becomes_champion_and_is_served(local_storage):
    """The healthy path the two ERROR tests depart from; the gate itself writes nothing."""
    with dg.instance_for_test() as instance:
        result = run(local_storage, instance, score=1.0, baseline_score=2.0)
    assert result.success
    assert gate(result).passed
    meta = champion_meta(result)
    assert (meta["decision"], meta["champion_version"], meta["decided_version"]) == (
        "champion",
        1,
        1,
    )
    assert meta["previous_champion"] == "none"
    assert "toy error" in meta["headline_figures"] and "lower is better" in meta["headline_figures"]
    assert served(result) == 1
    assert ModelRegistry(local_storage, MODEL).champion().version == 1


@pytest.mark.parametrize("with_champion", [False, True])
def test_candidate_failing_its_checksum_is_stopped_by_the_gate(local_storage, with_champion):
    """Better on paper than the champion and the old system, but its model file no longer
    hashes to what was registered: the gate fails with ERROR, the champion asset and the
    predictions do not run, and the champion (if any) keeps serving."""
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        if with_champion:
            assert run(local_storage, instance, score=1.0, baseline_score=2.0).success
        result = run(local_storage, instance, score=0.5, baseline_score=2.0, tamper=True)
    version = 2 if with_champion else 1
    check = gate(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{MODEL}:v{version}/model.json" in check.description
    assert "refusing to load" in check.description
    assert check.metadata["version"].value == version
    assert registry.get(version).status == Status.CANDIDATE  # the gate decided nothing
    assert not started(result) & {"toy_model_champion", "toy_predictions"}
    champion = registry.champion()
    assert (champion.version if champion else None) == (1 if with_champion else None)


@pytest.mark.parametrize("score", [2.0, 2.5], ids=["equal", "worse"])
def test_candidate_no_better_than_the_old_system_is_stopped_by_the_gate(local_storage, score):
    """No champion yet, so it would otherwise become one: not better than the old system's
    model on the same folds (equal counts as not better) is ERROR, nothing served."""
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        result = run(local_storage, instance, score=score, baseline_score=2.0)
        check = gate(result)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert check.description == f"score {score:.4f} is not better than {BASELINE} (2.0000)"
        assert registry.champion() is None
        assert not started(result) & {"toy_model_champion", "toy_predictions"}
        assert not result.success
        # The champion materialized on its own later applies the gate again: it refuses.
        alone = dg.materialize(
            ASSETS,
            selection=[CHAMPION],
            resources={"model_store": ModelStoreResource(storage=local_storage)},
            instance=instance,
        )
    meta = champion_meta(alone)
    assert (meta["decision"], meta["champion_version"]) == ("rejected", "none")
    assert registry.get(1).status == Status.REJECTED
    assert "not better than" in registry.get(1).history[-1]["reason"]


def test_a_candidate_losing_to_the_champion_is_rejected_and_the_champion_serves(local_storage):
    with dg.instance_for_test() as instance:
        assert run(local_storage, instance, score=1.0, baseline_score=2.0).success
        second = run(local_storage, instance, score=1.5, baseline_score=2.0)
    assert second.success and gate(second).passed
    meta = champion_meta(second)
    assert (meta["decision"], meta["champion_version"], meta["decided_version"]) == (
        "rejected",
        1,
        2,
    )
    assert "does not beat" in meta["reason"]
    assert "worse" in meta["headline_figures"]  # 1.5 against the champion's 1.0
    assert served(second) == 1


def test_manual_approval_and_rollback_are_materializations_of_the_champion(local_storage):
    """MODEL_APPROVAL=manual: an automatic materialization leaves the candidate pending;
    the same asset with {version, approver} approves it, and later rolls back."""
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        first = run(local_storage, instance, approval="manual", score=1.0, baseline_score=2.0)
        meta = champion_meta(first)
        assert (meta["decision"], meta["champion_version"]) == ("pending_approval", "none")
        assert '"version": 1' in meta["waiting_for_approval"]
        assert registry.get(1).status == Status.PENDING_APPROVAL
        [failure] = [e for e in first.all_events if e.is_step_failure]
        assert failure.step_key == "toy_predictions"
        assert "approve one of [1]" in failure.step_failure_data.error.message
        assert "toy_model_champion" in failure.step_failure_data.error.message

        approved = by_hand(local_storage, instance, 1, approval="manual")
        assert approved.success and served(approved) == 1
        meta = champion_meta(approved)
        assert (meta["decision"], meta["approver"], meta["champion_version"]) == (
            "approved",
            "ana",
            1,
        )
        assert registry.get(1).history[-1]["by"] == "ana"

        better = run(local_storage, instance, approval="manual", score=0.5, baseline_score=2.0)
        assert champion_meta(better)["decision"] == "pending_approval"
        assert served(better) == 1  # the pending v2 does not serve
        assert by_hand(local_storage, instance, 2, approver="ben", approval="manual").success
        assert registry.get(1).status == Status.RETIRED

        back = by_hand(local_storage, instance, 1, approver="cy", approval="manual")
        assert back.success and served(back) == 1
        meta = champion_meta(back)
        assert (meta["decision"], meta["previous_champion"]) == ("rolled_back", 2)
        assert [v.status for v in registry.versions()] == [Status.CHAMPION, Status.RETIRED]
        assert registry.get(1).history[-1] | {"at": ""} == {
            "at": "",
            "status": Status.CHAMPION,
            "reason": "rolled back to",
            "by": "cy",
        }


def test_only_pending_or_earlier_champions_can_be_chosen_and_only_by_someone(local_storage):
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        assert run(local_storage, instance, score=1.0, baseline_score=2.0).success
        assert run(local_storage, instance, score=1.5, baseline_score=2.0).success  # rejected
        for version, approver, message in [
            (2, "ana", "toy:v2 is rejected"),
            (9, "ana", "toy: no version 9"),
            (1, " ", "approver: say who makes toy:v1 champion"),
        ]:
            result = by_hand(local_storage, instance, version, approver=approver)
            [failure] = [e for e in result.all_events if e.is_step_failure]
            assert failure.step_key == "toy_model_champion"
            assert message in failure.step_failure_data.error.message
            assert "toy_predictions" not in started(result)
    assert registry.champion().version == 1
