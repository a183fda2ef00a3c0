"""The wine prediction service, its prediction log and Eurybia drift monitoring."""
