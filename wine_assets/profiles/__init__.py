"""Cellar sensor profiles: hourly temperatures → daily features per sensor →
a continuously trained k-means model → the behaviour profile of every sensor-day."""

#: The asset group and the registry name of the sensor-profile model.
GROUP = "sensor_profiles"
MODEL_NAME = "sensor_profiles"
