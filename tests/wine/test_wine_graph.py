"""The wine graph in Dagster: training → champion → the barrel scorer → daily history."""

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from platform_core.model_store import ModelStoreResource
from platform_core.resources import shared_resources
from platform_core.settings import init_dagster_home
from platform_core.storage import PlatformStorage
from tests.conftest import REPO_ROOT
from wine_assets.definitions import defs
from wine_assets.quality.assets import train_run_config
from wine_assets.quality.consumer import BarrelScorer, ChampionSource
from wine_assets.quality.ledger import open_ledger
from wine_assets.quality.sensor import day_requests
from wine_assets.quality.snapshot import history_partitions
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.simulator import seed_store, tick
from wine_assets.readings.store import open_store

ASSETS = list(defs.assets)
CHECKS = list(defs.asset_checks)
FAST = train_run_config(1)
HISTORY = dg.AssetSelection.assets("wine_sensor_snapshot", "barrel_quality_predictions")


def resources(storage: PlatformStorage, store_url: str) -> dict:
    """The location's own resources, storage and readings store pointed at the test's."""
    return {
        **defs.resources,
        **shared_resources(storage=storage),
        "readings_store": ReadingsStoreResource(url=store_url),
    }


@pytest.fixture
def barrels(tmp_path, data_dir) -> str:
    url = f"sqlite:///{tmp_path / 'readings.db'}"
    with open_store(url) as store:
        store.create()
        seeded = seed_store(store, 16, np.random.default_rng(1), "both", data_dir=data_dir)
    assert {r.wine_type for r in seeded} == {"red", "white"}  # both types reach the model
    return url


def score_all(url: str, storage: PlatformStorage) -> None:
    """What wine-scorer does, until it has caught up."""
    with open_store(url) as store:
        ledger = open_ledger(store)
        source = ChampionSource(ModelStoreResource(storage=storage))
        scorer = BarrelScorer(store, ledger, source.current)
        while scorer.step():
            pass
        ledger.close()


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def run_day(instance, day, storage, url, raise_on_error=True):
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=HISTORY,
        partition_key=day,
        resources=resources(storage, url),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def test_history_partitions_are_days_and_nothing_grows_with_readings():
    assert isinstance(history_partitions, dg.DailyPartitionsDefinition)
    assert today() in history_partitions.get_partition_keys()  # today is updated as it goes
    job = defs.resolve_job_def("barrel_snapshot")
    assert job.partitions_def == history_partitions
    for key in ("wine_sensor_snapshot", "barrel_quality_predictions"):
        asset = defs.resolve_assets_def(key)
        assert asset.partitions_def == history_partitions
    names = {getattr(a.partitions_def, "name", None) for a in defs.assets}
    assert "wine_snapshots" not in names  # the per-tick partition set is gone


def test_day_run_writes_the_days_history_and_every_check_passes(barrels, champion_storage):
    storage = champion_storage
    with open_store(barrels) as store:
        tick(store, np.random.default_rng(3))
        tick(store, np.random.default_rng(4), barrels_per_tick=5)  # superseded readings too
        written = {(r.barrel_id, r.seq) for r in store.history(0, store.max_seq())}
    score_all(barrels, storage)
    with dg.instance_for_test() as instance:
        result = run_day(instance, today(), storage, barrels)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert all(e.passed for e in checks.values()), checks
    assert set(checks) == {
        "writes_accounted",
        "no_missing_values",
        "within_training_ranges",
        "barrels_fresh",
    }
    snap = storage.read_parquet(f"tables/wine_sensor_snapshot/{today()}.parquet")
    assert set(zip(snap["barrel_id"], snap["seq"], strict=True)) == written
    preds = storage.read_parquet(f"tables/barrel_quality_predictions/{today()}.parquet")
    assert set(zip(preds["barrel_id"], preds["reading_seq"], strict=True)) == written
    assert preds["p_good"].between(0, 1).all()
    assert (preds["quality_low_90"] <= preds["predicted_quality"]).all()
    assert (preds["predicted_quality"] <= preds["quality_high_90"]).all()
    (mat,) = result.asset_materializations_for_node("barrel_quality_predictions")
    assert mat.metadata["seq_range"].value == f"[1, {16 + 16 + 5}]"


def test_corrupted_readings_are_quarantined_and_named_by_the_range_check(barrels, champion_storage):
    """Three barrels corrupted (the old system's bad batch): the ERROR check names them, their
    readings are kept with a reason and not scored; every other reading is scored."""
    storage = champion_storage
    with open_store(barrels) as store:
        bad = tick(store, np.random.default_rng(4), mode="corrupted", barrels_per_tick=3)
        tick(store, np.random.default_rng(5), barrels_per_tick=2)
    score_all(barrels, storage)
    with dg.instance_for_test() as instance:
        result = run_day(instance, today(), storage, barrels, raise_on_error=False)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    ranges = checks["within_training_ranges"]
    assert not ranges.passed and ranges.severity == dg.AssetCheckSeverity.ERROR
    assert ranges.metadata["barrels_out_of_range"].value == 3
    assert checks["writes_accounted"].passed  # quarantined is accounted for
    snap = storage.read_parquet(f"tables/wine_sensor_snapshot/{today()}.parquet")
    held = snap[snap["outcome"] == "quarantined"]
    assert sorted(held["seq"]) == sorted(bad)
    assert held["quarantine_reason"].str.contains("alcohol 20 outside").all()
    preds = storage.read_parquet(f"tables/barrel_quality_predictions/{today()}.parquet")
    assert not set(preds["reading_seq"]) & set(bad)
    assert len(preds) == 16 + 2


def test_a_write_the_ledger_lacks_fails_the_accounting_check(barrels, champion_storage):
    storage = champion_storage
    with open_store(barrels) as store:
        tick(store, np.random.default_rng(6), barrels_per_tick=4)
    score_all(barrels, storage)
    with sqlite3.connect(barrels.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM scoring_log WHERE seq = 9")  # a write the scorer skipped
    with dg.instance_for_test() as instance:
        result = run_day(instance, today(), storage, barrels, raise_on_error=False)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["writes_accounted"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["unaccounted_seqs"].value == [9]


def test_the_history_sensor_asks_for_at_most_25_runs_a_day():
    """Five-minute ticks over two days of a scorer that records all day: one run per hour of
    today and one close of the day before, each run key once."""
    days = {"2026-03-01", "2026-03-02"}
    start = datetime(2026, 3, 1, tzinfo=UTC)
    cursor: dict[str, str] = {}
    keys = []
    for tick_no in range(2 * 24 * 12):
        now = start + timedelta(minutes=5 * tick_no)
        requests, cursor = day_requests(now, cursor, days.__contains__)
        keys += [r.run_key for r in requests]
    assert len(keys) == len(set(keys))
    day2 = [k for k in keys if k.startswith("2026-03-02")]
    assert len([k for k in day2 if not k.endswith("close")]) == 24
    assert "2026-03-01@close" in keys and "2026-03-02@close" not in keys
    assert len(keys) <= 2 * 25


def test_the_sensor_closes_yesterday_once_the_scorer_is_in_today(barrels, champion_storage):
    score_all(barrels, champion_storage)
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def("barrel_history_sensor")
        with dg.build_sensor_context(
            instance=instance, resources=resources(champion_storage, barrels)
        ) as ctx:
            result = sensor(ctx)
    (request,) = result.run_requests  # nothing was recorded yesterday: no close
    assert request.partition_key == today()
    assert request.run_key == f"{today()}@{datetime.now(UTC).hour:02d}"


@pytest.mark.slow
def test_whole_wine_graph_through_the_cli(tmp_path, data_dir):
    """The CLI retrains, wine-sim seeds the store, the scorer scores, the CLI writes the day's
    history; all checks pass."""
    home = init_dagster_home(tmp_path / "home")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(data_dir),
        "PLATFORM_STORAGE_ROOT": str(tmp_path / "storage"),
        "WINE_READINGS_STORE": f"sqlite:///{tmp_path / 'readings.db'}",
    }
    bin_dir = Path(sys.executable).parent

    def run(*args: str) -> None:
        proc = subprocess.run(
            args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    fast = tmp_path / "fast.yaml"  # one CV repeat: this test is about the wiring, not the score
    fast.write_text(json.dumps(FAST))  # YAML is a superset of JSON
    run(
        str(bin_dir / "dagster"),
        "job",
        "execute",
        "-m",
        "wine_assets.definitions",
        "-j",
        "wine_retrain",
        "-c",
        str(fast),
    )
    # seeded after training, so every barrel is fresh when the snapshot runs
    run(str(bin_dir / "wine-sim"), "seed", "--barrels", "20")
    os.environ["DAGSTER_HOME"], saved = str(home), os.environ.get("DAGSTER_HOME")
    try:
        score_all(env["WINE_READINGS_STORE"], PlatformStorage.local(str(tmp_path / "storage")))
        run(
            str(bin_dir / "dagster"),
            "asset",
            "materialize",
            "-m",
            "wine_assets.definitions",
            "--select",
            "wine_sensor_snapshot,barrel_quality_predictions",
            "--partition",
            today(),
        )
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 2 and all(r.is_success for r in runs)
            evaluations = [
                e.dagster_event.event_specific_data
                for r in runs
                for e in instance.all_logs(
                    r.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                )
            ]
            failed = [ev.check_name for ev in evaluations if not ev.passed]
            assert failed == [], failed
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = saved
    with open_store(env["WINE_READINGS_STORE"]) as store:
        assert len(store.predictions()) == 20
