"""A platform process for the length of a block, for tests and benchmarks alike."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """``args`` run from the repository in their own session, output to ``log_path``, for the
    block; stopped with their children after it: SIGTERM, then SIGKILL after 60 s."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
