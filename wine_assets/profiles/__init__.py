"""Cellar sensor profiles: hourly temperatures → daily features per sensor →
a continuously trained k-means model → the behaviour profile of every sensor-day."""
