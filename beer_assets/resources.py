"""The resources of the ``beer`` location: the shared ones and the Punk API client."""

from beer_assets.punkapi.resource import PunkApiResource
from platform_core.alerts import alert_webhook_resource
from platform_core.resources import shared_resources
from platform_core.settings import default_punk_api_url, int_setting, setting


def resources() -> dict:
    """Storage, IO manager, model store, alert webhook and PUNK_API_URL's client."""
    return {
        **shared_resources(),
        "alert_webhook": alert_webhook_resource(),
        "punk_api": PunkApiResource(
            base_url=setting("PUNK_API_URL", default_punk_api_url()),
            max_requests_per_hour=int_setting("PUNK_API_MAX_REQUESTS_PER_HOUR", 3600),
        ),
    }
