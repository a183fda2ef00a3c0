"""SQL over the platform's parquet tables through DuckDB, locally and on S3."""

import pandas as pd

from platform_core.catalog import connect, main
from platform_core.storage import PlatformStorage


def test_tables_and_partitions_become_views(any_storage: PlatformStorage) -> None:
    any_storage.write_parquet("tables/beers_clean.parquet", pd.DataFrame({"id": [1, 2, 3]}))
    any_storage.write_parquet("tables/snap/p1.parquet", pd.DataFrame({"v": [1.0, 2.0]}))
    any_storage.write_parquet("tables/snap/p2.parquet", pd.DataFrame({"v": [5.0]}))
    any_storage.write_bytes("raw/punkapi/x.json", b"[]")  # not a table
    con = connect(any_storage)
    views = {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}
    assert views == {"beers_clean", "snap", "snap__p1", "snap__p2"}
    assert con.sql("SELECT sum(id) FROM beers_clean").fetchall() == [(6,)]
    assert con.sql("SELECT count(*), max(v) FROM snap").fetchall() == [(3, 5.0)]


def test_cli_queries_the_configured_storage(tmp_path, monkeypatch, capsys) -> None:
    storage = PlatformStorage.local(str(tmp_path))
    storage.write_parquet("tables/t.parquet", pd.DataFrame({"abv": [4.5, 5.5]}))
    monkeypatch.setenv("PLATFORM_STORAGE_ROOT", str(tmp_path))
    assert main(["SELECT avg(abv) AS mean_abv FROM t"]) == 0
    assert "5.0" in capsys.readouterr().out
