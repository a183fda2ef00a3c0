"""The monitoring settings, read once here for the Dagster location and the service alike."""

import dagster as dg
from pydantic import Field

from platform_core.model_store import ModelStoreResource
from platform_core.resources import shared_resources
from platform_core.settings import (
    default_readings_store_url,
    int_setting,
    platform_home,
    setting,
)
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.readings.resource import ReadingsStoreResource


def default_prediction_log_dsn() -> str:
    """The embedded log: a SQLite file next to the readings store."""
    return f"sqlite:///{platform_home() / 'predictions.db'}"


def prediction_log_resource() -> PredictionLogResource:
    return PredictionLogResource(dsn=setting("PREDICTION_LOG_DSN", default_prediction_log_dsn()))


class DriftSensorSettings(dg.ConfigurableResource):
    """When the drift sensor asks for a report (DRIFT_REPORT_MIN_ROWS / _MAX_WAIT_S)."""

    min_rows: int = Field(default=1000, description="Request a report once this many rows are new.")
    max_wait_s: int = Field(
        default=3600,
        description="…or once the oldest unreported row has waited this long (seconds).",
    )
    settle_s: int = Field(
        default=10,
        description="Rows younger than this are left for the next tick (out-of-order commits "
        "of several service processes).",
    )


def drift_sensor_settings() -> DriftSensorSettings:
    return DriftSensorSettings(
        min_rows=int_setting("DRIFT_REPORT_MIN_ROWS", 1000),
        max_wait_s=int_setting("DRIFT_REPORT_MAX_WAIT_S", 3600),
    )


def service_resources() -> tuple[ModelStoreResource, PredictionLogResource, ReadingsStoreResource]:
    """What ``wine-api`` needs: the same model store, log and readings store as Dagster."""
    return (
        shared_resources()["model_store"],
        prediction_log_resource(),
        ReadingsStoreResource(url=setting("WINE_READINGS_STORE", default_readings_store_url())),
    )
