"""One way to assemble a code location: every Dagster object at module scope in the
location's package is collected, so a new asset, check, job, schedule or sensor needs no
edit to a list elsewhere; resources come from the location's ``resources`` module.

Collection is Dagster's own (``load_definitions_from_modules``, the rule its defs folder
applies to each Python file). Modules that run services outside Dagster are not walked, so
loading a location does not import their web frameworks.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import dagster as dg

#: Module names (last dotted part) that hold service code, never Dagster definitions: the
#: console-script entry points (wine-api, wine-scorer, punkapi-server, …) and their helpers.
SERVICE_MODULES = frozenset(
    {"api", "service", "page", "consumer", "server", "simulator", "send_batch"}
)


def location_modules(package: str) -> Iterator[ModuleType]:
    """The package and every submodule the loader walks: not the service modules, nor the
    ``<package>.definitions`` module that calls the loader."""
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        name = info.name.rsplit(".", 1)[-1]
        if name not in SERVICE_MODULES and info.name != f"{package}.definitions":
            yield importlib.import_module(info.name)


def load_location(package: str, *, resources: Mapping[str, Any]) -> dg.Definitions:
    """The Definitions of one code location: the objects found in ``package`` and its
    submodules, with ``resources`` bound and one in-process executor (a location's steps are
    small and import heavy libraries: one process beats one per step on a small machine)."""
    with warnings.catch_warnings():
        # The loader is marked preview; the objects it returns are ordinary Definitions.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.load_definitions_from_modules(
            list(location_modules(package)),
            resources=resources,
            executor=dg.in_process_executor,
        )
