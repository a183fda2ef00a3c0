"""The production topology on real processes: GraphQL launches, the scorer, crashes, restarts.

One topology (tests/topology/conftest.py) serves every scenario, in file order: the wine
scenarios build on the champion and barrels of the one before.
"""

import threading
import time

import numpy as np
import pytest
import requests

from beer_assets.ibu.assets import train_run_config as beer_train_config
from tests.polling import wait_for
from tests.topology.stack import (
    TERMINAL,
    Topology,
    sensor_runs,
    settled,
    stored_kinds,
)
from wine_assets.quality.assets import train_run_config as wine_train_config
from wine_assets.readings.simulator import seed_store, tick
from wine_assets.readings.store import open_store

pytestmark = [pytest.mark.topology, pytest.mark.slow]

#: Training is not what these tests are about: one CV repeat.
BEER_FAST = beer_train_config(1)
WINE_FAST = wine_train_config(1)
BARRELS = 12


def test_beer_graph_launched_through_graphql_lands_in_s3_and_postgres(topology):
    run_id = topology.launch("beer", "punkapi_full_crawl", BEER_FAST)
    assert topology.wait_run(run_id) == "SUCCESS"
    keys = topology.s3_keys(topology.bucket, "platform/")
    assert "platform/tables/beers_clean.parquet" in keys, keys[:20]
    assert any(k.startswith("platform/raw/punkapi/") for k in keys)
    assert topology.sql("SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    materialized = topology.sql(
        "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    assert {k for (k,) in materialized} >= {'["beers_clean"]', '["ibu_predictions"]'}
    logs = topology.s3_keys(topology.env["DAGSTER_COMPUTE_LOGS_BUCKET"])
    assert any(run_id in k for k in logs), logs[:10]


def scored_readings(topology: Topology) -> list[tuple[str, int]]:
    """(barrel, reading seq) of every reading the scorer's ledger records as scored or
    quarantined (its key is the seq: a reading recorded twice would be refused)."""
    from wine_assets.quality.ledger import open_ledger

    with open_store(topology.readings_url) as store:
        rows = open_ledger(store).rows(0, store.max_seq())
    return list(zip(rows["barrel_id"], rows["seq"].astype(int), strict=True))


def written_readings(topology: Topology) -> set[tuple[str, int]]:
    with open_store(topology.readings_url) as store:
        return {(r.barrel_id, r.seq) for r in store.history(0, store.max_seq())}


def reported_days(topology: Topology) -> list[tuple[str, str]]:
    """(asset, partition) of the runless materializations the scorer reported."""
    return topology.sql(
        "SELECT asset_key, partition FROM event_logs WHERE run_id = '' "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION'"
    )


def test_readings_written_to_dynamodb_are_scored_by_the_scorer(topology, data_dir):
    run_id = topology.launch("wine", "wine_retrain", WINE_FAST)
    # Seeded while the model trains: the scorer waits (position kept) for a champion.
    with open_store(topology.readings_url) as store:
        seed_store(store, BARRELS, np.random.default_rng(7), "both", data_dir=data_dir)
    assert topology.wait_run(run_id, timeout_s=240) == "SUCCESS"
    wait_for(lambda: settled(topology), 120, "the scorer to score every barrel")
    scored = scored_readings(topology)
    assert sorted(scored) == sorted(written_readings(topology))
    with open_store(topology.readings_url) as store:
        assert {p.model_version for p in store.predictions()} == {1}
        assert len(store.predictions()) == BARRELS
    # Dagster sees the work as the day's materializations, reported without a run.
    wait_for(lambda: len(reported_days(topology)) >= 2, 60, "the scorer's reports")
    assert {k for k, _ in reported_days(topology)} == {
        '["wine_sensor_snapshot"]',
        '["barrel_quality_predictions"]',
    }
    # The history sensor asks for a day's run at most hourly (first tick: nothing yet).
    assert all("@" in key for _, key, _ in sensor_runs(topology))


def test_scorer_killed_while_readings_change_scores_every_change_exactly_once(topology):
    stop = threading.Event()
    written: list[int] = []

    def keep_changing() -> None:
        rng = np.random.default_rng(11)
        with open_store(topology.readings_url) as store:
            while not stop.is_set():
                written.extend(tick(store, rng, barrels_per_tick=3))
                stop.wait(0.3)

    writer = threading.Thread(target=keep_changing, daemon=True)
    writer.start()
    try:
        for _ in range(3):  # SIGKILL mid-stream, a few times, then restart
            time.sleep(2)
            topology.services["wine-scorer"].kill()
            killed_at = len(written)
            time.sleep(2)  # changes keep arriving while no scorer runs
            assert len(written) > killed_at
            topology.services["wine-scorer"].start()
        time.sleep(3)
    finally:
        stop.set()
        writer.join(timeout=30)
    wait_for(lambda: settled(topology), 180, "the restarted scorer to catch up")
    scored = scored_readings(topology)
    assert len(scored) == len(set(scored)), "a reading was scored twice"
    assert set(scored) == written_readings(topology), "a reading was never scored"


#: dagster-postgres retries a refused connection 5 times, backing off exponentially from
#: 0.2 s: 11.4 s (±1 s of jitter) in all. A write the run worker starts early in a 20 s outage
#: fails for good; the run worker writes events from the moment the run is STARTED.
OUTAGE_S = 20


def test_postgres_restart_during_a_run_succeeds_or_its_retry_does(topology):
    """PostgreSQL goes away for longer than Dagster's storage retries a connection, just as a
    run starts writing its events. What docker/dagster.yaml promises (run_retries): the run
    rides the outage out, or it fails visibly and its one retry succeeds; no event is stored
    twice in either run; the webserver answers again after at most one error."""
    run_id = topology.launch("beer", "punkapi_full_crawl", BEER_FAST)
    wait_for(
        lambda: topology.sql("SELECT status FROM runs WHERE run_id = %s", run_id) == [("STARTED",)],
        120,
        "the run to start",
    )
    worker_log = topology.artifacts / "code-beer.log"  # the run worker is the code server's child
    logged_before = worker_log.stat().st_size
    topology.postgres.stop()  # while the run worker writes its first steps' events
    time.sleep(OUTAGE_S)
    topology.postgres.start()
    restarted_at = time.time()
    # The webserver keeps a pooled connection (dagster-webserver's optimize_for_webserver):
    # the first request after the restart can meet it closed (HTTP 500), then it reconnects.
    answers: list[int] = []

    def page_served() -> bool:
        answers.append(requests.get(f"{topology.webserver_url}/runs", timeout=30).status_code)
        return answers[-1] == 200

    wait_for(page_served, 60, "the webserver serving pages again")
    assert answers.count(500) <= 1, answers

    # A retry is launched by the daemon after the failure is stored (or after run monitoring
    # finds a worker that died without storing it: poll_interval_seconds 30).
    final = wait_for(lambda: finished_family(topology, run_id), 420, "the run and its retries")
    with open(worker_log, "rb") as log:  # which way it went, for people reading artifacts
        log.seek(logged_before)
        gave_up = b"too many retries for DB connection" in log.read()
    times = topology.sql(
        "SELECT run_id, status, create_timestamp, start_time, end_time FROM runs "
        "WHERE run_id = ANY(%s) ORDER BY id",
        [rid for rid, _ in final],
    )
    (topology.artifacts / "postgres-restart.txt").write_text(
        f"run {run_id}, {OUTAGE_S} s outage, database back at {restarted_at:.1f}: "
        f"a worker write gave up: {gave_up}; webserver answers {answers}; runs (id, status, "
        f"created, started, ended): {times}\n"
    )
    statuses = [status for _, status in final]
    assert statuses in (["SUCCESS"], ["FAILURE", "SUCCESS"]), final
    if statuses == ["SUCCESS"]:  # it rode out the outage: running across it, record whole
        (ended,) = topology.sql("SELECT end_time FROM runs WHERE run_id = %s", run_id)[0]
        assert ended > restarted_at, "the run had finished before the restart"
        assert {"RUN_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "RUN_SUCCESS"} <= kinds_of(
            topology, run_id
        )
    else:  # visibly: the failed run's own record says so; the retry is the daemon's, and whole
        assert "RUN_FAILURE" in kinds_of(topology, run_id)
        retry_id = final[1][0]
        tags = dict(topology.sql("SELECT key, value FROM run_tags WHERE run_id = %s", retry_id))
        assert tags.get("dagster/retry_number") == "1", tags
        assert tags.get("dagster/parent_run_id") == run_id, tags
        assert {"RUN_START", "STEP_SUCCESS", "RUN_SUCCESS"} <= kinds_of(topology, retry_id)
    # between them, every asset of the job was materialized
    materialized = topology.sql(
        "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = ANY(%s) "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        [rid for rid, _ in final],
    )
    assert {k for (k,) in materialized} >= {'["beers_clean"]', '["ibu_predictions"]'}
    for rid, _ in final:
        twice = topology.sql(
            "SELECT dagster_event_type, step_key, asset_key, partition, count(*) "
            "FROM event_logs WHERE run_id = %s AND dagster_event_type = ANY(%s) "
            "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
            rid,
            stored_kinds(
                "ASSET_MATERIALIZATION",
                "STEP_START",
                "STEP_SUCCESS",
                "STEP_FAILURE",
                "RUN_START",
                "RUN_SUCCESS",
                "RUN_FAILURE",
            ),
        )
        assert twice == [], f"recorded twice in {rid}: {twice}"
        (rows,) = topology.sql("SELECT count(*) FROM runs WHERE run_id = %s", rid)[0]
        assert rows == 1


def kinds_of(topology: Topology, run_id: str) -> set[str]:
    """The event types stored for ``run_id``, under their names (``RUN_START``, not the stored
    ``PIPELINE_START``)."""
    from dagster import DagsterEventType

    stored = {
        k
        for (k,) in topology.sql(
            "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s", run_id
        )
    }
    return {t.name for t in DagsterEventType if t.value in stored}


def finished_family(topology: Topology, run_id: str) -> list[tuple[str, str]] | None:
    """The run and the retries the daemon launched for it (oldest first) once all finished
    and no further retry appeared within a few seconds; None while not."""

    def family() -> list[tuple[str, str]]:
        return topology.sql(
            "SELECT run_id, status FROM runs WHERE run_id = %s OR run_id IN "
            "(SELECT run_id FROM run_tags WHERE key = 'dagster/root_run_id' AND value = %s) "
            "ORDER BY id",
            run_id,
            run_id,
        )

    first = family()
    if not all(status in TERMINAL for _, status in first):
        return None
    time.sleep(5)  # the daemon's retry (if any) is queued within a few seconds
    return first if family() == first else None
