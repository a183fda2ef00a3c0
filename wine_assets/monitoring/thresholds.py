"""Drift alert thresholds (the original service had none): settings, tuned per site."""

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from platform_core.settings import setting


@dataclass(frozen=True)
class Thresholds:
    auc_warn: float
    auc_error: float
    alpha: float
    share_warn: float
    share_error: float


class DriftThresholds(dg.ConfigurableResource):
    """Numbers kept as text: settings come from environment variables (``dg.EnvVar``)."""

    auc_warn: str = Field(default="0.6", description="Drift AUC from which the check WARNs.")
    auc_error: str = Field(default="0.8", description="Drift AUC from which it is an ERROR.")
    alpha: str = Field(default="0.01", description="A feature drifts when its test p < alpha.")
    share_warn: str = Field(default="0.2", description="Share of drifting features: WARN.")
    share_error: str = Field(default="0.5", description="Share of drifting features: ERROR.")

    def values(self) -> Thresholds:
        t = Thresholds(*(float(v) for v in (
            self.auc_warn, self.auc_error, self.alpha, self.share_warn, self.share_error
        )))  # fmt: skip
        if not 0.5 <= t.auc_warn <= t.auc_error <= 1.0:
            raise ValueError(f"need 0.5 <= auc_warn <= auc_error <= 1, got {t}")
        if not (0 < t.alpha < 1 and 0 <= t.share_warn <= t.share_error <= 1):
            raise ValueError(f"need 0 < alpha < 1 and 0 <= share_warn <= share_error <= 1: {t}")
        return t


def drift_thresholds() -> DriftThresholds:
    return DriftThresholds(
        auc_warn=setting("DRIFT_AUC_WARN", "0.6"),
        auc_error=setting("DRIFT_AUC_ERROR", "0.8"),
        alpha=setting("DRIFT_TEST_ALPHA", "0.01"),
        share_warn=setting("DRIFT_FEATURES_WARN", "0.2"),
        share_error=setting("DRIFT_FEATURES_ERROR", "0.5"),
    )
