"""``wine-sim``: seeding from UCI rows, random-walk ticks, system B's noisy/corrupted modes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.polling import wait_for
from wine_assets.features import FEATURES, read_uci
from wine_assets.readings import simulator
from wine_assets.readings.schema import PHYSICAL_BOUNDS
from wine_assets.readings.simulator import UCI_RANGES, Progress, main, seed_store, tick
from wine_assets.readings.store import ReadingsStore, open_store


@pytest.fixture(scope="module")
def uci(data_dir: Path) -> pd.DataFrame:
    return read_uci(data_dir)


@pytest.fixture(autouse=True)
def _data_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads PLATFORM_DATA_DIR itself."""
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(data_dir))


def uci_rows(uci: pd.DataFrame, wine_type: str) -> set[tuple[float, ...]]:
    rows = uci[uci["wine_type"] == wine_type][FEATURES]
    return set(rows.itertuples(index=False, name=None))


def seeded(url: str, n: int, data_dir: Path, wine_type: str = "white") -> ReadingsStore:
    store = open_store(url)
    seed_store(store, n, np.random.default_rng(1), wine_type, data_dir)
    return store


def test_uci_ranges_match_the_data(uci: pd.DataFrame) -> None:
    for wine_type, ranges in UCI_RANGES.items():
        frame = uci[uci["wine_type"] == wine_type]
        for name in FEATURES:
            assert ranges[name] == pytest.approx((frame[name].min(), frame[name].max())), name


@pytest.mark.parametrize("wine_type", ["white", "red"])
def test_seed_samples_uci_rows_of_the_type(
    sqlite_url: str, data_dir: Path, uci: pd.DataFrame, wine_type: str
) -> None:
    with open_store(sqlite_url) as store:
        readings = seed_store(store, 30, np.random.default_rng(3), wine_type, data_dir)
        assert store.count() == 30 and store.all() == readings
    assert [r.barrel_id for r in readings] == [f"barrel-{i:04d}" for i in range(1, 31)]
    assert {r.wine_type for r in readings} == {wine_type}
    rows = uci_rows(uci, wine_type)
    assert all(tuple(r.features().values()) in rows for r in readings)
    assert len({tuple(r.features().values()) for r in readings}) > 25  # sampled, not repeated
    assert all(12.0 <= r.temperature_c <= 16.0 for r in readings)
    assert [r.seq for r in readings] == list(range(1, 31))


def test_seed_both_types_and_reproducible(data_dir: Path) -> None:
    def ids_and_values(seed: int) -> list[tuple]:
        with open_store("sqlite:///:memory:") as store:
            out = seed_store(store, 60, np.random.default_rng(seed), "both", data_dir)
        return [(r.barrel_id, r.wine_type, r.alcohol, r.temperature_c) for r in out]

    first = ids_and_values(5)
    assert first == ids_and_values(5) != ids_and_values(6)
    assert {t for _, t, _, _ in first} == {"red", "white"}


def test_cli_seed_defaults_to_white(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", store_url, "seed", "--barrels", "12", "--seed", "1"]) == 0
    assert "seeded 12 white barrels" in capsys.readouterr().err
    with open_store(store_url) as store:
        assert store.count() == 12 and {r.wine_type for r in store.all()} == {"white"}


def test_cli_run_two_ticks_changes_every_barrel_twice(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 10
    assert main(["--store", store_url, "seed", "--barrels", str(n), "--seed", "1"]) == 0
    with open_store(store_url) as store:
        before = {r.barrel_id: r for r in store.all()}
    argv = ["--store", store_url, "run", "--interval", "0", "--ticks", "2", "--seed", "2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "tick 1 |" in err and "tick 2 |" in err and "stopped after 2 ticks" in err
    assert "\r" not in err  # not a TTY: plain log lines
    with open_store(store_url) as store:
        assert store.max_seq() == n + 2 * n
        after = store.all()
        assert len(after) == n
        # Every barrel's current reading was written by the second tick.
        assert sorted(r.seq for r in after) == list(range(2 * n + 1, 3 * n + 1))
        assert len(store.changed_since(n)) == n
    for r in after:
        assert r.features() != before[r.barrel_id].features()
        ranges = UCI_RANGES[r.wine_type]
        assert all(ranges[f][0] <= v <= ranges[f][1] for f, v in r.features().items())


def test_ticks_walk_every_barrel_once_per_tick(sqlite_url: str, data_dir: Path) -> None:
    with seeded(sqlite_url, 10, data_dir, "red") as store:
        rng, clean = np.random.default_rng(0), {}
        for k in (1, 2):
            cursor = store.max_seq()
            seqs = tick(store, rng, "normal", clean=clean)
            assert len(seqs) == 10 and seqs == list(range(cursor + 1, cursor + 11))
            assert len(store.changed_since(cursor)) == 10, k
        assert set(clean) == {r.barrel_id for r in store.all()}


def test_barrels_per_tick(sqlite_url: str, data_dir: Path) -> None:
    with seeded(sqlite_url, 10, data_dir) as store:
        cursor = store.max_seq()
        seqs = tick(store, np.random.default_rng(0), "normal", barrels_per_tick=3)
        assert len(seqs) == 3 and len(store.changed_since(cursor)) == 3


def test_long_walk_stays_in_uci_ranges(data_dir: Path) -> None:
    with seeded("sqlite:///:memory:", 20, data_dir, "both") as store:
        rng, clean = np.random.default_rng(0), {}
        for _ in range(40):
            tick(store, rng, "normal", clean=clean, step=0.05)  # large steps hit the limits
        for r in store.all():
            ranges = UCI_RANGES[r.wine_type]
            assert all(ranges[f][0] <= v <= ranges[f][1] for f, v in r.features().items())
            assert 10.0 <= r.temperature_c <= 18.0


def test_noisy_mode_adds_system_b_noise(sqlite_url: str, data_dir: Path) -> None:
    """N(0.1, 0.01) on every feature; step=0 isolates the mode from the walk."""
    with seeded(sqlite_url, 40, data_dir) as store:
        before = {r.barrel_id: r.features() for r in store.all()}
        clean: dict = {}
        for _ in range(3):  # on the clean state: the noise does not compound
            tick(store, np.random.default_rng(1), "noisy", clean=clean, step=0)
        diffs = np.array(
            [[r.features()[f] - before[r.barrel_id][f] for f in FEATURES] for r in store.all()]
        )
    assert diffs.shape == (40, len(FEATURES))
    assert diffs.min() > 0.05 and diffs.max() < 0.15
    assert diffs.mean() == pytest.approx(0.1, abs=0.002)
    assert diffs.std() == pytest.approx(0.01, abs=0.002)


def test_corrupted_mode_applies_system_b_batch(sqlite_url: str, data_dir: Path) -> None:
    with seeded(sqlite_url, 20, data_dir) as store:
        before = {r.barrel_id: r.features() for r in store.all()}
        tick(store, np.random.default_rng(1), "corrupted", step=0)
        for r in store.all():
            old, new = before[r.barrel_id], r.features()
            assert new["volatile_acidity"] == pytest.approx(old["volatile_acidity"] + 3)
            assert new["citric_acid"] == pytest.approx(old["citric_acid"] + 5)
            assert new["alcohol"] == 20.0
            others = [
                f for f in FEATURES if f not in ("volatile_acidity", "citric_acid", "alcohol")
            ]
            assert all(new[f] == old[f] for f in others)
            # Stored (physically possible) yet outside what the model was trained on.
            assert new["alcohol"] > UCI_RANGES["white"]["alcohol"][1]
            assert new["alcohol"] <= PHYSICAL_BOUNDS["alcohol"][1]


def test_repeated_corruption_stays_bounded(data_dir: Path) -> None:
    """Without a clean state, the walk's clipping undoes the previous corruption first."""
    with seeded("sqlite:///:memory:", 5, data_dir) as store:
        for _ in range(3):
            tick(store, np.random.default_rng(1), "corrupted")
        for r in store.all():
            assert r.volatile_acidity <= UCI_RANGES["white"]["volatile_acidity"][1] + 3
            assert r.citric_acid <= UCI_RANGES["white"]["citric_acid"][1] + 5


def test_cli_run_on_an_empty_store(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", sqlite_url, "run", "--interval", "0", "--ticks", "1"]) == 2
    assert "seed" in capsys.readouterr().err


def test_cli_rejects_a_bad_store_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "mysql://x/y", "seed"]) == 2
    assert "unsupported readings store URL" in capsys.readouterr().err


def test_default_store_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WINE_READINGS_STORE", raising=False)
    assert simulator.default_store_url() == f"sqlite:///{REPO_ROOT}/.platform/readings.db"
    monkeypatch.setenv("WINE_READINGS_STORE", "sqlite:///:memory:")
    assert simulator.default_store_url() == "sqlite:///:memory:"


def test_progress_is_one_live_line_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = Progress(stream)
    progress.update("tick 1")
    progress.update("tick 2")
    progress.done("stopped")
    assert stream.getvalue() == "\r\x1b[Ktick 1\r\x1b[Ktick 2\r\x1b[Kstopped\n"


def test_cli_stops_cleanly_on_sigterm(sqlite_url: str, data_dir: Path) -> None:
    with seeded(sqlite_url, 5, data_dir):
        pass
    proc = subprocess.Popen(
        [sys.executable, "-m", "wine_assets.readings.simulator", "--store", sqlite_url, "run"]
        + ["--interval", "0.05", "--seed", "1"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    with open_store(sqlite_url) as store:
        wait_for(
            store.max_seq,
            30,
            "two simulator ticks (seq 15)",
            every_s=0.05,
            until=lambda seq: seq >= 15 or proc.poll() is not None,
        )
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped after" in err
        ticks = int(err.split("stopped after ")[1].split()[0])
        assert store.max_seq() == 5 + 5 * ticks  # whole ticks only
