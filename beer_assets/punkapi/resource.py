"""The Punk API as a Dagster resource: where it is and how politely to call it."""

import dagster as dg
from pydantic import Field

from beer_assets.punkapi.client import PunkApiClient


class PunkApiResource(dg.ConfigurableResource):
    """PUNK_API_URL: ``http(s)://…/v2`` for an API, ``file://…/beers.json`` for a dump."""

    base_url: str = Field(description="API root (…/v2) or file:// URL of a beers.json dump.")
    timeout_s: float = Field(default=10.0, description="Per-request timeout.")
    max_retries: int = Field(default=5, description="Retries on 429, 5xx, timeouts, bad JSON.")
    max_requests_per_hour: int = Field(
        default=3600,
        description="Pacing; the public API allowed 3600/h. 0 = unlimited (a local server).",
    )

    def get_client(self) -> PunkApiClient:
        return PunkApiClient(
            self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            max_requests_per_hour=self.max_requests_per_hour or None,
        )
