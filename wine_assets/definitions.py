"""The ``wine`` code location: barrel readings → daily history → quality predictions.

Readings are scored outside Dagster runs by ``wine-scorer`` (``quality/consumer.py``), which
reports its work as materializations of the daily history assets; runs here write and check
a day's history (``barrel_history_sensor``), retrain, monitor and profile.

Every asset, check, job, schedule and sensor in ``wine_assets`` is collected
(``platform_core.location``); the resources are ``wine_assets.resources``.
"""

from platform_core.location import load_location
from wine_assets.resources import resources

defs = load_location("wine_assets", resources=resources())
