"""The quality jobs: a day's barrel history (sensor-triggered) and the retrain."""

import dagster as dg

from platform_core.run_tags import SCORING, lane_tags
from wine_assets.quality.assets import wine_quality_model_candidate
from wine_assets.quality.champion import wine_quality_champion
from wine_assets.quality.sensor import build_history_sensor
from wine_assets.quality.snapshot import barrel_quality_predictions, wine_sensor_snapshot
from wine_assets.quality.training import wine_training_data

snapshot_job = dg.define_asset_job(
    "barrel_snapshot",
    selection=dg.AssetSelection.assets(wine_sensor_snapshot, barrel_quality_predictions),
    description="Write one UTC day of barrel history (readings and the scorer's predictions) "
    "and check that every write of the day is accounted for (sensor-triggered, at most hourly).",
    tags=lane_tags(SCORING),
)
retrain_job = dg.define_asset_job(
    "wine_retrain",
    selection=dg.AssetSelection.assets(
        wine_training_data, wine_quality_model_candidate, wine_quality_champion
    ),
    description="Reload the training data, retrain, gate the candidate and decide whether it "
    "becomes champion (wine_quality_champion).",
)
history_sensor = build_history_sensor(snapshot_job)
