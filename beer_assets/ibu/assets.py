"""IBU model: train a candidate, gate it, decide its promotion (the champion asset), predict."""

import dagster as dg
import pandas as pd
from pydantic import Field

from beer_assets.ibu import GROUP, MODEL_NAME
from beer_assets.ibu import model as ibu
from platform_core.automation import BUILD_WHEN_MISSING
from platform_core.champion import (
    Headline,
    build_champion_asset,
    headlines_markdown,
    metrics_table,
)
from platform_core.model_store import ModelStoreResource
from platform_core.plots import bar_plot, residual_plot
from platform_core.promotion import (
    BASELINE_SCORE,
    CHAMPION_SCORE,
    SCORE,
    build_gate_check,
)

CANDIDATE = dg.AssetKey("ibu_model_candidate")
CHAMPION = dg.AssetKey("ibu_model_champion")
BASELINE_LABEL = "the original IBU model (XGBoost on six columns)"

#: The figures a person reads first, in plain words.
HEADLINES = [
    Headline(
        "cv_mae",
        "IBU error",
        "mean absolute difference between predicted and published IBU, repeated 5-fold CV",
    ),
    Headline(
        "baseline_cv_mae",
        "original IBU model's error",
        "the same figure for the original IBU model (XGBoost on six columns), same folds",
    ),
    Headline(
        "cv_r2",
        "share of IBU variation explained",
        "R², repeated 5-fold CV (1 = perfect, 0 = no better than the mean)",
        lower_is_better=False,
    ),
    Headline(
        "seed_split_mae",
        "IBU error on the original split",
        "mean absolute error on the original IBU model's test split (0.33, seed 42)",
    ),
]


class TrainConfig(dg.Config):
    cv_repeats: int = Field(default=3, ge=1, le=20, description="Repeats of 5-fold CV.")
    cv_seed: int = Field(default=0, description="Seed of the CV folds (same for every spec).")


def train_run_config(cv_repeats: int) -> dict:
    """Run config giving the candidate ``cv_repeats`` CV repeats: runs about the wiring, not
    the score (tests), use 1 without restating the op and field names."""
    return {"ops": {CANDIDATE.to_python_identifier(): {"config": {"cv_repeats": cv_repeats}}}}


@dg.asset(
    group_name=GROUP,
    kinds={"xgboost", "python"},
    automation_condition=BUILD_WHEN_MISSING,
    description="A newly trained IBU model registered as a candidate, evaluated on the "
    "original IBU model's split (test 0.33, seed 42) and on repeated 5-fold CV next to the "
    "original IBU model (XGBoost on six columns) and the current champion.",
)
def ibu_model_candidate(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    beers_clean: pd.DataFrame,
    model_store: ModelStoreResource,
) -> dg.MaterializeResult:
    registry = model_store.registry(MODEL_NAME)
    champion = registry.champion()
    cv_args = {"n_repeats": config.cv_repeats, "seed": config.cv_seed}

    cand_split = ibu.evaluate_seed_split(ibu.CANDIDATE_SPEC, beers_clean)
    seed_split = ibu.evaluate_seed_split(ibu.SEED_SPEC, beers_clean)
    cand_cv = ibu.evaluate_cv(ibu.CANDIDATE_SPEC, beers_clean, return_predictions=True, **cv_args)
    seed_cv = ibu.evaluate_cv(ibu.SEED_SPEC, beers_clean, return_predictions=True, **cv_args)
    champion_cv = None
    if champion is not None:
        champion_spec = ibu.ModelSpec.from_json(champion.params["spec"])
        champion_cv = ibu.evaluate_cv(champion_spec, beers_clean, **cv_args)["mae"]

    model = ibu.fit(ibu.CANDIDATE_SPEC, beers_clean)
    metrics = {
        SCORE: cand_cv["mae"],
        BASELINE_SCORE: seed_cv["mae"],
        "cv_mae": cand_cv["mae"],
        "cv_mae_std": cand_cv["mae_std"],
        "cv_rmse": cand_cv["rmse"],
        "cv_r2": cand_cv["r2"],
        "seed_split_mae": cand_split["mae"],
        "seed_split_rmse": cand_split["rmse"],
        "seed_split_r2": cand_split["r2"],
        "baseline_cv_mae": seed_cv["mae"],
        "baseline_seed_split_mae": seed_split["mae"],
    }
    if champion_cv is not None:
        metrics[CHAMPION_SCORE] = champion_cv
        metrics["champion_cv_mae"] = champion_cv
    mv = registry.register(
        ibu.to_files(model),
        metrics=metrics,
        params={
            "spec": ibu.CANDIDATE_SPEC.to_json(),
            "cv": {"n_splits": 5, **cv_args},
            "champion_version": champion.version if champion else None,
            "training_rows": cand_cv["n_rows"],
        },
        run_id=context.run.run_id,
    )
    context.log.info(f"registered {mv.label}: cv_mae {cand_cv['mae']:.3f}")
    compared_with = f"champion v{champion.version}" if champion else "no champion yet"
    return dg.MaterializeResult(
        metadata={
            "version": mv.version,
            "model_uri": dg.MetadataValue.path(
                model_store.storage.uri(registry.file_key(mv.version, ""))
            ),
            "checksums": dg.MetadataValue.json(mv.files),
            "headline_figures": headlines_markdown(
                HEADLINES, mv, champion, f"candidate v{mv.version}", compared_with
            ),
            # the headline figures also as numbers, for the UI's plots over materializations
            **{h.metric: round(metrics[h.metric], 4) for h in HEADLINES},
            "all_metrics": metrics_table(metrics),
            "training_rows": cand_cv["n_rows"],
            "residuals_cv": residual_plot(
                cand_cv["y_true"], cand_cv["y_pred"], "candidate, held-out (CV)"
            ),
            "residuals_cv_baseline": residual_plot(
                seed_cv["y_true"], seed_cv["y_pred"], "original IBU model, same folds"
            ),
            "feature_importance": bar_plot(ibu.feature_importance(model), "gain importance"),
        }
    )


candidate_gate = build_gate_check(CANDIDATE, MODEL_NAME, BASELINE_LABEL)

ibu_model_champion = build_champion_asset(
    name=CHAMPION.path[-1],
    candidate=CANDIDATE,
    model_name=MODEL_NAME,
    group_name=GROUP,
    headlines=HEADLINES,
    baseline_label=BASELINE_LABEL,
    description="The IBU model that scores the beers.",
)


@dg.asset(
    group_name=GROUP,
    kinds={"xgboost", "pandas", "parquet"},
    deps=[CHAMPION],
    automation_condition=BUILD_WHEN_MISSING,
    description="IBU predicted by the champion for every beer; the five beers without a "
    "published IBU get the prediction in ibu_filled.",
)
def ibu_predictions(
    context: dg.AssetExecutionContext,
    beers_clean: pd.DataFrame,
    model_store: ModelStoreResource,
) -> dg.Output[pd.DataFrame]:
    champion, files = model_store.champion_files(MODEL_NAME, CHAMPION.to_user_string())
    model = ibu.from_files(files)
    predicted = ibu.predict(model, beers_clean)
    out = pd.DataFrame(
        {
            "id": beers_clean["id"].astype("Int64"),
            "name": beers_clean["name"].astype("string"),
            "ibu_published": beers_clean["ibu"].astype("float64"),
            "ibu_predicted": predicted.astype("float64"),
        }
    )
    out["ibu_filled"] = out["ibu_published"].fillna(out["ibu_predicted"])
    out["model_version"] = champion.version
    filled = int(out["ibu_published"].isna().sum())
    known = out.dropna(subset=["ibu_published"])
    context.log.info(f"{champion.label} scored {len(out)} beers, filled {filled}")
    return dg.Output(
        out,
        metadata={
            "model_version": champion.version,
            "filled_nulls": filled,
            "in_sample_mae": round(
                float((known["ibu_published"] - known["ibu_predicted"]).abs().mean()), 3
            ),
            "filled_rows": dg.MetadataValue.md(
                out[out["ibu_published"].isna()].to_markdown(index=False)
            ),
        },
    )
