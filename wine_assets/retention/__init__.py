"""Retention of the hot stores: closed days archived to parquet, then pruned."""
