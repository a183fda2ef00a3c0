"""The sensor-profile settings (PROFILES_*), read once through platform_core.settings."""

from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from platform_core.settings import data_dir, int_setting, optional_setting, platform_home, setting
from platform_core.storage import s3fs_options
from wine_assets.profiles.drop import DropLocation
from wine_assets.profiles.generate import ensure_synthetic_month

#: Where ``sensor_temperatures`` reads hourly readings (PROFILES_SOURCE).
SOURCES = ("drop", "readings")


def synthetic_drop_dir() -> Path:
    """The drop folder of a fresh machine: a generated month (see ``generate``)."""
    return platform_home() / "drop" / "cellar_temperatures"


def default_drop_dir() -> str:
    """The original sensor sample's files (``$PLATFORM_DATA_DIR/mock_ml_pipeline``) where a user has
    them, else :func:`synthetic_drop_dir`."""
    sample = data_dir() / "mock_ml_pipeline"
    return str(sample if sample.is_dir() else synthetic_drop_dir())


class SensorProfilesSettings(dg.ConfigurableResource):
    """Where readings come from, how many profiles, and where assignments go in production."""

    source: str = Field(
        default="drop",
        description="drop: files in drop_dir (a sensor picks them up); readings: the barrel "
        "readings store's temperature history (readings_store resource, a daily schedule).",
    )
    drop_dir: str = Field(
        description="Folder or s3://bucket/prefix of CSV/parquet files (sensor_id, timestamp, "
        "temperature); read only. S3 goes through the storage resource's connection (AWS_*)."
    )
    dsn: str | None = Field(
        default=None,
        description="postgresql://… : assignments also go to its cluster_predictions table.",
    )
    k: int = Field(default=4, description="Number of behaviour profiles (k-means clusters).")
    min_readings: int = Field(
        default=18,
        description="A sensor-day with fewer finite readings (of 24) is flagged, not clustered.",
    )

    def source_name(self) -> str:
        """``source`` checked when used: an EnvVar is only resolved then, not at definition."""
        if self.source not in SOURCES:
            raise ValueError(f"PROFILES_SOURCE: expected one of {SOURCES}, got {self.source!r}")
        return self.source

    def drop_location(self, s3: S3Resource) -> DropLocation:
        """``drop_dir`` with the platform's one S3 connection (the storage resource's, from
        AWS_ENDPOINT_URL/AWS_REGION/keys): no second set of S3 settings to keep in step."""
        url = str(self.drop_dir)
        if url == str(synthetic_drop_dir()):
            ensure_synthetic_month(synthetic_drop_dir())  # once, on a fresh machine
        return DropLocation(url, s3fs_options(s3) if url.startswith("s3://") else {})


def profiles_settings() -> SensorProfilesSettings:
    return SensorProfilesSettings(
        drop_dir=setting("PROFILES_DROP_DIR", default_drop_dir()),
        dsn=optional_setting("PROFILES_DSN"),
        k=int_setting("PROFILES_K", 4),
        min_readings=int_setting("PROFILES_MIN_READINGS", 18),
        source=setting("PROFILES_SOURCE", "drop"),
    )
