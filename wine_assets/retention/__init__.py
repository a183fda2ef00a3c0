"""Retention of the hot stores: closed days archived to parquet, then pruned."""

#: The asset group of the daily archives.
GROUP = "wine_retention"
