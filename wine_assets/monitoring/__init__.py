"""System B done properly: prediction service, prediction log and Eurybia drift monitoring."""
