"""Punk API ingestion: raw landings, the cleaned table and its checks."""

#: The asset group of the ingestion assets.
GROUP = "beer_ingest"
