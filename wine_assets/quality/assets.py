"""The wine quality model: train a candidate, evaluate it as Cortez et al. did, register it."""

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.automation import BUILD_WHEN_MISSING
from platform_core.champion import Headline, headlines_markdown, metrics_table
from platform_core.model_store import ModelStoreResource
from platform_core.promotion import (
    BASELINE_SCORE,
    CHAMPION_SCORE,
    SCORE,
    build_gate_check,
    latest_version,
)
from platform_core.registry import ModelRegistry, ModelVersion, Status
from platform_core.storage import PlatformStorage
from wine_assets.features import WINE_TYPES
from wine_assets.quality import GROUP, MODEL_NAME, report
from wine_assets.quality import model as wine_model
from wine_assets.quality import trust as wine_trust

CANDIDATE = dg.AssetKey("wine_quality_model_candidate")

#: The figures a person reads first, in plain words (Cortez protocol and held-out calibration),
#: on the candidate next to the champion it would replace, and on the champion asset.
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
        "holdout_red_interval90_width",
        "90 % interval width, red",
        "mean width of the 90 % interval in quality points, held-out",
    ),
    Headline(
        "holdout_white_interval90_width",
        "90 % interval width, white",
        "mean width of the 90 % interval in quality points, held-out",
    ),
]


class WineTrainConfig(dg.Config):
    cv_repeats: int = Field(
        default=2,
        ge=1,
        le=20,
        description="Repeats of 5-fold CV (Cortez et al. used 20; benchmarks/wine_model.py does).",
    )
    cv_seed: int = Field(default=0, description="Seed of the CV folds (same for every spec).")


def train_run_config(cv_repeats: int) -> dict:
    """Run config giving the candidate ``cv_repeats`` CV repeats: runs about the wiring, not
    the score (tests, benchmarks), use 1 without restating the op and field names."""
    return {"ops": {CANDIDATE.to_python_identifier(): {"config": {"cv_repeats": cv_repeats}}}}


def _flat(prefix: str, result: dict) -> dict[str, float]:
    """Overall and per-type Cortez metrics as flat metadata entries."""
    out = {}
    for scope, metrics in result.items():
        if isinstance(metrics, dict):
            for k, v in metrics.items():
                if isinstance(v, int | float):
                    out[f"{prefix}{scope}_{k}"] = round(float(v), 4)
    return out


@dg.asset(
    group_name=GROUP,
    kinds={"scikit-learn", "python"},
    automation_condition=BUILD_WHEN_MISSING,
    description="A wine quality regressor (11 features + wine type) registered as a candidate; "
    "Cortez protocol (MAD, accuracy at T=0.25/0.5/1.0, per type) and duplicate-aware CV, next "
    "to the barrel system's original XGBoost regressor, the original 6-feature 'good wine' "
    "classifier and the champion on the same folds.",
)
def wine_quality_model_candidate(
    context: dg.AssetExecutionContext,
    config: WineTrainConfig,
    wine_training_data: pd.DataFrame,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    df = wine_training_data
    registry = model_store.registry(MODEL_NAME)
    champion = registry.champion()
    cv = {"n_repeats": config.cv_repeats, "seed": config.cv_seed}
    cand = wine_model.evaluate_cv(wine_model.CANDIDATE_SPEC, df, **cv)
    cand_dedup = wine_model.evaluate_cv(
        wine_model.CANDIDATE_SPEC, df, dedup=True, return_predictions=True, **cv
    )
    # P(good) and the 90 % interval from the duplicate-aware CV's first repeat: calibrated on
    # all its out-of-fold predictions for the served model, and cross-fitted (each fold by the
    # others) for the held-out figures the promotion check reads.
    frame = df.reset_index(drop=True)
    wine_types, y = frame["wine_type"].to_numpy(), frame["quality"].to_numpy()
    oof = cand_dedup.pop("predictions")[0]
    folds = wine_model.fold_assignments(frame, 5, 1, config.cv_seed, dedup=True)[0]
    proba, interval = wine_trust.cross_fold_predictions(wine_types, y, oof, folds)
    good = wine_model.is_good(y)
    held_out = {
        t: wine_trust.trust_metrics(good[rows], proba[rows], y[rows], interval[rows])
        for t in WINE_TYPES
        if (rows := wine_types == t).any()
    }
    sys_a = wine_model.evaluate_cv(wine_model.SYSTEM_A_SPEC, df, **cv)
    sys_b = wine_model.evaluate_cv(wine_model.SYSTEM_B_SPEC, df, **cv)
    metrics = {
        SCORE: cand["overall"]["mad"],
        BASELINE_SCORE: sys_a["overall"]["mad"],
        **_flat("cv_", cand),
        **_flat("dedup_cv_", cand_dedup),
        **_flat("system_a_", sys_a),
        **_flat("system_b_", sys_b),
        **_flat("holdout_", held_out),
    }
    if champion is not None:
        spec = wine_model.ModelSpec.from_json(champion.params["spec"])
        metrics[CHAMPION_SCORE] = wine_model.evaluate_cv(spec, df, **cv)["overall"]["mad"]
    fitted = wine_model.fit(wine_model.CANDIDATE_SPEC, df)
    fitted.trust = wine_trust.from_out_of_fold(wine_types, y, oof)
    mv = registry.register(
        wine_model.to_files(fitted),
        metrics=metrics,
        params={
            "spec": wine_model.CANDIDATE_SPEC.to_json(),
            "cv": {"n_splits": 5, **cv},
            "training_rows": len(df),
        },
        run_id=context.run.run_id,
    )
    context.log.info(f"registered {mv.label}: CV MAD {metrics[SCORE]:.3f}")
    compared_with = f"champion v{champion.version}" if champion else "no champion yet"
    return dg.MaterializeResult(
        metadata={
            "version": mv.version,
            "checksums": dg.MetadataValue.json(mv.files),
            "headline_figures": headlines_markdown(
                HEADLINES, mv, champion, f"candidate v{mv.version}", compared_with
            ),
            # the headline figures also as numbers, for the UI's plots over materializations
            **{h.metric: metrics[h.metric] for h in HEADLINES if h.metric in metrics},
            "all_metrics": metrics_table(metrics),
            "confusion_cv": report.confusion_plot(y, oof),
            "calibration_cv": report.calibration_plot(wine_types, good, proba),
            "interval_coverage_cv": report.coverage_plot(wine_types, y, oof, interval),
        }
    )


def register_champion(storage: PlatformStorage, df: pd.DataFrame, reason: str) -> ModelVersion:
    """The candidate recipe fitted on ``df`` and made champion directly, skipping the graph's
    cross-validation and promotion check: for tests and benchmarks that need *a* champion to
    serve, not an evaluated one. Its spec is recorded, as the candidate asset records it, so
    a later candidate can still be compared with it."""
    registry = ModelRegistry(storage, MODEL_NAME)
    fitted = wine_model.fit(wine_model.CANDIDATE_SPEC, df)
    fitted.trust = wine_trust.fit_trust(wine_model.CANDIDATE_SPEC, df)
    params = {"spec": wine_model.CANDIDATE_SPEC.to_json(), "training_rows": len(df)}
    mv = registry.register(wine_model.to_files(fitted), metrics={}, params=params)
    return registry.set_status(mv.version, Status.CHAMPION, reason)


def coverage_problems(metrics: dict) -> list[str]:
    """Wine types whose held-out 90 % interval coverage is missing or outside
    ``COVERAGE_RANGE``, each as a sentence."""
    lo, hi = wine_trust.COVERAGE_RANGE
    problems = []
    for wine in WINE_TYPES:
        value = metrics.get(f"holdout_{wine}_interval90_coverage")
        if value is None:
            problems.append(f"{wine}: no held-out interval coverage recorded (retrain)")
        elif not lo <= value <= hi:
            problems.append(f"{wine}: held-out 90 % interval coverage {value:.3f} not in {lo}-{hi}")
    return problems


def interval_requirement(candidate: ModelVersion) -> str | None:
    """The promotion check's refusal of a candidate whose intervals do not hold."""
    problems = coverage_problems(candidate.metrics)
    return "; ".join(problems) if problems else None


#: What the candidate must beat, as the gate's result names it.
BASELINE_LABEL = "the barrel system's original XGBoost regressor"


@dg.asset_check(
    asset=CANDIDATE,
    name="interval_coverage",
    blocking=True,
    description="The candidate's 90 % prediction interval covers 87-93 % of held-out wines of "
    "each type (cross-fitted on duplicate-aware folds); else its champion asset does not run.",
)
def interval_coverage(
    context: dg.AssetCheckExecutionContext, model_store: ModelStoreResource
) -> dg.AssetCheckResult:
    version = latest_version(context.instance, CANDIDATE)
    if version is None:
        return dg.AssetCheckResult(passed=False, description="no candidate yet")
    metrics = model_store.registry(MODEL_NAME).get(version).metrics
    problems = coverage_problems(metrics)
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or "held-out coverage within range for every wine type",
        metadata={
            "version": version,
            **{k: v for k, v in metrics.items() if k.startswith("holdout_") and "interval90" in k},
        },
    )


candidate_gate = build_gate_check(
    CANDIDATE,
    MODEL_NAME,
    BASELINE_LABEL,
    interval_requirement,
    requirement_text=" and its 90 % interval's held-out coverage is within range",
)

quality_checks = [interval_coverage, candidate_gate]
