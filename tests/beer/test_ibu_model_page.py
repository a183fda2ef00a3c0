"""The IBU model's page: headline figures in plain words next to the champion the candidate
would replace, every metric in one table, residual plots from cross-validation only."""

import dagster as dg

from beer_assets.ibu.assets import HEADLINES
from tests.beer.test_pipeline import run_graph


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return result.asset_materializations_for_node(asset)[0].metadata


def test_candidate_and_champion_pages_read_in_plain_words(local_storage, punkapi_server):
    with dg.instance_for_test() as instance:
        first = run_graph(local_storage, punkapi_server.url, instance)
        second = run_graph(local_storage, punkapi_server.url, instance)
    for result, compared in ((first, "no champion yet"), (second, "champion v1")):
        meta = metadata(result, "ibu_model_candidate")
        page = meta["headline_figures"].value
        assert compared in page
        for h in HEADLINES:
            assert f"| {h.label} | {h.measures} ({h.better}) |" in page
        names = {r.data["metric"] for r in meta["all_metrics"].value.records}
        assert {"cv_mae", "cv_r2", "baseline_cv_mae", "seed_split_mae", "score"} <= names
        floats = {k for k, v in meta.items() if isinstance(v, dg.FloatMetadataValue)}
        assert floats == {h.metric for h in HEADLINES}  # the rest is in the table
        assert {"residuals_cv", "residuals_cv_baseline"} <= set(meta)
        assert not [k for k in meta if k.startswith("residuals_seed")]
    # Same recipe, same data: the same CV error as the champion's, said so.
    page = metadata(second, "ibu_model_candidate")["headline_figures"].value
    assert "| same |" in page
    champion = metadata(second, "ibu_model_champion")
    assert "previous champion v1" in champion["headline_figures"].value
    assert {r.data["metric"] for r in champion["champion_metrics"].value.records} >= {"cv_mae"}
