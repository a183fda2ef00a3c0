"""One IO layer for tables, raw landings and model files, on a local folder or ``s3://``.

Both code locations read and write through :class:`PlatformStorage`, so swapping the embedded
local folder for S3 is a matter of configuration. Paths are universal-pathlib ``UPath`` objects;
for ``s3://`` roots the S3 connection settings come from dagster-aws's :class:`S3Resource`
(endpoint, region, credentials as ``EnvVar``), the same resource the rest of Dagster uses.
"""

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from dagster_aws.s3 import S3Resource
from pydantic import Field
from upath import UPath


class AlreadyExistsError(FileExistsError):
    """An append-only write found something at its key: raw data is never overwritten."""


def sha256_hex(data: bytes) -> str:
    """Checksum recorded next to every model file and raw landing."""
    return hashlib.sha256(data).hexdigest()


def s3fs_options(s3: S3Resource) -> dict:
    """s3fs options from dagster-aws's S3Resource: every s3:// read (storage, drop location)
    uses the one configured connection (AWS_ENDPOINT_URL, AWS_REGION, keys)."""
    opts: dict = {}
    client_kwargs: dict = {}
    if s3.endpoint_url:
        opts["endpoint_url"] = s3.endpoint_url
    if s3.region_name:
        client_kwargs["region_name"] = s3.region_name
    if s3.aws_access_key_id:
        opts["key"] = s3.aws_access_key_id
    if s3.aws_secret_access_key:
        opts["secret"] = s3.aws_secret_access_key
    if s3.aws_session_token:
        opts["token"] = s3.aws_session_token
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    # Listings must see objects written a moment ago by another process.
    opts["use_listings_cache"] = False
    return opts


@dataclass(frozen=True)
class Written:
    """What a write produced: where, how big, and its checksum."""

    uri: str
    size_bytes: int
    sha256: str


class PlatformStorage(dg.ConfigurableResource):
    """Bytes, parquet tables and listings under one root (local folder or ``s3://bucket/prefix``)."""

    root: str = Field(description="Local folder or s3://bucket/prefix holding all platform data.")
    s3: S3Resource = Field(
        description="S3 connection used when root is an s3:// URI (endpoint, region, keys).",
    )

    @classmethod
    def local(cls, root: str) -> "PlatformStorage":
        """Storage on a local folder (the S3 settings are then unused)."""
        return cls(root=root, s3=S3Resource())

    # -- paths ---------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def _storage_options(self) -> dict:
        """s3fs options derived from the dagster-aws S3Resource settings."""
        return s3fs_options(self.s3) if self.is_s3 else {}

    def path(self, key: str = "") -> UPath:
        """The UPath for ``key`` (a ``/``-separated relative key) under the root."""
        base = UPath(self.root.rstrip("/"), **self._storage_options())
        return base / key if key else base

    def uri(self, key: str) -> str:
        """A human-readable location for metadata (``file://`` or ``s3://``)."""
        p = self.path(key)
        return p.as_uri() if not self.is_s3 else str(p)

    # -- bytes ---------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> Written:
        """Write ``data`` at ``key``; with ``overwrite=False`` refuse to replace anything."""
        p = self.path(key)
        if not overwrite and p.exists():
            raise AlreadyExistsError(f"{self.uri(key)} exists; append-only data is never replaced")
        if not self.is_s3:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            tmp.rename(p)  # readers never see half a file
        else:
            p.write_bytes(data)
        return Written(uri=self.uri(key), size_bytes=len(data), sha256=sha256_hex(data))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def list_keys(self, prefix: str) -> list[str]:
        """All keys below ``prefix`` (recursive), sorted, relative to the root."""
        base = self.path(prefix)
        if not base.exists():
            return []
        root = str(self.path()).rstrip("/") + "/"
        keys = [str(p)[len(root) :] for p in _walk_files(base)]
        return sorted(k for k in keys if not k.endswith(".tmp"))

    def delete(self, key: str) -> None:
        """Remove one object (used for derived files only, never for raw landings)."""
        p = self.path(key)
        if p.exists():
            p.unlink()

    # -- tables --------------------------------------------------------------------------
    def write_parquet(self, key: str, df: pd.DataFrame) -> Written:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return self.write_bytes(key, buf.getvalue())

    def read_parquet(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(key)))

    def ensure_bucket(self) -> None:
        """Create the S3 bucket if it is missing (local folders are created on write)."""
        if not self.is_s3:
            return
        bucket = self.root[len("s3://") :].split("/", 1)[0]
        client = self.s3.get_client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def _walk_files(base: UPath) -> Iterator[UPath]:
    for p in base.rglob("*"):
        if p.is_file():
            yield p
