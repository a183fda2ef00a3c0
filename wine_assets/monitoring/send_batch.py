"""``wine-send-batch``: send the original service's three kinds of test batch to ``wine-api``.

    wine-send-batch normal|noisy|corrupted [--rows N] [--url URL] [--seed S] [--chunk C]

Rows are drawn from the training data (UCI red + white: ``PLATFORM_DATA_DIR`` or the shipped copy):

- ``normal``: N training rows as they are;
- ``noisy``: the first half of the N rows, + N(0.1, 0.01) on every feature;
- ``corrupted``: N rows with volatile acidity + 3, citric acid + 5 and alcohol = 20.

The transformations are the readings simulator's (``apply_mode``), so ``wine-sim`` and this
tool produce the same scenarios. Wines go to ``POST /batch`` in chunks of ``--chunk``.

It says on stderr where it sends and, once answered, which drift report partition (the UTC
hour the rows were logged in) the drift sensor will file them under; stdout is one JSON line
(``sent``, ``answered``, ``requests``, ``drift_partitions``, …). When ``WINE_API_TOKEN`` is
set it is sent as ``Authorization: Bearer`` (the service's token).
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

from wine_assets.features import FEATURES, read_uci
from wine_assets.monitoring.reports import hour_key
from wine_assets.quality.model import is_good
from wine_assets.readings.simulator import MODES, apply_mode


def make_batch(
    kind: str, rows: int, seed: int | None = 0, data: str | Path | None = None
) -> list[dict[str, Any]]:
    """The wines of one batch of ``kind`` (see the module docstring)."""
    if kind not in MODES:
        raise ValueError(f"kind must be one of {MODES}, got {kind!r}")
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    uci = read_uci(data)
    rng = np.random.default_rng(seed)
    picked = uci.iloc[rng.choice(len(uci), size=rows, replace=rows > len(uci))]
    if kind == "noisy":
        picked = picked.iloc[: max(1, rows // 2)]
    return [
        {"wine_type": wine_type, **apply_mode(dict(zip(FEATURES, values, strict=True)), kind, rng)}
        for wine_type, values in zip(
            picked["wine_type"], picked[list(FEATURES)].itertuples(index=False), strict=True
        )
    ]


def send(
    wines: list[dict[str, Any]], url: str, chunk: int = 1000, token: str | None = None
) -> dict[str, Any]:
    """POST ``wines`` to ``{url}/batch`` in chunks; raises on the first failed chunk."""
    answered, request_ids, qualities, hours = 0, [], [], []
    with requests.Session() as session:
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        for start in range(0, len(wines), chunk):
            response = session.post(f"{url.rstrip('/')}/batch", json=wines[start : start + chunk])
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code} from {url}/batch: {response.text}")
            body = response.json()
            answered += len(body["predictions"])
            request_ids.append(body["request_id"])
            if "logged_at" in body:
                hour = hour_key(datetime.fromisoformat(body["logged_at"]))
                hours += [hour] if hour not in hours else []
            qualities += [p["predicted_quality"] for p in body["predictions"]]
    return {
        "sent": len(wines),
        "answered": answered,
        "requests": len(request_ids),
        "drift_partitions": hours,
        "mean_predicted_quality": float(np.mean(qualities)) if qualities else None,
        "good_share": float(np.mean(is_good(qualities))) if qualities else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wine-send-batch", description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=MODES)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    parser.add_argument("--chunk", type=int, default=1000, help="wines per POST /batch")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    try:
        wines = make_batch(args.kind, args.rows, args.seed)
        chunks = -(-len(wines) // args.chunk)
        say(f"sending {len(wines)} {args.kind} wines to {url}/batch in {chunks} request(s) "
            "(Ctrl+C stops; the requests already answered stay logged)")  # fmt: skip
        summary = send(wines, url, args.chunk, os.environ.get("WINE_API_TOKEN"))
    except requests.ConnectionError:
        print(
            f"wine-send-batch: no prediction service at {url} (option --url). Fix: start it "
            "with `wine-api` (`make dev` starts it on http://127.0.0.1:8000)",
            file=sys.stderr,
        )
        return 1
    except (RuntimeError, OSError, requests.RequestException, ValueError) as exc:
        print(f"wine-send-batch: {exc}", file=sys.stderr)
        return 1
    hours = ", ".join(summary["drift_partitions"]) or "?"
    say(
        f"{summary['answered']} answered and logged. wine_drift_sensor reports them once no "
        f"new row came for DRIFT_REPORT_QUIET_S (15 s by default): Dagster UI > asset "
        f"wine_drift_report, partition {hours}; the reports are listed at {url}/reports"
    )
    print(json.dumps({"kind": args.kind, **summary}))
    return 0


def say(message: str) -> None:
    print(f"wine-send-batch: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
