"""The wine model's page: headline figures in plain words (which way is better, next to the
champion it would replace), plots from cross-validation only (confusion, calibration, interval
coverage; no in-sample confusion), and the full metric set as one table."""

import dagster as dg

from platform_core.resources import shared_resources
from wine_assets.quality.assets import (
    HEADLINES,
    quality_checks,
    train_run_config,
    wine_quality_model_candidate,
)
from wine_assets.quality.champion import wine_quality_champion
from wine_assets.quality.training import training_checks, wine_training_data


def test_candidate_page_reads_in_plain_words_with_cross_validated_plots(local_storage):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [
                wine_training_data,
                wine_quality_model_candidate,
                wine_quality_champion,
                *training_checks,
                *quality_checks,
            ],
            resources=shared_resources(storage=local_storage),
            instance=instance,
            run_config=train_run_config(1),
        )
    assert result.success
    meta = result.asset_materializations_for_node("wine_quality_model_candidate")[0].metadata
    page = meta["headline_figures"].value
    assert "no champion yet" in page
    for h in HEADLINES:
        assert f"| {h.label} | {h.measures} ({h.better}) |" in page
    assert "closest to 0.9 is better" in page and "lower is better" in page
    # plots: cross-validated only
    for plot in ("confusion_cv", "calibration_cv", "interval_coverage_cv"):
        assert meta[plot].value.startswith("![plot](data:image/png;base64,"), plot
    assert "confusion" not in meta
    # one table instead of ~125 loose floats
    records = meta["all_metrics"].value.records
    names = {r.data["metric"] for r in records}
    assert len(records) > 100
    assert {"cv_red_acc_t025", "holdout_white_interval90_width", "system_b_red_auc"} <= names
    floats = {k for k, v in meta.items() if isinstance(v, dg.FloatMetadataValue)}
    assert floats == {h.metric for h in HEADLINES}
    champion = result.asset_materializations_for_node("wine_quality_champion")[0].metadata
    assert champion["decision"].value == "champion"
    assert "no previous champion" in champion["headline_figures"].value
    assert len(champion["champion_metrics"].value.records) == len(records)
