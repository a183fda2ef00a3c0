"""The readings store on SQLite and DynamoDB (moto server): same behaviour, backend guarantees.

Tests taking the ``store`` fixture run on both backends; the sections at the end check what
only one backend can show (SQLite's query plan and two writing processes; DynamoDB's number
types, its seq index and conditional writes).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.wine.conftest import BASE_READING, DROP, reading
from wine_assets.features import FEATURES
from wine_assets.readings import dynamodb_store
from wine_assets.readings.dynamodb_store import GSI_NAME, DynamoDbReadingsStore, batch_write
from wine_assets.readings.schema import InvalidReadingError, Prediction, parse_reading
from wine_assets.readings.sqlite_store import SqliteReadingsStore
from wine_assets.readings.store import HISTORY_COLUMNS, ReadingsStore, open_store, utc_now


def pred(barrel_id: str, reading_seq: int, quality: float = 5.5, version: int = 1) -> Prediction:
    return Prediction(barrel_id, quality, version, reading_seq, utc_now())


# -- both backends ---------------------------------------------------------------------------


def test_empty_store(store: ReadingsStore) -> None:
    store.create()  # idempotent
    assert store.max_seq() == 0
    assert store.count() == 0
    assert store.get("barrel-0001") is None
    assert store.all() == []
    assert store.changed_since(0) == []
    assert store.predictions() == []
    assert store.get_prediction("barrel-0001") is None
    assert store.put([]) == []


def test_round_trip(store: ReadingsStore) -> None:
    data = reading("barrel-0007", ph=3.123456789012345, density=0.99007, free_sulfur_dioxide=45)
    before = datetime.now().astimezone()
    (seq,) = store.put([data])
    got = store.get("barrel-0007")
    assert got is not None
    assert got.seq == seq >= 1
    expected = parse_reading(data)
    for name in ("barrel_id", "wine_type", *FEATURES, "temperature_c"):
        assert getattr(got, name) == getattr(expected, name), name
        assert type(getattr(got, name)) is type(getattr(expected, name)), name
    stamped = datetime.fromisoformat(got.updated_at or "")
    assert stamped.utcoffset() is not None and stamped.utcoffset().total_seconds() == 0
    assert stamped >= before.replace(microsecond=0)
    assert store.all() == [got]
    assert store.count() == 1


def test_put_accepts_readings_and_mappings(store: ReadingsStore) -> None:
    as_reading = parse_reading(reading("barrel-a"))
    seqs = store.put([as_reading, reading("barrel-b", wine_type="white")])
    assert [r.barrel_id for r in store.all()] == ["barrel-a", "barrel-b"]
    assert [r.seq for r in store.all()] == seqs


def test_seq_strictly_increasing_across_barrels_and_batches(store: ReadingsStore) -> None:
    seqs: list[int] = []
    seqs += store.put([reading(f"barrel-{i}") for i in range(5)])
    seqs += store.put([reading("barrel-1", ph=3.2)])
    seqs += store.put([reading("barrel-9"), reading("barrel-2", ph=3.3)])
    assert seqs == sorted(set(seqs)) and len(seqs) == 8
    assert store.max_seq() == seqs[-1]
    current = {r.barrel_id: r.seq for r in store.all()}
    assert current["barrel-1"] == seqs[5] and current["barrel-2"] == seqs[7]
    assert len(set(current.values())) == len(current) == 6


def test_changed_since_returns_current_readings_after_the_cursor(store: ReadingsStore) -> None:
    store.put([reading(f"barrel-{i}") for i in range(6)])
    cursor = store.max_seq()
    assert store.changed_since(cursor) == []
    store.put([reading("barrel-3", ph=3.1), reading("barrel-1", ph=3.2)])
    store.put([reading("barrel-3", ph=3.3)])  # the same barrel changes twice
    changed = store.changed_since(cursor)
    assert [r.barrel_id for r in changed] == ["barrel-1", "barrel-3"]
    assert [r.seq for r in changed] == sorted(r.seq for r in changed)
    assert changed[1].ph == 3.3 and changed[1].seq == store.max_seq()
    assert changed == [store.get("barrel-1"), store.get("barrel-3")]
    assert store.changed_since(changed[0].seq) == [changed[1]]
    assert len(store.changed_since(0)) == 6
    assert store.changed_since(0, limit=2) == store.changed_since(0)[:2]
    assert store.changed_since(0, limit=0) == []
    assert store.changed_since(-5) == store.changed_since(0)


def test_same_barrel_twice_in_a_batch_keeps_the_last(store: ReadingsStore) -> None:
    seqs = store.put([reading("barrel-1", ph=3.0), reading("barrel-1", ph=3.4)])
    got = store.get("barrel-1")
    assert got is not None and got.ph == 3.4 and got.seq == seqs[1] > seqs[0]
    assert store.count() == 1


def test_history_keeps_every_reading_including_superseded_ones(store: ReadingsStore) -> None:
    first = store.put([reading("barrel-1", ph=3.0), reading("barrel-2")])
    second = store.put([reading("barrel-1", ph=3.1), reading("barrel-1", ph=3.2)])
    history = store.history(0, store.max_seq())
    assert [r.seq for r in history] == [*first, *second]
    assert [r.ph for r in history if r.barrel_id == "barrel-1"] == [3.0, 3.1, 3.2]
    assert history[-1] == store.get("barrel-1")  # the newest version is also the current one
    assert [r.seq for r in store.history(first[1], second[0])] == [second[0]]  # (after, upto]
    assert store.history(second[1], second[1]) == []


def test_history_frame_holds_the_history_as_typed_columns(store: ReadingsStore) -> None:
    """The scorer's page of history: ``HISTORY_COLUMNS``, typed, ordered by seq, (after, upto]
    as ``history``; typed when empty too."""
    first = store.put([reading("barrel-1", ph=3.0), reading("barrel-2", alcohol=11.25)])
    second = store.put([reading("barrel-1", ph=3.1)])
    page = store.history_frame(first[0], second[0])
    assert tuple(page.columns) == HISTORY_COLUMNS
    assert page["seq"].tolist() == [first[1], second[0]]
    assert page["barrel_id"].tolist() == ["barrel-2", "barrel-1"]
    assert page["alcohol"].tolist()[0] == 11.25 and page["ph"].tolist()[1] == 3.1
    assert page.to_dict("records") == [r.to_dict() for r in store.history(first[0], second[0])]
    assert (page["seq"].dtype, page["ph"].dtype) == (np.dtype("int64"), np.dtype("float64"))
    assert page["barrel_id"].dtype == page["updated_at"].dtype == pd.StringDtype()
    empty = store.history_frame(second[0], second[0] + 5)
    assert tuple(empty.columns) == HISTORY_COLUMNS and len(empty) == 0
    assert empty["seq"].dtype == np.dtype("int64") and empty["wine_type"].dtype == "string"


def test_dynamodb_history_frame_reads_by_key_or_query_alike(
    dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short range of handed-out seqs is read by key, a long one by Query: the same frame
    either way, holes (a seq handed out, never written) left out, nothing past the counter."""
    with open_store(dynamodb_url) as s:
        s.create()
        s.put([reading(f"barrel-{i}", ph=3.0 + i / 100) for i in range(40)])
        s._allocate(3)  # a writer that reserved seqs and never wrote them
        s.put([reading(f"barrel-{i}", ph=3.5) for i in range(10)])

        def unordered(parsed: dict, **_: object) -> None:  # DynamoDB keeps no key order
            for items in parsed.get("Responses", {}).values():
                items.reverse()

        s._client.meta.events.register("after-call.dynamodb.BatchGetItem", unordered)
        by_key = s.history_frame(0, 60)
        assert by_key["seq"].tolist() == [*range(1, 41), *range(44, 54)]
        assert s.history_frame(0, 20)["seq"].tolist() == list(range(1, 21))
        monkeypatch.setattr(dynamodb_store, "KEYED_READS", 0)
        pd.testing.assert_frame_equal(s.history_frame(0, 60), by_key)
        row = s.history(52, 53)
        s._append_history(row, [60], row[0].updated_at)  # an item no writer was handed
        assert len(s.history_frame(53, 10_000)) == 0


def test_predictions_do_not_change_seq(store: ReadingsStore) -> None:
    seqs = store.put([reading("barrel-1"), reading("barrel-2")])
    cursor = store.max_seq()
    assert store.write_predictions([pred("barrel-1", seqs[0], 6.25), pred("barrel-2", seqs[1])])
    assert store.max_seq() == cursor
    assert store.changed_since(cursor) == []
    assert [r.seq for r in store.all()] == seqs
    got = store.get_prediction("barrel-1")
    assert got is not None
    assert (got.predicted_quality, got.model_version, got.reading_seq) == (6.25, 1, seqs[0])
    assert [p.barrel_id for p in store.predictions()] == ["barrel-1", "barrel-2"]


def test_new_reading_keeps_the_prediction_and_shows_it_stale(store: ReadingsStore) -> None:
    (first,) = store.put([reading("barrel-1")])
    store.write_predictions([pred("barrel-1", first)])
    (second,) = store.put([reading("barrel-1", ph=3.0)])
    got = store.get_prediction("barrel-1")
    assert got is not None and got.reading_seq == first < second


def test_older_prediction_does_not_replace_newer(store: ReadingsStore) -> None:
    (first,) = store.put([reading("barrel-1")])
    (second,) = store.put([reading("barrel-1", ph=3.0)])
    assert store.write_predictions([pred("barrel-1", second, 6.0)]) == 1
    assert store.write_predictions([pred("barrel-1", first, 4.0)]) == 0
    assert store.get_prediction("barrel-1").predicted_quality == 6.0  # type: ignore[union-attr]
    assert store.write_predictions([pred("barrel-1", second, 7.0, version=2)]) == 1  # re-score
    assert store.get_prediction("barrel-1").model_version == 2  # type: ignore[union-attr]


def test_prediction_for_unknown_barrel_writes_nothing(store: ReadingsStore) -> None:
    (seq,) = store.put([reading("barrel-1")])
    with pytest.raises(KeyError, match="barrel-404"):
        store.write_predictions([pred("barrel-1", seq), pred("barrel-404", seq)])
    assert store.predictions() == []
    with pytest.raises(InvalidReadingError, match="predicted_quality"):
        store.write_predictions([pred("barrel-1", seq, quality=math.nan)])


def test_prediction_columns_write_like_objects(store: ReadingsStore) -> None:
    seqs = store.put([reading("barrel-1"), reading("barrel-2"), reading("barrel-3")])
    at = utc_now()
    written = store.write_prediction_columns(
        pd.Series(["barrel-1", "barrel-2", "barrel-3"], dtype="string"),
        np.array([6.25, 0.0, 10.0]),
        np.array(seqs),
        model_version=3,
        scored_at=at,
    )
    assert written == 3
    assert store.predictions() == [
        Prediction(b, q, 3, s, at)
        for b, q, s in zip(
            ["barrel-1", "barrel-2", "barrel-3"], [6.25, 0.0, 10.0], seqs, strict=True
        )
    ]
    # Lists and per-row versions are accepted too; an older reading's score is skipped.
    (newer,) = store.put([reading("barrel-1", ph=3.0)])
    assert store.write_prediction_columns(
        ["barrel-1", "barrel-2"], [7.0, 5.0], [newer, seqs[1] - 1], model_version=[4, 4],
        scored_at=[at, at],
    ) == 1  # fmt: skip
    assert store.get_prediction("barrel-1") == Prediction("barrel-1", 7.0, 4, newer, at)
    assert store.get_prediction("barrel-2") == Prediction("barrel-2", 0.0, 3, seqs[1], at)
    # Within one batch the later row for a barrel wins (the asset sends rows in seq order).
    store.write_prediction_columns(
        ["barrel-3", "barrel-3"], [4.0, 4.5], [seqs[2], seqs[2]], model_version=5, scored_at=at
    )
    assert store.get_prediction("barrel-3") == Prediction("barrel-3", 4.5, 5, seqs[2], at)


BAD_PREDICTION_COLUMNS: list[tuple[str, dict[str, Any]]] = [
    ("predicted_quality", {"predicted_quality": np.array([5.0, math.nan, 6.0])}),
    ("predicted_quality", {"predicted_quality": np.array([5.0, 10.5, 6.0])}),
    ("predicted_quality", {"predicted_quality": [5.0, True, 6.0]}),
    ("barrel_id", {"barrel_id": ["barrel-1", "barrel 2", "barrel-3"]}),
    ("reading_seq", {"reading_seq": np.array([1, -2, 3])}),
    ("scored_at", {"scored_at": ["t", "", "t"]}),
    ("scored_at", {"scored_at": ["t", None, "t"]}),
]


@pytest.mark.parametrize(("field", "change"), BAD_PREDICTION_COLUMNS)
def test_bad_prediction_column_names_row_and_field_and_writes_nothing(
    store: ReadingsStore, field: str, change: dict[str, Any]
) -> None:
    seqs = store.put([reading("barrel-1"), reading("barrel-2"), reading("barrel-3")])
    batch: dict[str, Any] = {
        "barrel_id": ["barrel-1", "barrel-2", "barrel-3"],
        "predicted_quality": np.array([5.0, 5.5, 6.0]),
        "reading_seq": np.array(seqs),
        "model_version": 1,
        "scored_at": utc_now(),
        **change,
    }
    with pytest.raises(InvalidReadingError) as info:
        store.write_prediction_columns(**batch)
    assert "nothing written" in str(info.value) and f"{field}:" in str(info.value)
    barrel = batch["barrel_id"][1]
    assert [(e["index"], e["barrel_id"], e["field"]) for e in info.value.errors] == [
        (1, barrel, field)
    ]
    assert store.predictions() == []


def test_prediction_columns_and_objects_share_one_rule(store: ReadingsStore) -> None:
    (seq,) = store.put([reading("barrel-1")])
    bad = [pred("barrel-1", seq, 11.0), "not a prediction", pred("barrel-1", seq, version=-1)]
    with pytest.raises(InvalidReadingError) as info:
        store.write_predictions(bad)  # type: ignore[list-item]
    assert [(e["index"], e["field"]) for e in info.value.errors] == [
        (0, "predicted_quality"),
        (1, "(prediction)"),
        (2, "model_version"),
    ]
    with pytest.raises(InvalidReadingError) as info:
        store.write_prediction_columns(
            ["barrel-1"] * 3, [11.0, 5.0, 5.0], [seq] * 3, model_version=[1, 1, -1],
            scored_at=utc_now(),
        )  # fmt: skip
    assert [(e["index"], e["field"]) for e in info.value.errors] == [
        (0, "predicted_quality"),
        (2, "model_version"),
    ]
    with pytest.raises(InvalidReadingError, match="model_version") as info:
        store.write_prediction_columns(
            ["barrel-1"], [5.0], [seq], model_version=True, scored_at="t"
        )
    with pytest.raises(ValueError, match="differ in length"):
        store.write_prediction_columns(
            ["barrel-1"], [5.0, 6.0], [seq], model_version=1, scored_at="t"
        )
    assert store.predictions() == []


def test_prediction_columns_for_an_unknown_barrel_roll_back(store: ReadingsStore) -> None:
    seqs = store.put([reading("barrel-1"), reading("barrel-2")])
    at = utc_now()
    store.write_prediction_columns(["barrel-1"], [5.0], [seqs[0]], model_version=1, scored_at=at)
    before = store.predictions()
    with pytest.raises(KeyError, match="barrel-404"):
        # The unknown barrel comes last: the rows before it must be undone too.
        store.write_prediction_columns(
            ["barrel-1", "barrel-2", "barrel-404"], [6.0, 6.5, 7.0], [seqs[0], seqs[1], seqs[1]],
            model_version=2, scored_at=utc_now(),
        )  # fmt: skip
    assert store.predictions() == before


def test_both_backends_give_the_same_predictions_back(sqlite_url: str, dynamodb_url: str) -> None:
    at = utc_now()
    got = []
    for url in (sqlite_url, dynamodb_url):
        with open_store(url) as s:
            s.create()
            seqs = s.put([reading(f"barrel-{i}", ph=3.0 + i / 10) for i in range(5)])
            (newer,) = s.put([reading("barrel-0", ph=3.9)])
            s.write_prediction_columns(
                np.array([f"barrel-{i}" for i in range(5)], dtype=object),
                np.linspace(0.0, 10.0, 5),
                np.array(seqs),
                model_version=1,
                scored_at=at,
            )
            # One batch, several model versions and times (the object API allows it).
            s.write_predictions(
                [
                    Prediction("barrel-0", 6.125, 2, newer, at),
                    Prediction("barrel-3", 3.0, 4, seqs[3], "2030-01-01T00:00:00+00:00"),
                    Prediction("barrel-4", 4.0, 2, seqs[4], at),
                ]
            )
            s.write_prediction_columns(["barrel-1"], [1.0], [0], model_version=3, scored_at=at)
            got.append((s.predictions(), s.get_prediction("barrel-0"), s.get_prediction("x")))
    assert got[0] == got[1]
    predictions, first, _ = got[0]
    assert first is not None and (first.predicted_quality, first.model_version) == (6.125, 2)
    assert [(p.predicted_quality, p.model_version) for p in predictions] == [
        (6.125, 2),
        (2.5, 1),
        (5.0, 1),
        (3.0, 4),
        (4.0, 2),
    ]
    assert predictions[3].scored_at == "2030-01-01T00:00:00+00:00"


BAD_READINGS: list[tuple[str, dict[str, Any]]] = [
    ("ph", {"ph": "3.51"}),  # string feature (the old system's format)
    ("alcohol", {"alcohol": DROP}),  # missing field
    ("colour", {"colour": "deep red"}),  # unknown field
    ("density", {"density": math.nan}),
    ("total_sulfur_dioxide", {"total_sulfur_dioxide": 720.0}),  # out of physical bounds
]


def test_bad_reading_rejects_the_whole_batch(store: ReadingsStore) -> None:
    store.put([reading("barrel-1")])
    before = (store.max_seq(), store.all())
    for field, change in BAD_READINGS:
        batch = [reading("barrel-2"), reading("barrel-0042", **change), reading("barrel-3")]
        with pytest.raises(InvalidReadingError) as info:
            store.put(batch)
        message = str(info.value)
        assert "barrel-0042" in message and f"{field}:" in message, message
        assert "nothing written" in message
        assert [(e["index"], e["barrel_id"], e["field"]) for e in info.value.errors] == [
            (1, "barrel-0042", field)
        ]
        assert (store.max_seq(), store.all()) == before, field


def test_every_bad_reading_of_a_batch_is_named(store: ReadingsStore) -> None:
    with pytest.raises(InvalidReadingError) as info:
        store.put([reading("barrel-1", ph=99.0), reading("barrel-2", wine_type="rose")])
    assert {(e["barrel_id"], e["field"]) for e in info.value.errors} == {
        ("barrel-1", "ph"),
        ("barrel-2", "wine_type"),
    }
    with pytest.raises(TypeError, match="sequence of readings"):
        store.put(reading("barrel-1"))  # type: ignore[arg-type]
    assert store.count() == 0


# -- open_store ------------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path, moto_endpoint: str) -> None:
    path = tmp_path / "nested" / "r.db"
    with open_store(f"sqlite:///{path}") as s:
        assert isinstance(s, SqliteReadingsStore) and path.parent.is_dir()
    with open_store("sqlite:///:memory:") as s:
        s.create()
        s.put([reading()])
        assert s.count() == 1
    d = open_store(f"dynamodb://my-table.v2?region=eu-west-1&endpoint={moto_endpoint}")
    assert isinstance(d, DynamoDbReadingsStore)
    assert d.table == "my-table.v2" and d.sequence_table == "my-table.v2-sequence"
    assert d._client.meta.region_name == "eu-west-1"
    assert d._client.meta.endpoint_url == moto_endpoint
    for bad in (
        "postgres://host/db",
        "readings.db",
        "sqlite://relative.db",
        "dynamodb://?region=us-east-1",
        "dynamodb://t?color=red",
    ):
        with pytest.raises(ValueError):
            open_store(bad)


# -- SQLite only -----------------------------------------------------------------------------


def test_sqlite_wal_and_seq_index(sqlite_url: str) -> None:
    with open_store(sqlite_url) as s:
        s.create()
        assert isinstance(s, SqliteReadingsStore)
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        plan = " ".join(
            row[-1]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM readings WHERE seq > ? ORDER BY seq LIMIT ?",
                (0, 10),
            )
        )
        assert "USING INDEX readings_seq" in plan and "SCAN readings" not in plan.replace(
            "SCAN readings USING INDEX", ""
        )


#: The readings table of schema 1, which kept each barrel's prediction in four extra columns.
_SCHEMA_1_READINGS = (
    "CREATE TABLE readings (barrel_id TEXT PRIMARY KEY, wine_type TEXT NOT NULL, "
    + "".join(f"{name} REAL NOT NULL, " for name in (*FEATURES, "temperature_c"))
    + "seq INTEGER NOT NULL, updated_at TEXT NOT NULL, predicted_quality REAL, "
    "model_version INTEGER, reading_seq INTEGER, scored_at TEXT)"
)


def _schema_1_file(path: Path) -> None:
    """A store file as schema 1 wrote it: two barrels, one of them scored."""
    conn = sqlite3.connect(path)
    conn.execute(_SCHEMA_1_READINGS)
    conn.execute("CREATE UNIQUE INDEX readings_seq ON readings (seq)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("seq", 2), ("schema_version", 1)])
    values = [BASE_READING[name] for name in (*FEATURES, "temperature_c")]
    marks = ", ".join("?" * (len(values) + 8))
    conn.executemany(
        f"INSERT INTO readings VALUES ({marks})",
        [
            ("barrel-1", "red", *values, 1, "2024-01-01T00:00:00+00:00", 6.5, 7, 1, "t1"),
            ("barrel-2", "red", *values, 2, "2024-01-01T00:00:00+00:00", None, None, None, None),
        ],
    )
    conn.commit()
    conn.close()


def test_sqlite_opens_a_schema_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_1_file(path)
    url = f"sqlite:///{path}"
    with open_store(url) as s:  # a reader that never calls create() (the prediction service)
        assert s.get("barrel-1") is not None and s.max_seq() == 2
        assert s.predictions() == [Prediction("barrel-1", 6.5, 7, 1, "t1")]  # migrated on use
    with open_store(url) as s:
        s.create()  # idempotent on a migrated file
        conn = s._conn  # type: ignore[attr-defined]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(readings)")}
        assert "predicted_quality" not in columns
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            2,
        )
        assert s.get_prediction("barrel-1") == Prediction("barrel-1", 6.5, 7, 1, "t1")
        assert s.write_predictions([pred("barrel-1", 0, 1.0)]) == 0  # older than the stored one
        (seq,) = s.put([reading("barrel-2", ph=3.0)])
        assert s.write_prediction_columns(
            ["barrel-2"], [5.5], [seq], model_version=8, scored_at="t2"
        )
        with pytest.raises(KeyError, match="barrel-9"):
            s.write_prediction_columns(["barrel-9"], [5.5], [seq], model_version=8, scored_at="t2")
        assert [p.barrel_id for p in s.predictions()] == ["barrel-1", "barrel-2"]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


_WORKER = """
import json, sys, time, pathlib
from wine_assets.readings.store import open_store
url, folder, name, seconds, base = sys.argv[1:6]
folder, base = pathlib.Path(folder), json.loads(base)
store = open_store(url)
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
seqs, i, end = [], 0, time.monotonic() + float(seconds)
while time.monotonic() < end:
    batch = [dict(base, barrel_id=f"{name}-{i % 4}"), dict(base, barrel_id=f"shared-{i % 3}")]
    seqs += store.put(batch)
    i += 1
    time.sleep(0.002)  # SQLite's lock is not fair: a writer in a tight loop starves the other
print(json.dumps(seqs))
"""


def test_sqlite_two_processes_never_reuse_a_seq(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with open_store(url) as s:
        s.create()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                url,
                str(tmp_path),
                name,
                "1.0",
                json.dumps(BASE_READING),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab"):
        assert time.monotonic() < deadline, [p.poll() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    a, b = results
    every = a + b
    assert len(a) > 20 and len(b) > 20
    assert len(set(every)) == len(every), "a seq was handed out twice"
    assert sorted(every) == list(range(1, len(every) + 1))  # allocation commits with the write
    assert min(a) < max(b) and min(b) < max(a), "the writers did not overlap"
    assert a == sorted(a) and b == sorted(b)
    with open_store(url) as s:
        assert s.max_seq() == len(every)
        current = s.all()
        assert len(current) == 4 + 4 + 3
        assert len({r.seq for r in current}) == len(current)
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # type: ignore[attr-defined]


# -- DynamoDB only ---------------------------------------------------------------------------


def _raw_client(moto_endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)


def test_dynamodb_stores_numbers_as_numbers(dynamodb_url: str, moto_endpoint: str) -> None:
    with open_store(dynamodb_url) as s:
        s.create()
        (seq,) = s.put([reading("barrel-1", ph=3.51, free_sulfur_dioxide=11)])
        s.write_predictions([pred("barrel-1", seq, 5.75)])
        table = s.table  # type: ignore[attr-defined]
    item = _raw_client(moto_endpoint).get_item(
        TableName=table, Key={"barrel_id": {"S": "barrel-1"}}
    )["Item"]
    numeric = [*FEATURES, "temperature_c", "seq", "predicted_quality", "model_version"]
    for name in numeric:
        assert list(item[name]) == ["N"], (name, item[name])
    assert item["ph"]["N"] == "3.51" and item["seq"]["N"] == str(seq)
    # The resource layer deserialises DynamoDB numbers as Decimal (never str).
    typed = (
        boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
        .Table(table)
        .get_item(Key={"barrel_id": "barrel-1"})["Item"]
    )
    assert all(isinstance(typed[name], Decimal) for name in numeric)
    assert typed["ph"] == Decimal("3.51")


def test_dynamodb_changed_since_queries_the_seq_index(
    dynamodb_url: str, moto_endpoint: str
) -> None:
    with open_store(dynamodb_url) as s:
        s.create()
        table = s.table  # type: ignore[attr-defined]
        desc = _raw_client(moto_endpoint).describe_table(TableName=table)["Table"]
        (gsi,) = desc["GlobalSecondaryIndexes"]
        assert gsi["IndexName"] == GSI_NAME
        assert [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [
            ("shard", "HASH"),
            ("seq", "RANGE"),
        ]
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        s.put([reading(f"barrel-{i}") for i in range(5)])
        cursor = s.max_seq()
        s.put([reading("barrel-2", ph=3.0), reading("barrel-4", ph=3.1)])

        calls: list[tuple[str, str | None]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, params.get("IndexName")))

        s._client.meta.events.register("before-parameter-build.dynamodb", record)  # type: ignore[attr-defined]
        changed = s.changed_since(cursor)
        assert [r.barrel_id for r in changed] == ["barrel-2", "barrel-4"]
        assert calls == [("Query", GSI_NAME)]
        calls.clear()
        assert len(s.changed_since(0, limit=3)) == 3
        assert s.max_seq() == changed[-1].seq
        assert {name for name, _ in calls} == {"Query"}


def test_dynamodb_never_writes_backwards(dynamodb_url: str) -> None:
    """A slow writer holding an older seq cannot replace a newer reading."""
    with open_store(dynamodb_url) as s:
        assert isinstance(s, DynamoDbReadingsStore)
        s.create()
        (old_seq,) = s._allocate(1)  # a writer reserved a seq, then stalled
        (new_seq,) = s.put([reading("barrel-1", ph=3.3)])
        assert new_seq > old_seq
        assert (
            s._write_reading(parse_reading(reading("barrel-1", ph=3.9)), old_seq, utc_now())
            is False
        )
        got = s.get("barrel-1")
        assert got is not None and (got.ph, got.seq) == (3.3, new_seq)


def test_dynamodb_create_is_idempotent_and_refuses_a_legacy_table(
    dynamodb_url: str, moto_endpoint: str
) -> None:
    with open_store(dynamodb_url) as s:
        s.create()
        s.put([reading()])
        s.create()
        assert s.count() == 1 and s.max_seq() == 1
    legacy = f"legacy-{uuid.uuid4().hex[:8]}"
    _raw_client(moto_endpoint).create_table(
        TableName=legacy,
        AttributeDefinitions=[{"AttributeName": "barrel_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "barrel_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(RuntimeError, match=GSI_NAME):
        open_store(f"dynamodb://{legacy}?endpoint={moto_endpoint}").create()


def test_dynamodb_concurrent_writers_get_unique_seqs(dynamodb_url: str) -> None:
    with open_store(dynamodb_url) as s:
        s.create()
    results: dict[str, list[int]] = {}

    def writer(name: str) -> None:
        with open_store(dynamodb_url) as own:
            seqs: list[int] = []
            for i in range(8):
                seqs += own.put([reading(f"{name}-{i % 2}"), reading(f"shared-{i % 2}")])
            results[name] = seqs

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    every = results["a"] + results["b"]
    assert len(every) == 32 and len(set(every)) == 32
    with open_store(dynamodb_url) as s:
        assert s.max_seq() == 32
        assert s.count() == 6


def test_the_resource_creates_the_tables_once_per_process(
    dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor opens the store every tick: DynamoDB's create/describe calls happen once."""
    from wine_assets.readings.resource import ReadingsStoreResource

    created: list[str] = []
    create = DynamoDbReadingsStore.create

    def counted(self: DynamoDbReadingsStore) -> None:
        created.append(self.table)
        create(self)

    monkeypatch.setattr(DynamoDbReadingsStore, "create", counted)
    resource = ReadingsStoreResource(url=dynamodb_url)
    for alcohol in (11.0, 12.0, 13.0):
        with resource.open() as store:
            store.put([reading("barrel-0001", alcohol=alcohol)])
    assert len(created) == 1
    with resource.open() as store:
        assert store.max_seq() == 3
    # An in-memory SQLite store is a new database on every open: created each time.
    memory = ReadingsStoreResource(url="sqlite:///:memory:")
    for _ in range(2):
        with memory.open() as store:
            assert store.max_seq() == 0


class _RawBody:
    """The body of a canned HTTP response (botocore reads ``raw.stream()``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def test_dynamodb_retries_a_throttled_request(dynamodb_url: str) -> None:
    """RequestLimitExceeded (the account's throughput limit) is retried after a backoff:
    botocore's standard retry mode knows it, its default legacy mode fails at once."""
    from botocore.awsrequest import AWSResponse

    throttled = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
            "message": "Throughput exceeds the current throughput limit for your account.",
        }
    ).encode()
    with open_store(dynamodb_url) as s:
        s.create()
        s.put([reading("barrel-1")])
        refused: list[str] = []

        def throttle(request: Any, **_: Any) -> AWSResponse | None:
            if len(refused) == 2:
                return None  # sent to the server
            refused.append(request.url)
            headers = {"Content-Type": "application/x-amz-json-1.0"}
            return AWSResponse(request.url, 400, headers, _RawBody(throttled))

        s._client.meta.events.register("before-send.dynamodb.GetItem", throttle)  # type: ignore[attr-defined]
        got = s.get("barrel-1")
        assert len(refused) == 2 and got is not None and got.barrel_id == "barrel-1"


class _Unprocessing:
    """The real client, except that BatchWriteItem sends only the first ``send`` items of
    each request and hands the rest back as ``UnprocessedItems`` (as DynamoDB does when a
    partition is throttled)."""

    def __init__(self, client: Any, send: int) -> None:
        self.client, self.send, self.requests = client, send, 0

    def __getattr__(self, name: str) -> Any:  # every other call: the real client's
        return getattr(self.client, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803
        self.requests += 1
        ((table, items),) = RequestItems.items()
        if self.send:
            self.client.batch_write_item(RequestItems={table: items[: self.send]})
        rest = items[self.send :]
        return {"UnprocessedItems": {table: rest} if rest else {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        """The same for reads: the first ``send`` keys answered, the rest handed back."""
        self.requests += 1
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        answered = {table: []}
        if self.send:
            part = {table: {**request, "Keys": keys[: self.send]}}
            answered = self.client.batch_get_item(RequestItems=part)["Responses"]
        rest = keys[self.send :]
        return {
            "Responses": answered,
            "UnprocessedKeys": {table: {**request, "Keys": rest}} if rest else {},
        }


def test_batch_get_retries_leftovers_then_names_the_table(
    dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyed history reads get every item however many keys come back unprocessed, and keys
    still left after ten tries fail loudly."""
    monkeypatch.setattr(dynamodb_store.time, "sleep", lambda s: None)
    with open_store(dynamodb_url) as s:
        s.create()
        s.put([reading(f"barrel-{i}") for i in range(12)])
        real = s._client
        slow = _Unprocessing(real, send=5)
        s._client = slow
        assert s.history_frame(0, 12)["seq"].tolist() == list(range(1, 13))
        assert slow.requests == 3  # 5, 5, 2
        s._client = _Unprocessing(real, send=0)
        with pytest.raises(RuntimeError, match=f"{s.history_table}: 12 reads still unprocessed"):
            s.history_frame(0, 12)
        s._client = real


def test_batch_write_retries_leftovers_then_names_the_table(
    dynamodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One helper writes the history and the scorer's ledger: every item lands in requests of
    25 however many come back unprocessed, and items still left after ten tries fail loudly."""
    monkeypatch.setattr(dynamodb_store.time, "sleep", lambda s: None)
    with open_store(dynamodb_url) as s:
        s.create()
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "shard": {"S": "all"},
                        "seq": {"N": str(seq)},
                        **{
                            k: {"S": v}
                            for k, v in (("barrel_id", f"b-{seq}"), ("wine_type", "red"))
                        },
                        **{
                            f: {"N": repr(float(BASE_READING[f]))}
                            for f in (*FEATURES, "temperature_c")
                        },
                        "updated_at": {"S": "2030-01-01T00:00:00.000000+00:00"},
                        "day": {"S": "2030-01-01"},
                    }
                }
            }
            for seq in range(1, 31)
        ]
        s._allocate(30)  # the seqs the items carry, handed out as a writer would
        slow = _Unprocessing(s._client, send=10)
        batch_write(slow, s.history_table, items)
        assert s.history_frame(0, 100)["seq"].tolist() == list(range(1, 31))
        assert slow.requests == 3 + 1  # 25 items: 10, 10, 5; then 5: 5
        with pytest.raises(RuntimeError, match=f"{s.history_table}: 5 writes still unprocessed"):
            batch_write(_Unprocessing(s._client, send=0), s.history_table, items[:5])
