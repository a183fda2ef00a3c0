"""Daily partitions of the sensor-profile assets and the per-day files they keep.

Every asset stores one parquet file per day (``tables/<asset>/<YYYY-MM-DD>.parquet``, the
layout ``platform-sql`` reads as one view), written by the asset itself: a backfill over a
range is one run (``BackfillPolicy.single_run()``) that still leaves one file per day.
"""

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

import dagster as dg
import pandas as pd

from platform_core.storage import PlatformStorage
from platform_core.tables import table_key

#: Where the data starts: the original sensor sample and the synthetic month both begin on
#: 2023-02-15; ``end_offset=1`` makes today a partition too.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2023-02-15", end_offset=1)
single_run = dg.BackfillPolicy.single_run()

TEMPERATURES = dg.AssetKey("sensor_temperatures")
FEATURES = dg.AssetKey("sensor_daily_features")
MODEL = dg.AssetKey("sensor_profile_model")
CHAMPION = dg.AssetKey("sensor_profile_champion")
ASSIGNMENTS = dg.AssetKey("sensor_profile_assignments")


def run_days(context: dg.AssetExecutionContext) -> list[str]:
    """The days of this run: one for a daily run, the whole range for a backfill."""
    return list(context.partition_keys)


def run_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    """``[start, end)`` of the run's days as naive UTC datetimes (how readings are stored)."""
    window = context.partition_time_window
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


T = TypeVar("T")


def each_day(days: list[str], work: Callable[[str], T]) -> list[T]:
    """``work(day)`` for every day, in order, a few days at a time: parquet decoding, encoding
    and file IO release the GIL, so a range backfill keeps every core busy."""
    if len(days) == 1:
        return [work(days[0])]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(work, days))


def day_key(asset: dg.AssetKey, day: str) -> str:
    return table_key(asset, day)


def read_day(storage: PlatformStorage, asset: dg.AssetKey, day: str) -> pd.DataFrame:
    """One day's table of ``asset``; a clear failure when that day was never materialized."""
    key = day_key(asset, day)
    if not storage.exists(key):
        raise dg.Failure(
            f"{asset.to_user_string()} has no partition {day} in storage ({storage.uri(key)}): "
            "materialize it first"
        )
    return storage.read_parquet(key)


def read_days(storage: PlatformStorage, asset: dg.AssetKey, days: list[str]) -> pd.DataFrame:
    return pd.concat([read_day(storage, asset, d) for d in days], ignore_index=True)
