"""The ``beer`` code location: Punk API ingestion, cleaned table, IBU model and predictions.

Every asset, check, job, schedule and sensor in ``beer_assets`` is collected
(``platform_core.location``); the resources are ``beer_assets.resources``.
"""

from beer_assets.resources import resources
from platform_core.location import load_location

defs = load_location("beer_assets", resources=resources())
