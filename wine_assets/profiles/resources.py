"""The sensor-profile settings (PROFILES_*), read once through platform_core.settings."""

import dagster as dg
from pydantic import Field

from platform_core.settings import data_dir, int_setting, optional_setting, setting


def default_drop_dir() -> str:
    """System E's sample files: ``$PLATFORM_DATA_DIR/mock_ml_pipeline``."""
    return str(data_dir() / "mock_ml_pipeline")


class SensorProfilesSettings(dg.ConfigurableResource):
    """Where readings are dropped, how many profiles, and where assignments go in production."""

    drop_dir: str = Field(
        description="Folder of CSV/parquet files (sensor_id, timestamp, temperature); read only."
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


def profiles_settings() -> SensorProfilesSettings:
    return SensorProfilesSettings(
        drop_dir=setting("PROFILES_DROP_DIR", default_drop_dir()),
        dsn=optional_setting("PROFILES_DSN"),
        k=int_setting("PROFILES_K", 4),
        min_readings=int_setting("PROFILES_MIN_READINGS", 18),
    )
