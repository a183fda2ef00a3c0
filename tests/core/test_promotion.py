"""The blocking promotion check's two ERROR paths, on a toy model (no training): a candidate
whose files fail their checksum, and one no better than the old system's model. Either is
rejected, nothing downstream runs, and the champion (if any) keeps serving."""

import dagster as dg
import pytest
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from platform_core.promotion import BASELINE_SCORE, CHAMPION_SCORE, SCORE, build_promotion_check
from platform_core.registry import ModelRegistry, Status
from platform_core.storage import PlatformStorage

MODEL = "toy"
CANDIDATE = dg.AssetKey("toy_model_candidate")
FILES = {"model.json": b'{"trees": [1, 2, 3]}', "spec.json": b'{"features": ["a"]}'}


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
    mv = registry.register(FILES, metrics=metrics, params={}, run_id=context.run.run_id)
    if config.tamper:  # a file changed (or half copied) between registration and promotion
        model_store.storage.write_bytes(registry.file_key(mv.version, "model.json"), b"{}")
    return dg.MaterializeResult(metadata={"version": mv.version})


@dg.asset(deps=[CANDIDATE])
def toy_predictions(model_store: ModelStoreResource) -> dg.MaterializeResult:
    champion, _ = model_store.champion_files(MODEL)
    return dg.MaterializeResult(metadata={"model_version": champion.version})


candidate_promotion = build_promotion_check(CANDIDATE, MODEL, "the old system's model")


def run(storage: PlatformStorage, instance, **plant) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [toy_model_candidate, toy_predictions, candidate_promotion],
        resources={"model_store": ModelStoreResource(storage=storage)},
        instance=instance,
        run_config={"ops": {CANDIDATE.to_python_identifier(): {"config": plant}}},
        raise_on_error=False,
    )


def promotion(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    """The check's evaluation: a decision recorded, not an exception in the check's step."""
    evaluations = result.get_asset_check_evaluations()
    failures = [
        e.step_failure_data.error.to_string()[-500:] for e in result.all_events if e.is_step_failure
    ]
    assert len(evaluations) == 1, f"candidate_promotion gave no evaluation; failures: {failures}"
    assert evaluations[0].check_name == "candidate_promotion"
    return evaluations[0]


def started(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def test_a_better_candidate_becomes_champion_and_is_served(local_storage):
    """The healthy path the two ERROR tests depart from."""
    with dg.instance_for_test() as instance:
        result = run(local_storage, instance, score=1.0, baseline_score=2.0)
    assert result.success
    check = promotion(result)
    assert check.passed and check.metadata["status"].value == Status.CHAMPION
    assert "toy_predictions" in started(result)
    assert ModelRegistry(local_storage, MODEL).champion().version == 1


@pytest.mark.parametrize("with_champion", [False, True])
def test_candidate_failing_its_checksum_is_rejected_with_error(local_storage, with_champion):
    """Better on paper than the champion and the old system, but its model file no longer
    hashes to what was registered: ERROR, rejected, nothing downstream runs."""
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        if with_champion:
            assert run(local_storage, instance, score=1.0, baseline_score=2.0).success
        result = run(local_storage, instance, score=0.5, baseline_score=2.0, tamper=True)
    version = 2 if with_champion else 1
    check = promotion(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{MODEL}:v{version}/model.json" in check.description
    assert "refusing to load" in check.description
    assert check.metadata["version"].value == version
    assert check.metadata["status"].value == Status.REJECTED
    assert registry.get(version).status == Status.REJECTED
    assert registry.get(version).history[-1]["reason"] == check.description
    assert "toy_predictions" not in started(result)
    champion = registry.champion()
    assert (champion.version if champion else None) == (1 if with_champion else None)


@pytest.mark.parametrize("score", [2.0, 2.5], ids=["equal", "worse"])
def test_candidate_no_better_than_the_old_system_is_rejected_with_error(local_storage, score):
    """No champion yet, so it would otherwise become one: not better than the old system's
    model on the same folds (equal counts as not better) is ERROR, rejected, nothing served."""
    registry = ModelRegistry(local_storage, MODEL)
    with dg.instance_for_test() as instance:
        result = run(local_storage, instance, score=score, baseline_score=2.0)
    check = promotion(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == (
        f"score {score:.4f} is not better than the old system's model (2.0000)"
    )
    assert check.metadata["status"].value == Status.REJECTED
    assert registry.get(1).status == Status.REJECTED
    assert registry.champion() is None
    assert "toy_predictions" not in started(result)
    assert not result.success
