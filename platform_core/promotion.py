"""The blocking promotion check shared by every model: candidate → champion, or not.

A model asset registers its candidate with metrics named ``score`` (lower is better, e.g. CV
MAE), ``baseline_score`` (the old system's model on the same folds) and, when a champion
existed, ``champion_score`` (the champion's recipe on the same folds), and puts the version
in its materialization metadata. The check then verifies the files' checksums and applies
the promotion rule of the model store.
"""

from collections.abc import Callable

import dagster as dg

from platform_core.model_store import ModelStoreResource
from platform_core.registry import ChecksumMismatchError, ModelVersion, Status

SCORE, BASELINE_SCORE, CHAMPION_SCORE = "score", "baseline_score", "champion_score"


def latest_version(context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey) -> int | None:
    """The model version in ``asset_key``'s newest materialization's metadata, if any."""
    event = context.instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return None
    return int(event.asset_materialization.metadata["version"].value)


def promotion_result(
    passed: bool, reason: str, version: int, *, status: str = "", error: bool = False
) -> dg.AssetCheckResult:
    """ERROR for broken candidates (tampered, no better than the old system); a candidate that
    merely loses to the champion is a WARN: the champion keeps serving predictions."""
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN,
        description=reason,
        metadata={"version": version, "status": str(status or Status.REJECTED)},
    )


#: A model's own promotion requirement: the reason to refuse a candidate, or None.
Requirement = Callable[[ModelVersion], str | None]


def promote(
    model_store: ModelStoreResource,
    model_name: str,
    version: int,
    baseline_label: str,
    requirement: Requirement | None = None,
) -> dg.AssetCheckResult:
    """Decide once for ``version`` and record the decision in the registry. ``requirement``
    (e.g. the wine model's interval coverage) refuses a candidate as ERROR, like a checksum."""
    registry = model_store.registry(model_name)
    candidate = registry.get(version)
    if candidate.status != Status.CANDIDATE:  # decided earlier: report, do not decide twice
        return promotion_result(
            candidate.status != Status.REJECTED,
            candidate.history[-1]["reason"],
            candidate.version,
            status=candidate.status,
        )
    try:
        registry.verify(candidate)
    except ChecksumMismatchError as exc:
        registry.set_status(candidate.version, Status.REJECTED, str(exc))
        return promotion_result(False, str(exc), candidate.version, error=True)
    refused = requirement(candidate) if requirement is not None else None
    if refused:
        registry.set_status(candidate.version, Status.REJECTED, refused)
        return promotion_result(False, refused, candidate.version, error=True)
    m = candidate.metrics
    if m[SCORE] >= m[BASELINE_SCORE]:
        reason = (
            f"score {m[SCORE]:.4f} is not better than {baseline_label} ({m[BASELINE_SCORE]:.4f})"
        )
        registry.set_status(candidate.version, Status.REJECTED, reason)
        return promotion_result(False, reason, candidate.version, error=True)
    decision = model_store.decide(
        m[SCORE], m.get(CHAMPION_SCORE), more_data=_more_data(candidate, registry.champion())
    )
    registry.set_status(candidate.version, decision.status, decision.reason)
    return promotion_result(
        decision.status != Status.REJECTED,
        decision.reason,
        candidate.version,
        status=decision.status,
    )


def _more_data(candidate: ModelVersion, champion: ModelVersion | None) -> bool:
    if champion is None:
        return False
    return candidate.params.get("training_rows", 0) > champion.params.get("training_rows", 0)


def build_promotion_check(
    asset_key: dg.AssetKey, model_name: str, baseline_label: str
) -> dg.AssetChecksDefinition:
    """``candidate_promotion`` on ``asset_key``: blocking, so nothing scores with a bad model."""

    @dg.asset_check(
        asset=asset_key,
        name="candidate_promotion",
        blocking=True,
        description="Promote the newest candidate to champion when it beats the champion on "
        "the same CV folds (or leave it pending approval); refuse files whose checksum does "
        f"not match and candidates no better than {baseline_label}.",
    )
    def candidate_promotion(
        context: dg.AssetCheckExecutionContext, model_store: ModelStoreResource
    ) -> dg.AssetCheckResult:
        version = latest_version(context, asset_key)
        if version is None:
            return promotion_result(False, "no candidate has been trained yet", -1)
        result = promote(model_store, model_name, version, baseline_label)
        context.log.info(f"{model_name}:v{version}: {result.description}")
        return result

    return candidate_promotion
