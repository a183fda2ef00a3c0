"""Waiting for what another process or thread does: the one polling loop of the tests and
benchmarks, so every wait fails the same informative way (what was awaited, what was last
seen) instead of a bare "timed out"."""

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
#: A last-seen value longer than this is cut in the error (a list of runs, a response body).
SHOWN_CHARS = 500


def _truthy(value: Any) -> bool:
    return bool(value)


def wait_for(
    probe: Callable[[], T],
    timeout_s: float,
    what: str,
    every_s: float = 0.5,
    until: Callable[[T], bool] = _truthy,
) -> T:
    """Call ``probe()`` every ``every_s`` until ``until(value)`` (default: the value is truthy);
    that value. An exception counts as not yet (a server starting or restarting answers with
    errors for a while). On timeout, a ``TimeoutError`` names ``what`` and the last value or
    exception seen: "never answered" and "answered, not as wanted" read differently."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = probe()
            if until(value):
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            shown = repr(last)
            if len(shown) > SHOWN_CHARS:
                shown = shown[:SHOWN_CHARS] + "…"
            raise TimeoutError(f"{what}: not within {timeout_s:g}s (last seen: {shown})")
        time.sleep(every_s)
