"""Environment → configuration, in one place for both code locations.

Every setting is read through ``dg.EnvVar`` when the variable is set, so the Dagster UI shows
where a value came from and secrets never land in run config; when it is unset the embedded
local default applies (``dagster dev`` on one laptop needs no variables at all).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

#: The repository root: defaults are resolved relative to it, not to the current directory,
#: so the code servers that ``dagster dev`` spawns agree with the CLI and the tests.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(name: str, default: str) -> str | dg.EnvVar:
    """The variable ``name`` as an EnvVar when set, otherwise the local default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def int_setting(name: str, default: int) -> int:
    """An integer variable as ``EnvVar.int`` when set, otherwise the local default."""
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def optional_setting(name: str) -> str | dg.EnvVar | None:
    """The variable ``name`` as an EnvVar when set, otherwise None."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def platform_home() -> Path:
    """Project-local folder for everything the embedded defaults write."""
    return Path(os.environ.get("PLATFORM_HOME", PROJECT_ROOT / ".platform")).resolve()


def data_dir() -> Path:
    """Folder holding the datasets laid out as in ``shared/data`` (PLATFORM_DATA_DIR)."""
    return Path(os.environ.get("PLATFORM_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def default_storage_root() -> str:
    """Local folder for parquet tables, raw landings and model files."""
    return str(platform_home() / "storage")


def default_readings_store_url() -> str:
    """The embedded barrel readings store (SQLite) used by ``dagster dev`` and ``wine-sim``."""
    return f"sqlite:///{platform_home() / 'readings.db'}"


def default_punk_api_url() -> str:
    """The local dump, read as if it were the API (``file://``)."""
    return (data_dir() / "punkapi" / "beers.json").as_uri()


def init_dagster_home(home: Path) -> Path:
    """A fresh local instance folder holding the project's ``dagster.yaml`` (as ``make`` does)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return home


#: Days of history the hot stores keep before the archive's copy is the only one.
DEFAULT_READINGS_RETENTION_DAYS = 7
DEFAULT_PREDICTION_LOG_RETENTION_DAYS = 30


def retention_days(name: str, default: int) -> int:
    """A ``*_RETENTION_DAYS`` variable as a plain integer (at least 1), for code that runs
    outside Dagster too (the readings store stamps its TTL with it); a clear error otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number of days, 1 or more")
    return value
