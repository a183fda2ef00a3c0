"""Resources shared by both code locations, built from the environment (see settings)."""

from __future__ import annotations

from dagster_aws.s3 import S3Resource

from platform_core.model_store import ModelStoreResource
from platform_core.settings import default_storage_root, optional_setting, setting
from platform_core.storage import PlatformStorage
from platform_core.tables import ParquetTableIOManager


def s3_resource() -> S3Resource:
    """S3 connection: AWS defaults unless an endpoint (moto, MinIO) or keys are configured."""
    return S3Resource(
        endpoint_url=optional_setting("AWS_ENDPOINT_URL"),
        region_name=setting("AWS_REGION", "us-east-1"),
        aws_access_key_id=optional_setting("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=optional_setting("AWS_SECRET_ACCESS_KEY"),
    )


def storage_resource() -> PlatformStorage:
    """PLATFORM_STORAGE_ROOT: a local folder (default ``.platform/storage``) or s3://bucket/prefix."""
    return PlatformStorage(
        root=setting("PLATFORM_STORAGE_ROOT", default_storage_root()), s3=s3_resource()
    )


def shared_resources(storage: PlatformStorage | None = None, approval: str | None = None) -> dict:
    """The resources every code location binds: storage, parquet IO manager, model store.

    ``storage`` and ``approval`` default to the environment (PLATFORM_STORAGE_ROOT,
    MODEL_APPROVAL); tests pass their own so every resource shares one storage.
    """
    storage = storage if storage is not None else storage_resource()
    return {
        "storage": storage,
        "io_manager": ParquetTableIOManager(storage=storage),
        "model_store": ModelStoreResource(
            storage=storage,
            approval=approval if approval is not None else setting("MODEL_APPROVAL", "auto"),
        ),
    }
