"""The wine candidate's gate refuses a model whose 90 % prediction interval does not cover
87-93 % of held-out wines of each type (``interval_coverage`` and ``candidate_gate``, both
blocking): ``wine_quality_champion`` does not run, nothing is promoted. Planted metrics, no
training."""

import dagster as dg
import pytest
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from platform_core.promotion import BASELINE_SCORE, SCORE
from platform_core.registry import Status
from wine_assets.quality import MODEL_NAME
from wine_assets.quality.assets import CANDIDATE, quality_checks
from wine_assets.quality.champion import CHAMPION, wine_quality_champion

FILES = {"spec.json": b"{}"}


class PlantConfig(dg.Config):
    red_coverage: float = Field(description="Held-out coverage of red wines' 90 % interval.")
    white_coverage: float = Field(default=0.9, description="The same for white wines.")


@dg.asset(key=CANDIDATE)
def planted_candidate(
    context: dg.AssetExecutionContext, config: PlantConfig, model_store: ModelStoreResource
) -> dg.MaterializeResult:
    """Registers a candidate that beats system A, with the planted coverages."""
    metrics = {
        SCORE: 0.4,
        BASELINE_SCORE: 0.5,
        "holdout_red_interval90_coverage": config.red_coverage,
        "holdout_white_interval90_coverage": config.white_coverage,
    }
    registry = model_store.registry(MODEL_NAME)
    mv = registry.register(FILES, metrics=metrics, params={}, run_id=context.run.run_id)
    return dg.MaterializeResult(metadata={"version": mv.version})


@dg.asset(deps=[CHAMPION])
def downstream() -> None:
    """Stands for what scores with the champion."""


def run(storage, red: float, white: float = 0.9):
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [planted_candidate, wine_quality_champion, downstream, *quality_checks],
            resources={"model_store": ModelStoreResource(storage=storage)},
            instance=instance,
            run_config={
                "ops": {
                    CANDIDATE.to_python_identifier(): {
                        "config": {"red_coverage": red, "white_coverage": white}
                    }
                }
            },
            raise_on_error=False,
        )


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_covering_candidate_is_promoted(local_storage):
    result = run(local_storage, 0.9)
    checks = evaluations(result)
    assert checks["interval_coverage"].passed and checks["candidate_gate"].passed
    assert result.asset_materializations_for_node("downstream")
    registry = ModelStoreResource(storage=local_storage).registry(MODEL_NAME)
    assert registry.champion().version == 1


@pytest.mark.parametrize(("red", "white"), [(0.80, 0.9), (0.9, 0.95)])
def test_candidate_whose_interval_misses_its_coverage_is_never_champion(local_storage, red, white):
    result = run(local_storage, red, white)
    checks = evaluations(result)
    for name in ("interval_coverage", "candidate_gate"):
        assert not checks[name].passed
        assert checks[name].severity == dg.AssetCheckSeverity.ERROR
    assert "coverage" in checks["candidate_gate"].description
    registry = ModelStoreResource(storage=local_storage).registry(MODEL_NAME)
    assert registry.champion() is None
    assert registry.get(1).status == Status.CANDIDATE  # never decided on
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not started & {"wine_quality_champion", "downstream"}
