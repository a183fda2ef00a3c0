"""The drop location: CSV or parquet files of hourly readings (``sensor_id, timestamp,
temperature``), read and validated here for the sensor and the assets alike.

Files are only ever read: never renamed, moved or deleted, so another process (or a person)
can keep dropping files while Dagster works. A bad file fails with the file, the column and
the first offending row named, and nothing from it is used.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("sensor_id", "timestamp", "temperature")
SUFFIXES = (".csv", ".csv.gz", ".parquet")
#: System E writes hours as ``2023-02-15 00``; anything ISO 8601 is accepted too.
HOUR_FORMAT = "%Y-%m-%d %H"


class DropFileError(ValueError):
    """A file in the drop location cannot be read as hourly sensor temperatures."""


@dataclass(frozen=True)
class DropFile:
    """A file seen in the drop location and what identifies this version of it."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def signature(self) -> str:
        """Changes when the file is rewritten in place (same name, new content)."""
        return f"{self.size}-{self.mtime_ns}"


def list_drop_files(drop_dir: str | Path) -> list[DropFile]:
    """Every readable data file directly in ``drop_dir``, sorted by name (hidden and partial
    ``.tmp`` files skipped: writers should drop a file by renaming it into place)."""
    folder = Path(drop_dir)
    if not folder.is_dir():
        raise DropFileError(f"drop location {folder} is not a folder (PROFILES_DROP_DIR)")
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or not p.name.endswith(SUFFIXES):
            continue
        st = p.stat()
        found.append(DropFile(p, st.st_size, st.st_mtime_ns))
    return found


def _time_filters(path: Path, start: datetime | None, end: datetime | None) -> list | None:
    """Parquet predicates on a timestamp-typed column: row groups (and whole files) outside
    ``[start, end)`` are skipped unread, so a one-day run does not parse every file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if start is None and end is None:
        return None
    field = pq.read_schema(path).field("timestamp") if path.name.endswith(".parquet") else None
    if field is None or not pa.types.is_timestamp(field.type) or field.type.tz is not None:
        return None
    bounds = [(">=", start), ("<", end)]
    return [("timestamp", op, pd.Timestamp(v)) for op, v in bounds if v is not None]


def _read_columns(
    path: Path, columns: list[str], start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    try:
        if path.name.endswith(".parquet"):
            filters = _time_filters(path, start, end)
            frame = pd.read_parquet(path, columns=columns, filters=filters)
        else:
            frame = pd.read_csv(path, usecols=columns, engine="pyarrow")
    except (ValueError, KeyError) as exc:  # missing columns, unparseable file
        raise DropFileError(f"{path.name}: cannot read columns {columns}: {exc}") from exc
    return frame


def parse_timestamps(values: pd.Series, file_name: str) -> pd.Series:
    """Naive UTC hours as ``datetime64[ns]``; the first unparseable value is named."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        parsed = ts
    else:
        text = values.astype("string")
        parsed = pd.to_datetime(text, format=HOUR_FORMAT, errors="coerce")
        if parsed.isna().any():  # not system E's format: try ISO 8601 on the rest
            rest = parsed.isna()
            iso = pd.to_datetime(text[rest], format="ISO8601", errors="coerce", utc=True)
            parsed = parsed.copy()
            parsed[rest] = iso.dt.tz_localize(None)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DropFileError(
            f"{file_name}: field 'timestamp' row {row + 1}: {values.iloc[row]!r} is not a "
            f"time ('{HOUR_FORMAT}' or ISO 8601); the file is not used"
        )
    return parsed.astype("datetime64[ns]")


def parse_sensor_ids(values: pd.Series, file_name: str) -> pd.Series:
    """Integer ids stay ``int64`` (system E); anything else becomes text. Missing ids fail."""
    missing = values.isna()
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise DropFileError(f"{file_name}: field 'sensor_id' row {row + 1} is empty")
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64")
    return values.astype("string")


def parse_temperatures(values: pd.Series, file_name: str) -> pd.Series:
    """Floats; NaN and ±inf are kept (counted later), text that is not a number fails."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip().str.lower()
    blank = values.isna() | text.isin(["", "nan", "na", "null", "none"])
    bad = numbers.isna() & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DropFileError(
            f"{file_name}: field 'temperature' row {row + 1}: {values.iloc[row]!r} is not a "
            "number; the file is not used"
        )
    return numbers.astype("float64")


def read_drop_file(
    path: Path, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The file's readings with ``start <= timestamp < end`` (naive UTC bounds), typed."""
    raw = _read_columns(path, list(COLUMNS), start, end)
    ts = parse_timestamps(raw["timestamp"], path.name)
    keep = np.ones(len(raw), dtype=bool)
    if start is not None:
        keep &= (ts >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (ts < pd.Timestamp(end)).to_numpy()
    if not keep.all():
        raw, ts = raw[keep], ts[keep]
    return pd.DataFrame(
        {
            "sensor_id": parse_sensor_ids(raw["sensor_id"], path.name),
            "timestamp": ts,
            "temperature": parse_temperatures(raw["temperature"], path.name),
        }
    ).reset_index(drop=True)


def file_days(path: Path) -> list[str]:
    """The days (``YYYY-MM-DD``, UTC) a file holds readings for: the partitions it covers."""
    ts = parse_timestamps(_read_columns(path, ["timestamp"])["timestamp"], path.name)
    days = pd.DatetimeIndex(ts.dt.floor("D").unique())
    return sorted(days.strftime("%Y-%m-%d").tolist())
