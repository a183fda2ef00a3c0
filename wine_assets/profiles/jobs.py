"""The sensor-profile job, its daily schedule and the temperature-drop sensor."""

import dagster as dg

from platform_core.run_tags import BACKGROUND, lane_tags
from wine_assets.profiles.assets import profile_assets
from wine_assets.profiles.schedule import build_readings_schedule
from wine_assets.profiles.sensor import build_drop_sensor

profiles_job = dg.define_asset_job(
    "sensor_profiles",
    selection=dg.AssetSelection.assets(*profile_assets),
    description="Temperatures → daily features → profile model → champion decision → "
    "assignments for a day or a range of days (one run per range).",
    tags=lane_tags(BACKGROUND),
)
readings_schedule = build_readings_schedule(profiles_job)
drop_sensor = build_drop_sensor(profiles_job)
