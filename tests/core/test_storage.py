"""The IO layer behaves the same on a local folder and on S3 (moto's server over HTTP)."""

import pandas as pd
import pytest

from platform_core.storage import AlreadyExistsError, PlatformStorage, sha256_hex
from platform_core.tables import table_key


def test_bytes_round_trip_with_checksum(any_storage: PlatformStorage) -> None:
    written = any_storage.write_bytes("a/b/c.bin", b"hello")
    assert written.sha256 == sha256_hex(b"hello")
    assert written.size_bytes == 5
    assert any_storage.read_bytes("a/b/c.bin") == b"hello"
    assert any_storage.exists("a/b/c.bin")
    assert not any_storage.exists("a/b/missing.bin")


def test_append_only_write_refuses_to_replace(any_storage: PlatformStorage) -> None:
    any_storage.write_bytes("raw/x.json", b"[1]", overwrite=False)
    with pytest.raises(AlreadyExistsError, match="append-only"):
        any_storage.write_bytes("raw/x.json", b"[2]", overwrite=False)
    assert any_storage.read_bytes("raw/x.json") == b"[1]"


def test_listing_is_recursive_and_sorted(any_storage: PlatformStorage) -> None:
    for key in ["p/2/b.json", "p/1/a.json", "p/1/c.json", "q/z.json"]:
        any_storage.write_bytes(key, b"{}")
    assert any_storage.list_keys("p") == ["p/1/a.json", "p/1/c.json", "p/2/b.json"]
    assert any_storage.list_keys("nothing-here") == []


def test_parquet_round_trip_keeps_dtypes(any_storage: PlatformStorage) -> None:
    df = pd.DataFrame(
        {"id": pd.array([1, None], dtype="Int64"), "x": [1.5, float("nan")], "s": ["a", "b"]}
    )
    any_storage.write_parquet("tables/t.parquet", df)
    back = any_storage.read_parquet("tables/t.parquet")
    assert back["id"].dtype == "Int64"
    assert back["id"].isna().tolist() == [False, True]
    pd.testing.assert_series_equal(back["x"], df["x"])


def test_s3_objects_are_really_in_the_bucket(moto_endpoint: str) -> None:
    """Written through UPath/s3fs, read back with plain boto3 from dagster-aws's S3Resource."""
    from tests.conftest import s3_storage

    storage = s3_storage(moto_endpoint, bucket="platform-check")
    storage.write_bytes("tables/beers_clean.parquet", b"PAR1")
    client = storage.s3.get_client()
    body = client.get_object(Bucket="platform-check", Key="platform/tables/beers_clean.parquet")
    assert body["Body"].read() == b"PAR1"


def test_table_keys_are_per_asset_and_partition() -> None:
    import dagster as dg

    assert table_key(dg.AssetKey(["beer", "clean"])) == "tables/beer/clean.parquet"
    assert table_key(dg.AssetKey("t"), "2024-01-01") == "tables/t/2024-01-01.parquet"
