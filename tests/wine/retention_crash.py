"""Run the retention prune in this process and SIGKILL it at a chosen point (a test helper).

``python -m tests.wine.retention_crash KIND URL STORAGE_ROOT TODAY RETENTION_DAYS KILL_AT``:
KIND is ``readings`` or ``barrel_predictions`` (a readings store URL: its history or its
scoring ledger) or ``prediction_log`` (a log DSN); KILL_AT is
``before_delete`` (the archive is written and verified, nothing deleted yet) or
``mid_delete`` (the first delete batch committed, the rest not).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date

from platform_core.storage import PlatformStorage
from wine_assets.monitoring.prediction_log import open_log
from wine_assets.quality.ledger import open_ledger
from wine_assets.readings.store import open_store
from wine_assets.retention.archive import (
    barrel_predictions_table,
    prediction_log_table,
    readings_table,
    retain,
)

BATCH_SIZE = 3


def main(kind: str, url: str, root: str, today: str, retention: str, kill_at: str) -> None:
    if kind == "prediction_log":
        table = prediction_log_table(open_log(url))
    elif kind == "readings":
        table = readings_table(open_store(url))
    else:
        table = barrel_predictions_table(open_ledger(open_store(url)))
    real_delete = table.delete

    def delete(day: date, ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        if kill_at == "mid_delete":
            lo, hi = min(ranges)  # the first batch: at most batch_size keys of the first range
            real_delete(day, [(lo, min(hi, lo + batch_size - 1))], batch_size)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    retain(
        PlatformStorage.local(root),
        dataclasses.replace(table, delete=delete),
        int(retention),
        today=date.fromisoformat(today),
        batch_size=BATCH_SIZE,
    )
    raise SystemExit("retain finished without deleting anything")


if __name__ == "__main__":
    main(*sys.argv[1:])
