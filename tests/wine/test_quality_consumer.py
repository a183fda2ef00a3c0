"""The barrel scorer (``wine-scorer``): every reading scored or quarantined exactly once, across
crashes, on SQLite and on moto's DynamoDB, with its work reported to Dagster by day."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from platform_core.model_store import ModelStoreResource
from platform_core.settings import init_dagster_home
from tests.polling import wait_for
from tests.wine.conftest import reading
from wine_assets.quality.consumer import BarrelScorer, ChampionSource, DagsterReporter
from wine_assets.quality.ledger import ScoreLedger, open_ledger
from wine_assets.readings.simulator import seed_store, tick
from wine_assets.readings.store import ReadingsStore, open_store


def scorer(store: ReadingsStore, storage, **kwargs) -> tuple[BarrelScorer, ScoreLedger]:
    ledger = open_ledger(store)
    source = ChampionSource(ModelStoreResource(storage=storage))
    return BarrelScorer(store, ledger, source.current, **kwargs), ledger


def assert_exactly_once(store: ReadingsStore, ledger: ScoreLedger) -> None:
    """Every seq the store handed out is in the ledger once; each barrel's stored score is
    its newest reading's."""
    top = store.max_seq()
    rows = ledger.rows(0, top + 1000)
    assert rows["seq"].is_unique
    assert rows["seq"].tolist() == list(range(1, top + 1))
    assert ledger.cursor() == top
    scored = rows[rows["outcome"] == "scored"]
    newest = scored.groupby("barrel_id")["seq"].max().to_dict()
    stored = {p.barrel_id: p.reading_seq for p in store.predictions()}
    assert stored == {b: int(s) for b, s in newest.items()}


def drain(s: BarrelScorer) -> None:
    while s.step():
        pass


def test_quarantined_readings_are_kept_with_their_reason_and_others_scored(
    store: ReadingsStore, champion_storage
):
    store.put([reading(f"barrel-{i:04d}") for i in range(5)])
    store.put([reading("barrel-0002", alcohol=24.0), reading("barrel-0003", ph=4.9)])
    s, ledger = scorer(store, champion_storage)
    drain(s)
    rows = ledger.rows(0, 100).set_index("seq")
    assert rows.loc[6, "outcome"] == rows.loc[7, "outcome"] == "quarantined"
    assert "alcohol 24 outside" in rows.loc[6, "quarantine_reason"]
    assert (rows.loc[1:5, "outcome"] == "scored").all()
    assert rows.loc[1:5, "p_good"].between(0, 1).all()
    assert (rows.loc[1:5, "quality_low_90"] <= rows.loc[1:5, "predicted_quality"]).all()
    # the quarantined barrels keep the score of their last good reading
    assert store.get_prediction("barrel-0002").reading_seq == 3
    assert_exactly_once(store, ledger)


def test_a_barrel_read_twice_in_one_page_keeps_its_newer_score(
    store: ReadingsStore, champion_storage
):
    """One commit holds both readings of a barrel: the store gets the newer one's score."""
    (old,) = store.put([reading("barrel-0001", alcohol=9.5)])
    (new,) = store.put([reading("barrel-0001", alcohol=12.5)])
    s, ledger = scorer(store, champion_storage)
    assert s.step() == 2
    rows = ledger.rows(0, 100).set_index("seq")
    stored = store.get_prediction("barrel-0001")
    assert stored.reading_seq == new
    assert stored.predicted_quality == rows.loc[new, "predicted_quality"]
    assert rows.loc[old, "predicted_quality"] != rows.loc[new, "predicted_quality"]
    assert_exactly_once(store, ledger)


def test_a_catch_up_reads_the_next_page_while_scoring_one(
    store: ReadingsStore, champion_storage, monkeypatch
):
    """Full pages mean a backlog: the page after one is read in the background while it is
    scored, each range once, and readings written meanwhile are scored in a later page."""
    store.put([reading(f"barrel-{i:04d}") for i in range(10)])
    reads: list[tuple[int, int]] = []
    real = store.history_frame

    def history_frame(after: int, upto: int):
        reads.append((after, upto))
        return real(after, upto)

    monkeypatch.setattr(store, "history_frame", history_frame)
    s, ledger = scorer(store, champion_storage, page=4)
    assert s.step() == 4
    store.put([reading("barrel-0003", alcohol=10.0), reading("barrel-0011")])
    drain(s)
    s.close()
    assert not s.holes
    assert reads[:3] == [(0, 4), (4, 8), (8, 12)]  # (8, 12] read ahead of the second step
    assert len(reads) == len(set(reads))  # no range read twice
    assert_exactly_once(store, ledger)


@pytest.mark.parametrize("crash_at", ["write_back", "ledger", "cursor"])
def test_a_crash_inside_a_commit_neither_skips_nor_doubles(
    store: ReadingsStore, champion_storage, monkeypatch, crash_at
):
    """A commit that dies part-way (a process killed mid-write) is repaired by the next
    scorer: on SQLite the transaction rolls back; on DynamoDB the writes done are redone
    idempotently and the cursor never passes a seq not in the ledger."""
    rng = np.random.default_rng(3)
    seed_store(store, 12, rng, "both")
    s, ledger = scorer(store, champion_storage)
    drain(s)
    tick(store, rng)
    crashed = ledger_crash(ledger, crash_at, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        s.step()
    assert crashed
    monkeypatch.undo()
    again, ledger = scorer(store, champion_storage)
    drain(again)
    assert_exactly_once(store, ledger)


def ledger_crash(ledger: ScoreLedger, at: str, monkeypatch) -> list[str]:
    """Make the ledger's next commit die at ``at`` (after some of its writes)."""
    crashed: list[str] = []

    def die(*args, **kwargs):
        crashed.append(at)
        raise KeyboardInterrupt(f"killed at {at}")

    if hasattr(ledger, "_conn"):  # SQLite: die inside the transaction
        real = ledger._conn

        class Conn:
            def __getattr__(self, name):
                return getattr(real, name)

            def execute(self, sql, *args):
                if at == "cursor" and sql.startswith("INSERT INTO meta"):
                    die()
                return real.execute(sql, *args)

            def executemany(self, sql, rows):
                if (at == "ledger" and "scoring_log" in sql) or (
                    at == "write_back" and "predictions" in sql
                ):
                    die()
                return real.executemany(sql, rows)

        monkeypatch.setattr(ledger, "_conn", Conn())
    else:
        if at == "write_back":
            real_write, count = ledger.store.write_prediction, []

            def some_written(*score):
                count.append(score)
                if len(count) > 2:
                    die()
                return real_write(*score)

            monkeypatch.setattr(ledger.store, "write_prediction", some_written)
        elif at == "ledger":
            from wine_assets.readings import dynamodb_store

            real_put = dynamodb_store.batch_write

            def half(client, table, items):
                real_put(client, table, items[: len(items) // 2])
                die()

            monkeypatch.setattr(dynamodb_store, "batch_write", half)
        else:
            real_update = ledger._client.update_item

            def update(**kwargs):
                if kwargs.get("TableName") == ledger.cursor_table:
                    die()
                return real_update(**kwargs)

            monkeypatch.setattr(ledger._client, "update_item", update)
    return crashed


def test_a_seq_that_appears_after_a_higher_one_is_scored(dynamodb_url, champion_storage):
    """DynamoDB reserves a seq before writing its reading: the scorer waits for it instead
    of passing it, scores it when it appears, and records it as lost only after a while."""
    from wine_assets.readings.schema import parse_reading

    with open_store(dynamodb_url) as store:
        store.create()
        store.put([reading(f"barrel-{i:04d}") for i in range(3)])
        late = store._allocate(1)[0]  # a writer that reserved its seq, then stalled
        store.put([reading("barrel-0001", alcohol=10.0)])
        gone = store._allocate(1)[0]  # reserved, never written
        store.put([reading("barrel-0002", alcohol=10.5)])
        s, ledger = scorer(store, champion_storage, give_up_after_s=1.5)
        drain(s)
        assert ledger.cursor() == late - 1  # not past the invisible seq
        now = "2030-01-01T00:00:00.000000+00:00"
        store._append_history([parse_reading(reading("barrel-0000"))], [late], now)
        s.step()
        rows = ledger.rows(0, 100).set_index("seq")
        assert rows.loc[late, "outcome"] == "scored"
        assert ledger.cursor() == gone - 1
        time.sleep(1.6)
        s.step()
        rows = ledger.rows(0, 100).set_index("seq")
        assert rows.loc[gone, "outcome"] == "lost"
        assert ledger.cursor() == store.max_seq()


def history_reads(store: ReadingsStore) -> list[str]:
    """The name of every request the store's client sends to read its history table from
    now on (botocore's event hooks)."""
    sent: list[str] = []

    def record(params: dict, event_name: str, **_: object) -> None:
        if store.history_table in (params.get("TableName"), *params.get("RequestItems", ())):
            sent.append(event_name.rsplit(".", 1)[-1])

    for op in ("Query", "BatchGetItem"):
        store._client.meta.events.register(f"provide-client-params.dynamodb.{op}", record)
    return sent


def test_an_idle_scorer_on_dynamodb_reads_the_counter_not_the_history(
    dynamodb_url, champion_storage
):
    """Polls with nothing new read the counter item, not the history; a few new seqs are
    read by key."""
    with open_store(dynamodb_url) as store:
        store.create()
        store.put([reading(f"barrel-{i:04d}") for i in range(3)])
        s, _ = scorer(store, champion_storage)
        drain(s)
        sent = history_reads(store)
        for _ in range(5):
            assert s.step() == 0
        assert sent == []
        store.put([reading("barrel-0001", alcohol=10.0)])
        assert s.step() == 1
        assert sent == ["BatchGetItem"]  # a few new seqs: read by key


def test_a_run_of_missing_seqs_is_looked_up_in_one_read(dynamodb_url, champion_storage):
    """A writer that reserved a batch and stalled leaves a run of holes: each poll looks the
    run up with one read, and the readings are scored once they appear."""
    from wine_assets.readings.schema import parse_reading

    with open_store(dynamodb_url) as store:
        store.create()
        store.put([reading("barrel-0000")])
        late = store._allocate(5)
        store.put([reading("barrel-0001")])
        s, ledger = scorer(store, champion_storage)
        drain(s)
        assert sorted(s.holes) == late
        sent = history_reads(store)
        s.step()
        assert sent == ["BatchGetItem"]
        now = "2030-01-01T00:00:00.000000+00:00"
        parsed = [parse_reading(reading(f"barrel-{i:04d}")) for i in range(2, 7)]
        store._append_history(parsed, late, now)
        assert s.step() == 5
        assert not s.holes
        rows = ledger.rows(0, 100)
        assert rows["seq"].tolist() == list(range(1, 8))
        assert set(rows["outcome"]) == {"scored"}
        assert ledger.cursor() == 7


@pytest.mark.parametrize("settle_s", [0.0, 2.0])
def test_a_batch_still_being_written_is_scored_in_one_commit(
    dynamodb_url, champion_storage, settle_s
):
    """A writer hands out its batch's seqs, then writes the readings in parts: the scorer
    reads on until the batch is there (at most ``settle_s``) and commits it once."""
    from wine_assets.readings.schema import parse_reading

    with open_store(dynamodb_url) as store:
        store.create()
        s, ledger = scorer(store, champion_storage, settle_s=settle_s)
        seqs = store._allocate(4)
        batch = [parse_reading(reading(f"barrel-{i:04d}")) for i in range(4)]
        now = "2030-01-01T00:00:00.000000+00:00"
        store._append_history(batch[:2], seqs[:2], now)
        reads = 0

        def write_the_rest(**_: object) -> None:  # once the scorer has read the first part
            nonlocal reads
            reads += 1
            if reads == 1:
                store._append_history(batch[2:], seqs[2:], now)

        store._client.meta.events.register("after-call.dynamodb.BatchGetItem", write_the_rest)
        first = s.step()
        if settle_s:
            assert first == 4 and ledger.cursor() == seqs[-1]
        else:  # scored as it appears: the first part now, the rest at the next step
            assert first == 2 and ledger.cursor() == seqs[1]
            s.step()
        assert ledger.rows(0, 100)["seq"].tolist() == seqs


def test_the_scorer_reports_the_days_work_to_dagster_at_a_bounded_rate(
    sqlite_url, champion_storage
):
    with dg.instance_for_test() as instance, open_store(sqlite_url) as store:
        store.create()
        seed_store(store, 10, np.random.default_rng(5), "both")
        reporter = DagsterReporter(instance, every_s=3600)
        s, ledger = scorer(store, champion_storage, reporter=reporter)
        drain(s)
        reporter.maybe_report()  # not due yet
        assert (
            instance.get_latest_materialization_event(dg.AssetKey("wine_sensor_snapshot")) is None
        )
        tick(store, np.random.default_rng(6))
        drain(s)
        reporter.maybe_report(force=True)
        day = ledger.rows(0, 100)["day"].iloc[0]
        for key, count in (
            ("wine_sensor_snapshot", "readings"),
            ("barrel_quality_predictions", "scored"),
        ):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            mat = event.asset_materialization
            assert mat.partition == day
            assert mat.metadata["seq_range"].value == "[1, 20]"
            assert mat.metadata[count].value == 20
        assert reporter.reported == 2


class SlowInstance:
    """An instance whose event writes wait for ``gate`` and fail while ``down``."""

    def __init__(self, instance) -> None:
        import threading

        self.instance = instance
        self.gate = threading.Event()
        self.down = False
        self.calls = 0

    def report_runless_asset_event(self, event) -> None:
        self.calls += 1
        assert self.gate.wait(30)
        if self.down:
            raise ConnectionError("instance down")
        self.instance.report_runless_asset_event(event)


def test_reports_are_sent_beside_the_scoring_loop_and_kept_until_they_land(
    sqlite_url, champion_storage
):
    """The scorer never waits for the instance: a due report is sent from another thread;
    one that fails keeps its days' tallies, merged with later ones, for the next report."""
    with dg.instance_for_test() as instance, open_store(sqlite_url) as store:
        store.create()
        slow = SlowInstance(instance)
        reporter = DagsterReporter(slow, every_s=0)
        s, ledger = scorer(store, champion_storage, reporter=reporter)
        seed_store(store, 10, np.random.default_rng(5), "both")
        drain(s)
        slow.down = True
        try:
            t0 = time.monotonic()
            reporter.maybe_report()  # due (every_s=0): sent, not waited for
            assert time.monotonic() - t0 < 1.0 and reporter.tallies == {}
            tick(store, np.random.default_rng(6))
            drain(s)  # the loop goes on while the send waits
            t0 = time.monotonic()
            reporter.maybe_report()  # a send under way: nothing new sent, nothing waited for
            assert time.monotonic() - t0 < 1.0 and set(reporter.tallies) == set(
                ledger.rows(0, 100)["day"]
            )
        finally:
            slow.gate.set()
        reporter.maybe_report(force=True)  # the failed days are back, with the new rows
        assert reporter.reported == 0
        slow.down = False
        reporter.maybe_report(force=True)
        reporter.close()
        assert reporter.reported == 2
        event = instance.get_latest_materialization_event(dg.AssetKey("wine_sensor_snapshot"))
        metadata = event.asset_materialization.metadata
        assert metadata["seq_range"].value == "[1, 20]"
        assert metadata["readings"].value == 20
        assert ledger.cursor() == 20


def test_after_a_failed_report_the_reporter_waits_before_trying_again():
    """A down instance is tried again after ``every_s``, not on every poll, even with a
    closed day waiting (which is otherwise reported at once)."""
    from wine_assets.quality.ledger import LedgerRow, frame

    slow = SlowInstance(None)
    slow.down = True
    slow.gate.set()
    reporter = DagsterReporter(slow, every_s=3600)
    stamp = "2020-01-01T00:00:00.000000+00:00"
    row = LedgerRow(1, "barrel-1", "red", "2020-01-01", stamp, "scored", stamp, None, 5.5)
    reporter.add(frame([row]), 1)
    reporter.maybe_report()  # a closed day: due at once; the send fails
    wait_for(lambda: reporter.tallies, 10, "the failed day to be kept")
    for _ in range(3):
        reporter.maybe_report()
    reporter.close()
    assert slow.calls == 1 and list(reporter.tallies) == ["2020-01-01"]


def _scorer_proc(env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("wine-scorer")
    return subprocess.Popen(
        [str(exe), "--poll", "0.05", "--report-every", "2"],
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_sigkill_of_the_scorer_process_neither_skips_nor_doubles(
    request, backend, tmp_path, champion_storage, monkeypatch
):
    """The real ``wine-scorer`` process, killed with SIGKILL at random moments while barrels
    keep writing, restarted each time: in the end every write is in the ledger exactly once
    and Dagster holds the day's materializations."""
    url = request.getfixturevalue(f"{backend}_url")
    home = init_dagster_home(tmp_path / "home")
    env = {
        **os.environ,
        "WINE_READINGS_STORE": url,
        "PLATFORM_STORAGE_ROOT": str(champion_storage.root),
        "DAGSTER_HOME": str(home),
    }
    rng = np.random.default_rng(11)
    log = tmp_path / "scorer.log"
    with open_store(url) as store:
        store.create()
        seed_store(store, 20, rng, "both")
        proc = _scorer_proc(env, log)
        kills = 0
        try:
            for round_ in range(8):
                for _ in range(3):
                    tick(store, rng, barrels_per_tick=7)
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.3, 1.5) if round_ else 4.0)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _scorer_proc(env, log)
            ledger = open_ledger(store)
            wait_for(
                ledger.cursor, 60, "the scorer caught up", until=lambda c: c == store.max_seq()
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        assert kills == 8
        assert_exactly_once(store, ledger)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("barrel_quality_predictions"))
        assert event is not None, log.read_text()[-2000:]
        assert event.asset_materialization.metadata["seq_range"].value.startswith("[")


def test_without_a_champion_the_scorer_waits_and_keeps_its_position(
    store: ReadingsStore, tmp_path, data_dir
):
    from platform_core.storage import PlatformStorage
    from wine_assets.features import read_uci
    from wine_assets.quality.assets import register_champion
    from wine_assets.quality.consumer import NotReady

    store.put([reading(f"barrel-{i:04d}") for i in range(3)])
    storage = PlatformStorage.local(str(tmp_path / "storage"))
    s, ledger = scorer(store, storage)
    with pytest.raises(NotReady, match="no champion"):
        s.step()
    assert ledger.cursor() == 0 and s.position == 0  # nothing read past, nothing skipped
    uci = read_uci(data_dir)
    register_champion(storage, uci, "test: the first champion")
    storage.write_parquet("tables/wine_training_data.parquet", uci)
    drain(s)
    assert_exactly_once(store, ledger)  # the readings written while waiting are scored
