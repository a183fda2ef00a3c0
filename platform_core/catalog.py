"""SQL over the platform's parquet tables with DuckDB (the role Glue + Athena played).

Every ``tables/<name>.parquet`` in storage becomes a view (S3: a table) named after the asset key
(``/`` → ``__``); partitioned tables (``tables/<name>/<partition>.parquet``) become one view over
all partitions. Local tables are read in place; S3 tables are fetched through the storage layer
so the same credentials and endpoint apply.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from platform_core.storage import PlatformStorage


def table_files(storage: PlatformStorage) -> dict[str, list[str]]:
    """View name → parquet keys, for every table in storage."""
    views: dict[str, list[str]] = defaultdict(list)
    for key in storage.list_keys("tables"):
        if not key.endswith(".parquet"):
            continue
        parts = key[len("tables/") : -len(".parquet")].split("/")
        flat = "__".join(parts)
        views[flat].append(key)
        if len(parts) > 1:  # also expose the partitioned table as a whole
            views["__".join(parts[:-1])].append(key)
    return dict(views)


def connect(storage: PlatformStorage) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per platform table."""
    con = duckdb.connect()
    for view, keys in table_files(storage).items():
        if storage.is_s3:
            arrow = pa.concat_tables(
                [pq.read_table(io.BytesIO(storage.read_bytes(k))) for k in keys],
                promote_options="default",
            )
            con.register("_staging", arrow)  # S3 tables are copied in, not re-read per query
            con.execute(f'CREATE TABLE "{view}" AS SELECT * FROM _staging')
            con.unregister("_staging")
        else:
            paths = ", ".join(_sql_string(str(storage.path(k))) for k in keys)
            con.execute(
                f'CREATE VIEW "{view}" AS SELECT * FROM read_parquet([{paths}], union_by_name=true)'
            )
    return con


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main(argv: list[str] | None = None) -> int:
    """``platform-sql "SELECT …"``: query the tables of the configured storage."""
    from platform_core.resources import storage_resource

    parser = argparse.ArgumentParser(prog="platform-sql", description=main.__doc__)
    parser.add_argument("query", nargs="?", help="SQL; omit to list the tables")
    args = parser.parse_args(argv)
    with storage_resource().process_config_and_initialize_cm() as storage:
        con = connect(storage)
        query = args.query or "SELECT table_name FROM information_schema.tables ORDER BY 1"
        print(con.sql(query).df().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
