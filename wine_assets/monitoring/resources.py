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
from wine_assets.monitoring.assets import WineApiResource
from wine_assets.monitoring.prediction_log import PredictionLogResource
from wine_assets.readings.resource import ReadingsStoreResource


def default_prediction_log_dsn() -> str:
    """The embedded log: a SQLite file next to the readings store."""
    return f"sqlite:///{platform_home() / 'predictions.db'}"


def prediction_log_resource() -> PredictionLogResource:
    return PredictionLogResource(dsn=setting("PREDICTION_LOG_DSN", default_prediction_log_dsn()))


class DriftSensorSettings(dg.ConfigurableResource):
    """When the drift sensor asks for a report over the rows new since the last one."""

    min_rows: int = Field(
        default=100,
        description="A burst of at least this many new rows gets its report once it is over "
        "(no new row for quiet_s).",
    )
    quiet_s: int = Field(
        default=15, description="A burst is over once no row came for this long (seconds)."
    )
    max_rows: int = Field(
        default=5000,
        description="Steady traffic that never pauses: report once this many rows are new.",
    )
    max_wait_s: int = Field(
        default=3600,
        description="…and any new rows, however few, once the oldest has waited this long.",
    )
    settle_s: int = Field(
        default=10,
        description="Rows younger than this are left for the next tick (out-of-order commits "
        "of several service processes).",
    )


def drift_sensor_settings() -> DriftSensorSettings:
    return DriftSensorSettings(
        min_rows=int_setting("DRIFT_REPORT_MIN_ROWS", 100),
        quiet_s=int_setting("DRIFT_REPORT_QUIET_S", 15),
        max_rows=int_setting("DRIFT_REPORT_MAX_ROWS", 5000),
        max_wait_s=int_setting("DRIFT_REPORT_MAX_WAIT_S", 3600),
    )


def default_wine_api_url() -> str:
    return "http://127.0.0.1:8000"


def wine_api_resource() -> WineApiResource:
    """WINE_API_URL: where the Dagster UI's user reaches wine-api (the report links)."""
    return WineApiResource(url=setting("WINE_API_URL", default_wine_api_url()))


def service_resources() -> tuple[ModelStoreResource, PredictionLogResource, ReadingsStoreResource]:
    """What ``wine-api`` needs: the same model store, log and readings store as Dagster."""
    return (
        shared_resources()["model_store"],
        prediction_log_resource(),
        ReadingsStoreResource(url=setting("WINE_READINGS_STORE", default_readings_store_url())),
    )
