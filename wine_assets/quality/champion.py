"""``wine_quality_champion``: the wine quality model that scores barrels, the API and drift.

Downstream of ``wine_quality_model_candidate`` (gated by ``interval_coverage`` and
``candidate_gate``); the shared champion lifecycle of platform_core/champion.py.
"""

import dagster as dg

from platform_core.champion import build_champion_asset
from wine_assets.quality import GROUP, MODEL_NAME
from wine_assets.quality.assets import (
    BASELINE_LABEL,
    CANDIDATE,
    HEADLINES,
    interval_requirement,
)

CHAMPION = dg.AssetKey("wine_quality_champion")

wine_quality_champion = build_champion_asset(
    name=CHAMPION.path[-1],
    candidate=CANDIDATE,
    model_name=MODEL_NAME,
    group_name=GROUP,
    headlines=HEADLINES,
    baseline_label=BASELINE_LABEL,
    requirement=interval_requirement,
    description="The wine quality model that scores the barrels, answers the wine API and is "
    "compared by the drift reports.",
)
