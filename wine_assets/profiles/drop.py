"""The drop location: CSV or parquet files of hourly readings (``sensor_id, timestamp,
temperature``), read and validated here for the sensor and the assets alike.

The location is a local folder or ``s3://bucket/prefix`` (:class:`DropLocation`): only listing
differs; both are read by the same code (a local path natively, an S3 object through an open
s3fs file). Files are only ever read: never renamed, moved or deleted, so another process (or
a person) can keep dropping files while Dagster works. A bad file fails with the file, the
column and the first offending row named, and nothing from it is used.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

COLUMNS = ("sensor_id", "timestamp", "temperature")
SUFFIXES = (".csv", ".csv.gz", ".parquet")
#: The original sensor sample writes hours as ``2023-02-15 00``; anything ISO 8601 is accepted too.
HOUR_FORMAT = "%Y-%m-%d %H"
S3_SCHEME = "s3://"


class DropFileError(ValueError):
    """A file in the drop location cannot be read as hourly sensor temperatures."""


@dataclass(frozen=True)
class DropFile:
    """A file seen in the drop location and what identifies this version of it."""

    path: Path | str  # a local Path, or "s3://bucket/key"
    size: int
    mtime_ns: int  # S3: the object's LastModified
    etag: str = ""  # S3 only: a rewrite within LastModified's second still changes it
    fs: Any = field(default=None, compare=False, repr=False)  # s3fs for S3 objects

    @property
    def name(self) -> str:
        return self.path.name if isinstance(self.path, Path) else self.path.rsplit("/", 1)[-1]

    @property
    def signature(self) -> str:
        """Changes when the file is rewritten in place (same name, new content); a local
        file's stays ``size-mtime_ns`` so cursors written before S3 support remain valid."""
        base = f"{self.size}-{self.mtime_ns}"
        return f"{base}-{self.etag}" if self.etag else base


def _wanted(name: str) -> bool:
    """Data files only: hidden and partial ``.tmp`` files are skipped (writers should drop a
    file by renaming it into place; on S3 a PUT is atomic anyway)."""
    return bool(name) and not name.startswith(".") and name.endswith(SUFFIXES)


@dataclass(frozen=True)
class DropLocation:
    """A local folder or ``s3://bucket/prefix`` (PROFILES_DROP_DIR), listed one level deep.

    ``storage_options`` are s3fs's (``platform_core.storage.s3fs_options``: the platform's
    one S3 connection); unused for a local folder.
    """

    url: str
    storage_options: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith(S3_SCHEME)

    def files(self) -> list[DropFile]:
        """Every data file directly under the location, sorted by name."""
        found = self._s3_files() if self.is_s3 else self._local_files()
        return sorted((f for f in found if _wanted(f.name)), key=lambda f: f.name)

    def _local_files(self) -> list[DropFile]:
        folder = Path(self.url)
        if not folder.is_dir():
            raise DropFileError(
                f"drop location not found at {folder} (setting PROFILES_DROP_DIR). Fix: create "
                "the folder and drop hourly CSV/parquet files there, or unset PROFILES_DROP_DIR "
                "to use the synthetic month generated under PLATFORM_HOME"
            )
        found = []
        for p in folder.iterdir():
            if _wanted(p.name) and p.is_file():
                st = p.stat()
                found.append(DropFile(p, st.st_size, st.st_mtime_ns))
        return found

    def _s3_files(self) -> list[DropFile]:
        import fsspec  # s3fs (aiobotocore) only loads when the location is on S3

        fs = fsspec.filesystem("s3", **self.storage_options)
        root = self.url[len(S3_SCHEME) :].rstrip("/")
        try:
            entries = fs.ls(root, detail=True, refresh=True)
        except FileNotFoundError:
            bucket = root.split("/", 1)[0]
            if not fs.exists(bucket):
                raise DropFileError(
                    f"drop location {self.url}: bucket {bucket!r} not found (PROFILES_DROP_DIR)"
                ) from None
            return []  # a prefix exists only once an object is under it
        found = []
        for e in entries:  # "directory" entries are deeper prefixes: not looked into
            if e["type"] == "file" and e["name"].startswith(root + "/"):
                stamp = pd.Timestamp(e["LastModified"]).value
                etag = str(e.get("ETag", "")).strip('"')
                found.append(DropFile(S3_SCHEME + e["name"], int(e["size"]), stamp, etag, fs))
        return found


def list_drop_files(location: DropLocation | str | Path) -> list[DropFile]:
    """Every readable data file directly in the drop location, sorted by name (hidden and
    partial ``.tmp`` files skipped). A plain str/Path is a local folder or an S3 URL with
    the default AWS connection."""
    if not isinstance(location, DropLocation):
        location = DropLocation(str(location))
    return location.files()


def _drop_file(source: DropFile | Path | str) -> DropFile:
    """A local path given directly (tests, benchmarks) as a DropFile (size/mtime unused)."""
    return source if isinstance(source, DropFile) else DropFile(Path(source), 0, 0)


@contextmanager
def _opened(file: DropFile) -> Iterator[str | BinaryIO]:
    """What pandas/pyarrow read: a local path as is (native reads, as fast as before), an S3
    object as an open s3fs file (pyarrow seeks in it, so parquet footers and the wanted row
    groups are fetched by range, not the whole object, once it exceeds s3fs's block)."""
    if file.fs is None:
        yield str(file.path)
    else:
        with file.fs.open(file.path, "rb") as handle:
            yield handle


def _time_filters(
    source: str | BinaryIO, name: str, start: datetime | None, end: datetime | None
) -> list | None:
    """Parquet predicates on a timestamp-typed column: row groups (and whole files) outside
    ``[start, end)`` are skipped unread, so a one-day run does not parse every file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (start is None and end is None) or not name.endswith(".parquet"):
        return None
    field_ = pq.read_schema(source).field("timestamp")
    if not isinstance(source, str):
        source.seek(0)
    if not pa.types.is_timestamp(field_.type) or field_.type.tz is not None:
        return None
    bounds = [(">=", start), ("<", end)]
    return [("timestamp", op, pd.Timestamp(v)) for op, v in bounds if v is not None]


def _read_columns(
    file: DropFile, columns: list[str], start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    try:
        with _opened(file) as source:
            if file.name.endswith(".parquet"):
                filters = _time_filters(source, file.name, start, end)
                frame = pd.read_parquet(source, columns=columns, filters=filters)
            else:
                gzip = "gzip" if file.name.endswith(".gz") else None
                frame = pd.read_csv(source, usecols=columns, engine="pyarrow", compression=gzip)
    except (ValueError, KeyError) as exc:  # missing columns, unparseable file
        raise DropFileError(f"{file.name}: cannot read columns {columns}: {exc}") from exc
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
        if parsed.isna().any():  # not the original sample's format: try ISO 8601 on the rest
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
    """Integer ids stay ``int64`` (as in the original sample); anything else becomes text.
    Missing ids fail."""
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
    source: DropFile | Path | str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The file's readings with ``start <= timestamp < end`` (naive UTC bounds), typed."""
    file = _drop_file(source)
    raw = _read_columns(file, list(COLUMNS), start, end)
    ts = parse_timestamps(raw["timestamp"], file.name)
    keep = np.ones(len(raw), dtype=bool)
    if start is not None:
        keep &= (ts >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (ts < pd.Timestamp(end)).to_numpy()
    if not keep.all():
        raw, ts = raw[keep], ts[keep]
    return pd.DataFrame(
        {
            "sensor_id": parse_sensor_ids(raw["sensor_id"], file.name),
            "timestamp": ts,
            "temperature": parse_temperatures(raw["temperature"], file.name),
        }
    ).reset_index(drop=True)


def file_days(source: DropFile | Path | str) -> list[str]:
    """The days (``YYYY-MM-DD``, UTC) a file holds readings for: the partitions it covers."""
    file = _drop_file(source)
    ts = parse_timestamps(_read_columns(file, ["timestamp"])["timestamp"], file.name)
    days = pd.DatetimeIndex(ts.dt.floor("D").unique())
    return sorted(days.strftime("%Y-%m-%d").tolist())
