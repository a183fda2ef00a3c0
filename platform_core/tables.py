"""Parquet tables as Dagster asset values, stored through :class:`PlatformStorage`.

Assets that produce a ``pandas.DataFrame`` return it and this IO manager persists it as
``tables/<asset key>[/<partition>].parquet`` with row count, column schema and location in
the materialization metadata, so every table tells the UI what it holds.
"""

import dagster as dg
import pandas as pd

from platform_core.storage import PlatformStorage

_DTYPE_NAMES = {"object": "string", "str": "string"}


def table_schema(df: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    """A Dagster TableSchema from a frame's dtypes (with optional column descriptions)."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=str(col),
                type=_DTYPE_NAMES.get(str(dtype), str(dtype)),
                description=descriptions.get(str(col)),
            )
            for col, dtype in df.dtypes.items()
        ]
    )


def table_key(asset_key: dg.AssetKey, partition_key: str | None = None) -> str:
    """Storage key of an asset's parquet file (one file per partition)."""
    base = "tables/" + "/".join(asset_key.path)
    return f"{base}/{partition_key}.parquet" if partition_key else f"{base}.parquet"


def table_metadata(df: pd.DataFrame, uri: str, descriptions: dict[str, str] | None = None) -> dict:
    """The metadata every table carries: rows, columns, schema, memory and location."""
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": table_schema(df, descriptions),
        "dagster/uri": uri,
        "columns": len(df.columns),
        "memory_mb": round(float(df.memory_usage(deep=True).sum()) / 2**20, 3),
    }


class ParquetTableIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame asset values as parquet under the platform storage root."""

    storage: dg.ResourceDependency[PlatformStorage]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a DataFrame")
        partition = context.partition_key if context.has_partition_key else None
        written = self.storage.write_parquet(table_key(context.asset_key, partition), obj)
        meta = table_metadata(obj, written.uri)
        meta["size_bytes"] = written.size_bytes
        context.add_output_metadata(meta)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        if not context.has_asset_partitions:
            return self.storage.read_parquet(table_key(context.asset_key))
        frames = [
            self.storage.read_parquet(table_key(context.asset_key, pk))
            for pk in context.asset_partition_keys
        ]
        return pd.concat(frames, ignore_index=True)
