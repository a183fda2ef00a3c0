"""``wine-sim``: seed barrels from UCI rows and make their sensor readings move.

Replaces the original barrel system's ``make database`` (seed 200 white-wine barrels) and its
10-second reading updater, plus the original prediction service's drift scenarios (``noisy``,
``corrupted``), against any readings store::

    wine-sim [--store URL] seed --barrels 200 [--wine-type white|red|both] [--seed S]
    wine-sim [--store URL] run --interval 10 [--mode normal|noisy|corrupted] [--ticks K]
                               [--barrels-per-tick M] [--seed S] [--seed-barrels N]

``run --seed-barrels N`` seeds N white-wine barrels first when the store is empty (what
``make dev`` does), so one command brings a fresh store to life.

Each tick moves every barrel's *clean* state by a bounded random walk (steps of a small share
of that wine type's UCI range, clipped to the UCI range so the values stay plausible wine),
then applies the mode on top of the clean state before writing:

- ``normal``: the clean state itself;
- ``noisy``: + N(0.1, 0.01) on every feature;
- ``corrupted``: volatile_acidity + 3, citric_acid + 5, alcohol = 20 — within
  ``PHYSICAL_BOUNDS`` (so it is stored) but far outside the training ranges (so drift checks
  must catch it).

Applying the mode to the clean state (kept in memory by ``run``) rather than to the stored
value keeps noise from compounding tick after tick.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from platform_core.errors import exit_on_missing_input
from platform_core.settings import default_readings_store_url
from wine_assets.features import FEATURES, WINE_TYPES
from wine_assets.readings.schema import Reading
from wine_assets.readings.store import ReadingsStore, open_store

__all__ = [
    "MODES",
    "UCI_RANGES",
    "apply_mode",
    "default_store_url",
    "main",
    "seed_store",
    "tick",
]


MODES: tuple[str, ...] = ("normal", "noisy", "corrupted")

#: Min/max of each feature in the UCI files, per wine type (checked against the data by the
#: tests). Hard-coded so a tick needs no data files: the Dagster sensor side only has a store.
UCI_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "red": {
        "fixed_acidity": (4.6, 15.9),
        "volatile_acidity": (0.12, 1.58),
        "citric_acid": (0.0, 1.0),
        "residual_sugar": (0.9, 15.5),
        "chlorides": (0.012, 0.611),
        "free_sulfur_dioxide": (1.0, 72.0),
        "total_sulfur_dioxide": (6.0, 289.0),
        "density": (0.99007, 1.00369),
        "ph": (2.74, 4.01),
        "sulphates": (0.33, 2.0),
        "alcohol": (8.4, 14.9),
    },
    "white": {
        "fixed_acidity": (3.8, 14.2),
        "volatile_acidity": (0.08, 1.1),
        "citric_acid": (0.0, 1.66),
        "residual_sugar": (0.6, 65.8),
        "chlorides": (0.009, 0.346),
        "free_sulfur_dioxide": (2.0, 289.0),
        "total_sulfur_dioxide": (9.0, 440.0),
        "density": (0.98711, 1.03898),
        "ph": (2.72, 3.82),
        "sulphates": (0.22, 1.08),
        "alcohol": (8.0, 14.2),
    },
}

#: Random-walk step: standard deviation as a share of the feature's UCI range, per tick.
DEFAULT_STEP = 0.005
TEMPERATURE_RANGE = (10.0, 18.0)  # walk limits; seeded between 12 and 16 °C
TEMPERATURE_STEP = 0.05  # °C per tick (standard deviation)
DECIMALS = 5  # the UCI files' finest precision (density)

CleanState = dict[str, dict[str, float]]


def default_store_url() -> str:
    """``WINE_READINGS_STORE``, else the repo's embedded SQLite file."""
    return os.environ.get("WINE_READINGS_STORE") or default_readings_store_url()


def barrel_id(i: int, n: int) -> str:
    """``barrel-0001``…; wider when there are more than 9999 barrels, so ids sort."""
    return f"barrel-{i:0{max(4, len(str(n)))}d}"


def seed_store(
    store: ReadingsStore,
    n: int,
    rng: np.random.Generator,
    wine_type: str = "white",
    data_dir: str | Path | None = None,
) -> list[Reading]:
    """Create the store and write ``n`` barrels sampled from UCI rows; the written readings.

    Rows are sampled without replacement while there are enough of them (white: 4898,
    red: 1599), so barrels are distinct wines. Re-seeding overwrites barrels with the same ids.
    """
    from wine_assets.features import read_uci

    if n < 1:
        raise ValueError(f"barrels must be >= 1, got {n}")
    types = WINE_TYPES if wine_type == "both" else (wine_type,)
    if not set(types) <= set(WINE_TYPES):
        raise ValueError(f"wine_type must be red, white or both, got {wine_type!r}")
    frame = read_uci(data_dir)
    frame = frame[frame["wine_type"].isin(types)].reset_index(drop=True)
    rows = rng.choice(len(frame), size=n, replace=n > len(frame))
    temperatures = rng.uniform(12.0, 16.0, size=n)
    readings = [
        Reading(
            barrel_id=barrel_id(i + 1, n),
            wine_type=str(frame.at[row, "wine_type"]),  # type: ignore[arg-type]
            **{f: float(frame.at[row, f]) for f in FEATURES},
            temperature_c=round(float(t), 2),
        )
        for i, (row, t) in enumerate(zip(rows, temperatures, strict=True))
    ]
    store.create()
    store.put(readings)
    # Read back so the caller gets what the store holds (seq and updated_at stamped).
    stored = {r.barrel_id: r for r in store.all()}
    return [stored[r.barrel_id] for r in readings]


def walk(
    reading: Reading,
    rng: np.random.Generator,
    clean: dict[str, float] | None = None,
    step: float = DEFAULT_STEP,
) -> dict[str, float]:
    """One random-walk step of the clean features (from ``clean`` or the stored reading)."""
    ranges = UCI_RANGES[reading.wine_type]
    base = clean or reading.features()
    out: dict[str, float] = {}
    for name in FEATURES:
        low, high = ranges[name]
        value = base[name] + rng.normal(0.0, step * (high - low)) if step else base[name]
        out[name] = round(min(max(value, low), high), DECIMALS)
    return out


def apply_mode(features: dict[str, float], mode: str, rng: np.random.Generator) -> dict[str, float]:
    """The original service's drift scenarios on clean features (see the module docstring)."""
    if mode == "normal":
        return dict(features)
    if mode == "noisy":
        return {k: round(v + rng.normal(0.1, 0.01), DECIMALS) for k, v in features.items()}
    if mode == "corrupted":
        out = dict(features)
        out["volatile_acidity"] = round(out["volatile_acidity"] + 3.0, DECIMALS)
        out["citric_acid"] = round(out["citric_acid"] + 5.0, DECIMALS)
        out["alcohol"] = 20.0
        return out
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def tick(
    store: ReadingsStore,
    rng: np.random.Generator,
    mode: str = "normal",
    *,
    barrels_per_tick: int | None = None,
    clean: CleanState | None = None,
    step: float = DEFAULT_STEP,
) -> list[int]:
    """Move barrels' readings one step and write them in one batch; the new seqs.

    ``barrels_per_tick`` picks that many random barrels (default: all). ``clean`` holds each
    barrel's un-noised state between ticks and is updated in place; without it the stored
    reading is the starting point (fine for one tick, but noise would then compound).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    current = store.all()
    if barrels_per_tick is not None and barrels_per_tick < len(current):
        picked = rng.choice(len(current), size=barrels_per_tick, replace=False)
        current = [current[i] for i in sorted(picked)]
    batch: list[Reading] = []
    for reading in current:
        state = walk(reading, rng, None if clean is None else clean.get(reading.barrel_id), step)
        if clean is not None:
            clean[reading.barrel_id] = state
        low, high = TEMPERATURE_RANGE
        temperature = reading.temperature_c + (rng.normal(0.0, TEMPERATURE_STEP) if step else 0.0)
        batch.append(
            replace(
                reading,
                **apply_mode(state, mode, rng),
                temperature_c=round(min(max(temperature, low), high), 2),
                seq=None,
                updated_at=None,
            )
        )
    return store.put(batch)


# -- CLI ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wine-sim", description="Seed and animate barrel sensor readings."
    )
    parser.add_argument(
        "--store",
        default=None,
        help="readings store URL (default: $WINE_READINGS_STORE or sqlite:///<repo>/.platform/"
        "readings.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", help="create the store and seed barrels from UCI rows")
    seed.add_argument("--barrels", type=_positive_int, default=200)
    seed.add_argument("--wine-type", choices=[*WINE_TYPES, "both"], default="white")
    seed.add_argument("--seed", type=int, default=None, help="random seed (reproducible runs)")
    run = sub.add_parser("run", help="update every barrel's reading each interval")
    run.add_argument(
        "--interval", type=float, default=10.0, help="seconds between ticks (0: no wait)"
    )
    run.add_argument("--mode", choices=MODES, default="normal")
    run.add_argument("--ticks", type=_positive_int, default=None, help="stop after K ticks")
    run.add_argument("--barrels-per-tick", type=_positive_int, default=None)
    run.add_argument("--seed", type=int, default=None)
    run.add_argument(
        "--seed-barrels",
        type=_positive_int,
        default=None,
        help="when the store is empty, seed this many white-wine barrels first",
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


class Progress:
    """One live line on a TTY; plain timestamped lines otherwise (logs, CI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, text: str) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[K{text}")
        else:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def done(self, text: str) -> None:
        """The final summary replaces the live line (or is one more log line)."""
        if self.live:
            self.stream.write(f"\r\x1b[K{text}\n")
            self.stream.flush()
        else:
            self.update(text)


def _seed(store: ReadingsStore, url: str, barrels: int, wine_type: str, seed: int | None) -> None:
    readings = seed_store(store, barrels, np.random.default_rng(seed), wine_type)
    print(
        f"seeded {len(readings)} {wine_type} barrels ({readings[0].barrel_id} … "
        f"{readings[-1].barrel_id}) into {url} (seq {readings[0].seq}…{readings[-1].seq})",
        file=sys.stderr,
    )


def _run(store: ReadingsStore, url: str, args: argparse.Namespace) -> int:
    store.create()
    if store.count() == 0 and args.seed_barrels:
        _seed(store, url, args.seed_barrels, "white", args.seed)
    if store.count() == 0:
        print("wine-sim: the store has no barrels; run `wine-sim seed` first", file=sys.stderr)
        return 2
    print(
        f"wine-sim: moving {store.count()} barrels' readings in {url} every {args.interval:g} s "
        f"(mode {args.mode}); Ctrl-C stops",
        file=sys.stderr,
    )
    rng = np.random.default_rng(args.seed)
    stop = threading.Event()
    # Signal handlers can only be installed from the main thread (not when embedded).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main_thread else None
    progress = Progress()
    clean: CleanState = {}
    ticks = written = 0
    last_seq = store.max_seq()
    started = time.monotonic()
    try:
        while not stop.is_set() and (args.ticks is None or ticks < args.ticks):
            seqs = tick(store, rng, args.mode, barrels_per_tick=args.barrels_per_tick, clean=clean)
            ticks += 1
            written += len(seqs)
            last_seq = seqs[-1] if seqs else last_seq
            progress.update(
                f"tick {ticks} | mode {args.mode} | barrels written {written} | seq {last_seq}"
            )
            if args.ticks is not None and ticks >= args.ticks:
                break
            # Fixed-rate schedule; the event makes SIGTERM end the wait at once.
            stop.wait(max(0.0, started + ticks * args.interval - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    progress.done(f"stopped after {ticks} ticks: {written} readings written, last seq {last_seq}")
    return 0


@exit_on_missing_input
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wine-sim``; the exit status."""
    args = _parser().parse_args(argv)
    url = args.store or default_store_url()
    try:
        store = open_store(url)
    except ValueError as exc:
        print(f"wine-sim: {exc}", file=sys.stderr)
        return 2
    try:
        with store:
            if args.command == "seed":
                _seed(store, url, args.barrels, args.wine_type, args.seed)
                return 0
            return _run(store, url, args)
    except (BotoCoreError, ClientError) as exc:
        print(
            f"wine-sim: cannot use the readings store {url} (setting WINE_READINGS_STORE or "
            f"--store): {exc}. Fix: check the table's endpoint, region and AWS credentials",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
