"""How every benchmark reports (JSON on stdout and, with ``--json FILE``, in that file) and
runs the platform's processes (``running``, shared with the tests)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.processes import running  # noqa: E402

__all__ = ["emit", "running", "timed"]


def timed(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``func(*args, **kwargs)`` and its wall time in seconds."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def emit(figures: dict, path: Path | None) -> None:
    text = json.dumps(figures, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
