"""The production topology on real processes: GraphQL launches, sensors, crashes, restarts.

One topology (tests/topology/conftest.py) serves every scenario, in file order.
"""

import pytest

pytestmark = [pytest.mark.topology, pytest.mark.slow]

#: Training is not what these tests are about: one CV repeat.
BEER_FAST = {"ops": {"ibu_model_candidate": {"config": {"cv_repeats": 1}}}}
WINE_FAST = {"ops": {"wine_quality_model_candidate": {"config": {"cv_repeats": 1}}}}


def test_beer_graph_launched_through_graphql_lands_in_s3_and_postgres(topology):
    run_id = topology.launch("beer", "punkapi_full_crawl", BEER_FAST)
    assert topology.wait_run(run_id) == "SUCCESS"
    keys = topology.s3_keys(topology.bucket, "platform/")
    assert "platform/tables/beers_clean.parquet" in keys, keys[:20]
    assert any(k.startswith("platform/raw/punkapi/") for k in keys)
    assert topology.sql("SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    logs = topology.s3_keys(topology.env["DAGSTER_COMPUTE_LOGS_BUCKET"])
    assert any(run_id in k for k in logs), logs[:10]
