"""The model store as a resource: registries over platform storage plus the promotion policy."""

import dagster as dg
from pydantic import Field

from platform_core.registry import (
    ModelRegistry,
    ModelVersion,
    PromotionDecision,
    approval_decision,
    decide_promotion,
)
from platform_core.storage import PlatformStorage


class ModelStoreResource(dg.ConfigurableResource):
    """MODEL_APPROVAL=manual keeps a better candidate pending until someone approves it."""

    storage: dg.ResourceDependency[PlatformStorage]
    approval: str = Field(
        default="auto",
        description="'auto': a better candidate becomes champion at once; 'manual': it waits "
        "as pending_approval until a person materializes the model's champion asset with "
        "run config {version, approver}.",
    )
    min_improvement: float = Field(
        default=0.0, description="How much lower the candidate's CV error must be."
    )

    def registry(self, name: str) -> ModelRegistry:
        return ModelRegistry(self.storage, name)

    def champion_files(
        self, name: str, champion_asset: str = "its champion asset"
    ) -> tuple[ModelVersion, dict[str, bytes]]:
        """The champion of ``name`` and its files, verified against the recorded checksums."""
        registry = self.registry(name)
        champion = registry.champion()
        if champion is None:
            pending = [v.version for v in registry.versions() if v.status == "pending_approval"]
            hint = (
                f"; approve one of {pending} (materialize {champion_asset} from the Launchpad "
                f'with run config {{"version": {pending[-1] if pending else "N"}, '
                '"approver": "<your name>"}), then re-run this step'
            )
            raise dg.Failure(f"{name} has no champion yet" + (hint if pending else ""))
        return champion, registry.verify(champion)

    def _require_approval(self) -> bool:
        if self.approval not in {"auto", "manual"}:
            raise ValueError(f"approval: expected 'auto' or 'manual', got {self.approval!r}")
        return self.approval == "manual"

    def decide(
        self, candidate_score: float, champion_score: float | None, *, more_data: bool = False
    ) -> PromotionDecision:
        return decide_promotion(
            candidate_score,
            champion_score,
            require_approval=self._require_approval(),
            min_improvement=self.min_improvement,
            more_data=more_data,
        )

    def qualified(self, reason: str) -> PromotionDecision:
        """A candidate with no score to compare that passed its own checks (the sensor-profile
        model, refitted on new days): the same approval rule as a candidate that wins."""
        return approval_decision(reason, require_approval=self._require_approval())
