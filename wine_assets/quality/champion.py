"""``wine_quality_champion``: the wine quality model that scores barrels, the API and drift.

Downstream of ``wine_quality_model_candidate`` (gated by ``interval_coverage`` and
``candidate_gate``); the shared champion lifecycle of platform_core/champion.py.
"""

import dagster as dg

from platform_core.champion import Headline, build_champion_asset
from wine_assets.quality.assets import (
    BASELINE_LABEL,
    CANDIDATE,
    GROUP,
    MODEL_NAME,
    interval_requirement,
)

CHAMPION = dg.AssetKey("wine_quality_champion")

#: The figures a person reads first, in plain words (Cortez protocol and held-out calibration).
HEADLINES = [
    Headline(
        "cv_overall_mad",
        "quality error",
        "mean absolute difference between predicted and tasted quality (0-10 scale), "
        "repeated 5-fold CV",
    ),
    Headline(
        "system_a_overall_mad",
        "original barrel model's quality error",
        "the same figure for the barrel system's original XGBoost regressor, same folds",
    ),
    Headline(
        "cv_overall_acc_t05",
        "within half a point",
        "share of wines whose predicted quality is within 0.5 of the tasted one (CV)",
        lower_is_better=False,
    ),
    Headline(
        "holdout_red_good_brier",
        "P(good) error, red",
        "Brier score of the probability that a red wine is good (quality ≥ 6), held-out",
    ),
    Headline(
        "holdout_white_good_brier",
        "P(good) error, white",
        "Brier score of the probability that a white wine is good (quality ≥ 6), held-out",
    ),
    Headline(
        "holdout_red_interval90_coverage",
        "90 % interval coverage, red",
        "share of held-out red wines inside their 90 % interval (0.87-0.93 required)",
        target=0.9,
    ),
    Headline(
        "holdout_white_interval90_coverage",
        "90 % interval coverage, white",
        "share of held-out white wines inside their 90 % interval (0.87-0.93 required)",
        target=0.9,
    ),
    Headline(
        "holdout_white_interval90_width",
        "90 % interval width, white",
        "mean width of the 90 % interval in quality points, held-out",
    ),
]

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
