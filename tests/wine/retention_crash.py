"""Run the retention prune in this process and SIGKILL it at a chosen point (a test helper).

``python -m tests.wine.retention_crash KIND URL STORAGE_ROOT TODAY RETENTION_DAYS KILL_AT``:
KIND is ``readings`` (a readings store URL) or ``prediction_log`` (a log DSN); KILL_AT is
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
from wine_assets.readings.store import open_store
from wine_assets.retention.archive import prediction_log_table, readings_table, retain

BATCH_SIZE = 3


def main(kind: str, url: str, root: str, today: str, retention: str, kill_at: str) -> None:
    hot = open_store(url) if kind == "readings" else open_log(url)
    table = readings_table(hot) if kind == "readings" else prediction_log_table(hot)
    real_delete = table.delete

    def delete(ranges: Sequence[tuple[int, int]], batch_size: int) -> int:
        if kill_at == "mid_delete":
            lo, hi = min(ranges)  # the first batch: at most batch_size keys of the first range
            real_delete([(lo, min(hi, lo + batch_size - 1))], batch_size)
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
