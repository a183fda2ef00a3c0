"""The wine graph in Dagster: training → champion → sensor-triggered snapshots → predictions."""

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pytest

from platform_core.model_store import ModelStoreResource
from platform_core.settings import init_dagster_home
from platform_core.storage import PlatformStorage
from platform_core.tables import ParquetTableIOManager
from tests.conftest import REPO_ROOT
from wine_assets.definitions import defs, snapshot_job
from wine_assets.quality.assets import train_run_config
from wine_assets.quality.sensor import build_readings_sensor
from wine_assets.quality.snapshot import snapshot_key, snapshot_partitions, snapshot_window
from wine_assets.readings.resource import ReadingsStoreResource
from wine_assets.readings.simulator import seed_store, tick
from wine_assets.readings.store import open_store

ASSETS = list(defs.assets)
CHECKS = list(defs.asset_checks)
SENSOR = build_readings_sensor(snapshot_job)
FAST = train_run_config(1)
SNAPSHOT_ASSETS = dg.AssetSelection.assets("wine_sensor_snapshot", "barrel_quality_predictions")


def resources(storage: PlatformStorage, store_url: str) -> dict:
    """The location's own resources, storage and readings store pointed at the test's."""
    return {
        **defs.resources,
        "storage": storage,
        "io_manager": ParquetTableIOManager(storage=storage),
        "model_store": ModelStoreResource(storage=storage),
        "readings_store": ReadingsStoreResource(url=store_url),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> tuple[PlatformStorage, Path]:
    """Storage holding the training table and a champion model (trained once per module)."""
    root = tmp_path_factory.mktemp("wine")
    storage = PlatformStorage.local(str(root / "storage"))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=dg.AssetSelection.assets(
                "wine_training_data", "wine_quality_model_candidate"
            ),
            resources=resources(storage, f"sqlite:///{root / 'unused.db'}"),
            instance=instance,
            run_config=FAST,
        )
    assert result.success
    errors = [
        e.check_name
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert errors == []
    return storage, root


@pytest.fixture
def barrels(tmp_path, data_dir) -> str:
    url = f"sqlite:///{tmp_path / 'readings.db'}"
    with open_store(url) as store:
        store.create()
        seeded = seed_store(store, 16, np.random.default_rng(1), "both", data_dir=data_dir)
    assert {r.wine_type for r in seeded} == {"red", "white"}  # both types reach the model
    return url


def evaluate_sensor(instance, cursor, storage, url):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources(storage, url)
    ) as ctx:
        return SENSOR(ctx)


def run_snapshot(instance, key, storage, url, raise_on_error=True):
    instance.add_dynamic_partitions(snapshot_partitions.name, [key])
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=SNAPSHOT_ASSETS,
        partition_key=key,
        resources=resources(storage, url),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def test_sensor_scores_every_change_exactly_once_across_a_restart(trained, barrels):
    storage, _ = trained
    scored: list[tuple[str, int]] = []
    with dg.instance_for_test() as instance:
        first = evaluate_sensor(instance, None, storage, barrels)
        (request,) = first.run_requests
        assert request.run_key == request.partition_key == f"seq-{16:012d}"
        result = run_snapshot(instance, request.partition_key, storage, barrels)
        scored += _scored(result)
        # nothing new: the stored cursor (what the daemon keeps across restarts) skips
        assert isinstance(evaluate_sensor(instance, first.cursor, storage, barrels), dg.SkipReason)
        # readings change between ticks, twice for some barrels, while the "daemon is down":
        # the first of those two readings is no longer current when the next run looks
        with open_store(barrels) as store:
            rng = np.random.default_rng(3)
            tick(store, rng)
            tick(store, rng, barrels_per_tick=5)
            latest = {r.barrel_id: r.seq for r in store.all()}
            written = {(r.barrel_id, r.seq) for r in store.history(0, store.max_seq())}
        restarted = evaluate_sensor(instance, first.cursor, storage, barrels)  # new process
        (request,) = restarted.run_requests
        assert restarted.cursor == str(max(latest.values()))
        second = _scored(run_snapshot(instance, request.partition_key, storage, barrels))
        scored += second
        # replaying the same partition (a retried run) rescores its own window, nothing else
        replay = _scored(run_snapshot(instance, request.partition_key, storage, barrels))
        assert sorted(replay) == sorted(second)
    assert len(scored) == len(set(scored))  # no (barrel, reading) scored twice
    assert set(scored) == written  # every reading scored, superseded ones included
    assert len(written) == 16 + 16 + 5
    with open_store(barrels) as store:
        preds = {p.barrel_id: p for p in store.predictions()}
    assert {b: p.reading_seq for b, p in preds.items()} == latest  # the newest is in the store
    assert {p.model_version for p in preds.values()} == {1}
    assert all(0 <= p.predicted_quality <= 10 for p in preds.values())


def _scored(result) -> list[tuple[str, int]]:
    mats = result.asset_materializations_for_node("barrel_quality_predictions")
    assert mats, "predictions were not materialized"
    key = result.dagster_run.tags["dagster/partition"]
    storage_frame = result.output_for_node("barrel_quality_predictions")
    assert (storage_frame["reading_seq"] > 0).all(), key
    return list(zip(storage_frame["barrel_id"], storage_frame["reading_seq"], strict=True))


def test_corrupted_readings_fail_the_range_check_and_are_quarantined(trained, barrels):
    """Three barrels corrupted (system B's batch): the ERROR check names them, their readings
    are kept in the snapshot with a reason and not scored; every other reading is scored."""
    storage, _ = trained
    with open_store(barrels) as store:
        corrupted_seqs = tick(store, np.random.default_rng(4), mode="corrupted", barrels_per_tick=3)
        corrupted = {
            (r.barrel_id, r.seq)
            for r in store.history(0, store.max_seq())
            if r.seq in corrupted_seqs
        }
        # A normal reading written after them, for a barrel that was not corrupted.
        healthy = next(r for r in store.all() if r.seq not in corrupted_seqs)
        (healthy_seq,) = store.put([replace(healthy, seq=None, updated_at=None)])
        written = {(r.barrel_id, r.seq) for r in store.history(0, store.max_seq())}
    with dg.instance_for_test() as instance:
        key = snapshot_key(store_max_seq(barrels))
        result = run_snapshot(instance, key, storage, barrels, raise_on_error=False)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    ranges = checks["within_training_ranges"]
    assert not ranges.passed and ranges.severity == dg.AssetCheckSeverity.ERROR
    assert ranges.metadata["barrels_out_of_range"].value == 3
    assert checks["no_missing_values"].passed
    assert set(_scored(result)) == written - corrupted  # the rest, superseded seeds included
    snap = storage.read_parquet(f"tables/wine_sensor_snapshot/{key}.parquet")
    held = snap[snap["quarantine_reason"].notna()]
    assert set(zip(held["barrel_id"], held["seq"], strict=True)) == corrupted
    assert held["quarantine_reason"].str.contains("alcohol 20 outside").all()
    mats = result.asset_materializations_for_node("barrel_quality_predictions")
    assert mats[0].metadata["quarantined"].value == 3
    with open_store(barrels) as store:
        stored = {p.barrel_id: p.reading_seq for p in store.predictions()}
    assert stored[healthy.barrel_id] == healthy_seq
    assert not set(stored.items()) & corrupted  # a corrupted reading's score never stored


def test_normal_snapshot_passes_every_check(trained, barrels):
    storage, _ = trained
    with dg.instance_for_test() as instance:
        key = snapshot_key(store_max_seq(barrels))
        result = run_snapshot(instance, key, storage, barrels)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    snap = storage.read_parquet(f"tables/wine_sensor_snapshot/{key}.parquet")
    assert len(snap) == 16 and set(snap["wine_type"]) == {"red", "white"}
    # beside each score: P(good) and the 90 % interval from the champion's calibration
    preds = storage.read_parquet(f"tables/barrel_quality_predictions/{key}.parquet")
    assert len(preds) == 16
    assert preds["p_good"].between(0, 1).all()
    assert (preds["quality_low_90"] <= preds["predicted_quality"]).all()
    assert (preds["predicted_quality"] <= preds["quality_high_90"]).all()
    width = preds["quality_high_90"] - preds["quality_low_90"]
    assert width.between(1.0, 3.5).all()


def test_a_write_not_visible_in_the_window_is_named_by_a_warning(trained, barrels):
    """A seq handed out but never visible (a DynamoDB writer that reserved it and died) is
    reported after the re-read wait; the rest of the window is still scored."""
    storage, _ = trained
    with open_store(barrels) as store:
        start = store.max_seq()
    with sqlite3.connect(barrels.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'seq'")  # reserved, lost
    with open_store(barrels) as store:
        tick(store, np.random.default_rng(5), barrels_per_tick=2)
        upto = store.max_seq()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(snapshot_partitions.name, [snapshot_key(start)])
        key = snapshot_key(upto)
        instance.add_dynamic_partitions(snapshot_partitions.name, [key])
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            selection=SNAPSHOT_ASSETS,
            partition_key=key,
            resources=resources(storage, barrels),
            instance=instance,
            run_config={"ops": {"wine_sensor_snapshot": {"config": {"window_wait_s": 0.3}}}},
        )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    window = checks["window_complete"]
    assert not window.passed and window.severity == dg.AssetCheckSeverity.WARN
    assert window.metadata["not_visible_seqs"].value == [start + 1]
    assert sorted(s for _, s in _scored(result)) == list(range(start + 2, upto + 1))


def test_snapshot_window_starts_at_the_previous_partition_without_reading_them_all(monkeypatch):
    """Pages of keys newest first: a new snapshot's predecessor is on the first page; an old
    partition re-run pages back to its own; the first partition starts at 0."""
    seqs = [5, 12, 40, *range(100, 550)]  # more than two pages
    with dg.instance_for_test() as instance:
        keys = [snapshot_key(s) for s in seqs]
        for i in range(0, len(keys), 100):
            instance.add_dynamic_partitions(snapshot_partitions.name, keys[i : i + 100])

        def every_key(*_args, **_kwargs):
            raise AssertionError("read every partition key")

        monkeypatch.setattr(instance, "get_dynamic_partitions", every_key)

        def window(seq: int) -> tuple[int, int]:
            context = SimpleNamespace(partition_key=snapshot_key(seq), instance=instance)
            return snapshot_window(context)

        assert window(549) == (548, 549)
        assert window(100) == (40, 100)
        assert window(12) == (5, 12)
        assert window(5) == (0, 5)


def store_max_seq(url: str) -> int:
    with open_store(url) as store:
        return store.max_seq()


def sensor_tick(instance, cursor, storage, url) -> tuple[object, str | None]:
    """One evaluation and the cursor the daemon would store after it (a SensorResult's own,
    else whatever the context holds, e.g. after ``context.update_cursor``)."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources(storage, url)
    ) as ctx:
        result = SENSOR(ctx)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            return result, result.cursor
        return result, ctx.cursor


def test_sensor_waits_for_a_champion(tmp_path, barrels, champion_storage):
    """Without a champion the tick skips and keeps its cursor; the first tick after a champion
    exists requests the snapshot of every change that waited, and moves the cursor."""
    storage = PlatformStorage.local(str(tmp_path / "empty"))
    with dg.instance_for_test() as instance:
        first, cursor = sensor_tick(instance, None, storage, barrels)
        assert isinstance(first, dg.SkipReason) and "no champion" in first.skip_message
        assert cursor is None
        waited, cursor = sensor_tick(instance, "5", storage, barrels)  # some changes seen before
        assert isinstance(waited, dg.SkipReason) and "11 changes wait" in waited.skip_message
        assert cursor == "5"
        # a champion now exists: the waiting changes are requested, nothing skipped
        result, cursor = sensor_tick(instance, cursor, champion_storage, barrels)
    (request,) = result.run_requests
    assert request.run_key == request.partition_key == snapshot_key(16)
    assert cursor == "16"


@pytest.mark.slow
def test_whole_wine_graph_through_the_cli(tmp_path, data_dir):
    """The CLI retrains, wine-sim seeds the store, the CLI runs one snapshot; all checks pass."""
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
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(snapshot_partitions.name, ["seq-000000000020"])
        run(
            str(bin_dir / "dagster"),
            "asset",
            "materialize",
            "-m",
            "wine_assets.definitions",
            "--select",
            "wine_sensor_snapshot,barrel_quality_predictions",
            "--partition",
            "seq-000000000020",
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
