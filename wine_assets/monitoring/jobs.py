"""Drift monitoring's job and sensor, and the wine-api service as an external asset."""

import dagster as dg

from platform_core.run_tags import BACKGROUND, lane_tags
from wine_assets.monitoring.assets import wine_drift_report
from wine_assets.monitoring.sensor import build_drift_sensor

#: The wine-api service runs outside Dagster but serves the champion: declared here (an
#: external asset, never materialized by Dagster) so the lineage shows which model answers it.
wine_quality_api = dg.AssetSpec(
    "wine_quality_api",
    group_name="wine_monitoring",
    deps=[dg.AssetKey("wine_quality_champion")],
    kinds={"fastapi"},
    description="The wine-api service (`wine-api`, outside Dagster): scores the wines sent to "
    "it with the champion that wine_quality_champion decided (P(good) and the 90 % interval "
    "too) and logs them for the drift reports; a new champion is served within a second.",
)

drift_job = dg.define_asset_job(
    "wine_drift_report_job",
    selection=dg.AssetSelection.assets(wine_drift_report),
    description="Compare logged predictions with the training data (Eurybia): the positions "
    "in the run's wine/drift_positions tag, or every row of the partition's hour.",
    tags=lane_tags(BACKGROUND),
)


drift_sensor = build_drift_sensor(drift_job)
