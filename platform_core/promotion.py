"""The candidate's quality gate, shared by every scored model: may it be decided on at all?

A model asset registers its candidate with metrics named ``score`` (lower is better, e.g. CV
MAE), ``baseline_score`` (the old system's model on the same folds) and, when a champion
existed, ``champion_score`` (the champion's recipe on the same folds), and puts the version
in its materialization metadata. The gate (a blocking check on the candidate) verifies the
files' checksums, the model's own requirement and that the candidate beats the old system; it
writes nothing. Whether the candidate replaces the champion is the champion asset's decision
(platform_core/champion.py), which applies the same gate again before deciding.
"""

from collections.abc import Callable

import dagster as dg

from platform_core.model_store import ModelStoreResource
from platform_core.registry import ChecksumMismatchError, ModelRegistry, ModelVersion

SCORE, BASELINE_SCORE, CHAMPION_SCORE = "score", "baseline_score", "champion_score"
GATE = "candidate_gate"

#: A model's own requirement on a candidate: the reason to refuse it, or None.
Requirement = Callable[[ModelVersion], str | None]


def latest_version(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, field: str = "version"
) -> int | None:
    """The model version in ``asset_key``'s newest materialization's metadata, if any."""
    event = instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(field)
    return None if value is None else int(value.value)


def gate_problems(
    registry: ModelRegistry,
    candidate: ModelVersion,
    baseline_label: str | None,
    requirement: Requirement | None = None,
) -> list[str]:
    """Why ``candidate`` must not be decided on (tampered files, its model's requirement, no
    better than the old system), each as a sentence; empty when it passes."""
    try:
        registry.verify(candidate)
    except ChecksumMismatchError as exc:
        return [str(exc)]
    problems = []
    refused = requirement(candidate) if requirement is not None else None
    if refused:
        problems.append(refused)
    m = candidate.metrics
    if baseline_label is not None and m[SCORE] >= m[BASELINE_SCORE]:
        problems.append(
            f"score {m[SCORE]:.4f} is not better than {baseline_label} ({m[BASELINE_SCORE]:.4f})"
        )
    return problems


def build_gate_check(
    asset_key: dg.AssetKey,
    model_name: str,
    baseline_label: str,
    requirement: Requirement | None = None,
    requirement_text: str = "",
) -> dg.AssetChecksDefinition:
    """``candidate_gate`` on ``asset_key``: blocking, so a bad candidate never reaches its
    champion asset (which does not run in the same run when the gate fails)."""

    @dg.asset_check(
        asset=asset_key,
        name=GATE,
        blocking=True,
        description="The newest candidate's files match their checksums and it beats "
        f"{baseline_label} on the same CV folds{requirement_text}; else ERROR and its champion "
        "asset does not run. Writes nothing: the champion asset decides.",
    )
    def candidate_gate(
        context: dg.AssetCheckExecutionContext, model_store: ModelStoreResource
    ) -> dg.AssetCheckResult:
        version = latest_version(context.instance, asset_key)
        if version is None:
            return dg.AssetCheckResult(passed=False, description="no candidate trained yet")
        registry = model_store.registry(model_name)
        problems = gate_problems(registry, registry.get(version), baseline_label, requirement)
        description = "; ".join(problems) or "may be decided on by the champion asset"
        context.log.info(f"{model_name}:v{version}: {description}")
        return dg.AssetCheckResult(
            passed=not problems,
            description=description,
            metadata={"version": version},
        )

    return candidate_gate
