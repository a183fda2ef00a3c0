"""One error for a missing input, shared by assets, sensors and command-line tools.

A user who sees it should not need a traceback: the message names what was looked for, the
setting that says where, the location tried and the fix. It is a ``dg.Failure``, so a run
shows the message as the step's failure; command-line tools print it and exit 2
(:func:`exit_on_missing_input`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import dagster as dg


class MissingInputError(dg.Failure):
    """An input file, folder, URL or table is missing."""

    def __init__(self, what: str, tried: object, setting: str, fix: str) -> None:
        self.what, self.tried, self.setting, self.fix = what, str(tried), setting, fix
        message = f"{what} not found at {tried} (setting {setting}). Fix: {fix}"
        super().__init__(
            description=message,
            metadata={"setting": setting, "tried": str(tried), "fix": fix},
        )
        self.message = message

    def __str__(self) -> str:
        return self.message


F = TypeVar("F", bound=Callable[..., int | None])


def exit_on_missing_input(main: F) -> F:
    """Wrap a CLI's ``main``: a :class:`MissingInputError` becomes one line on stderr, exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except MissingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapper  # type: ignore[return-value]
