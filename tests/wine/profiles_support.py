"""Shared helpers of the sensor-profile tests: resources on a temporary storage, range runs."""

from pathlib import Path

import dagster as dg

from platform_core.resources import shared_resources
from platform_core.storage import PlatformStorage
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.resources import SensorProfilesSettings
from wine_assets.profiles.sensor import range_tags
from wine_assets.readings.resource import ReadingsStoreResource


def profile_resources(
    storage: PlatformStorage,
    drop_dir: Path | str,
    dsn: str | None = None,
    k: int = 4,
    source: str = "drop",
    readings_url: str = "sqlite:///:memory:",
    approval: str = "auto",
) -> dict:
    """The profile assets' resources; the readings store is only opened by source=readings.
    ``drop_dir`` may be ``s3://…``: it then uses ``storage``'s S3 connection."""
    return {
        **shared_resources(storage=storage, approval=approval),
        "readings_store": ReadingsStoreResource(url=readings_url),
        "sensor_profiles": SensorProfilesSettings(
            drop_dir=str(drop_dir), dsn=dsn, k=k, source=source
        ),
    }


def materialize_days(
    resources: dict, instance: dg.DagsterInstance, first: str, last: str, **kwargs
) -> dg.ExecuteInProcessResult:
    """All four profile assets over ``first``..``last`` in one run (a single-run backfill)."""
    return dg.materialize(
        profile_assets,
        resources=resources,
        instance=instance,
        tags=range_tags(first, last),
        **kwargs,
    )
