"""The wine prediction service, its prediction log and Eurybia drift monitoring."""

#: The asset group of the drift reports and the wine-api asset.
GROUP = "wine_monitoring"
