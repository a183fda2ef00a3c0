"""The drop location on S3 (moto's standalone server over HTTP): listed, read and watched as
a local folder is, through the storage resource's S3 connection."""

import gzip
import io
import json
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from platform_core.storage import PlatformStorage, s3fs_options
from tests.conftest import s3_storage
from tests.wine.profiles_support import materialize_days, profile_resources
from wine_assets.profiles import drop
from wine_assets.profiles.drop import DropFileError, DropLocation, file_days, read_drop_file
from wine_assets.profiles.generate import write_days
from wine_assets.profiles.jobs import profiles_job
from wine_assets.profiles.partitions import ASSIGNMENTS, FEATURES, MODEL, TEMPERATURES, read_days
from wine_assets.profiles.sensor import build_drop_sensor

SENSOR = build_drop_sensor(profiles_job)
HEADER = "sensor_id,timestamp,temperature\n"


class Bucket:
    """A fresh bucket on the moto server, written with plain boto3 (as another system would)."""

    def __init__(self, endpoint: str) -> None:
        self.name = f"drop-{uuid.uuid4().hex[:10]}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.client.create_bucket(Bucket=self.name)

    def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def url(self, prefix: str = "drop") -> str:
        return f"s3://{self.name}/{prefix}"


@pytest.fixture
def s3(moto_endpoint: str) -> tuple[Bucket, PlatformStorage]:
    """A drop bucket and platform storage on another bucket of the same server: the drop
    location borrows the storage resource's S3 connection (endpoint, region, keys)."""
    return Bucket(moto_endpoint), s3_storage(moto_endpoint)


def location(bucket: Bucket, storage: PlatformStorage, prefix: str = "drop") -> DropLocation:
    return DropLocation(bucket.url(prefix), s3fs_options(storage.s3))


def hourly_csv(sensors: list[int], first_hour: str, hours: int, base: float = 10.0) -> str:
    stamps = pd.date_range(first_hour, periods=hours, freq="h").strftime("%Y-%m-%d %H")
    lines = [
        f"{s},{t},{base + i + h % 5}" for i, s in enumerate(sensors) for h, t in enumerate(stamps)
    ]
    return HEADER + "\n".join(lines) + "\n"


def test_listing_follows_the_folder_rules_one_level_deep(s3, tmp_path):
    bucket, storage = s3
    layout = {
        "a.csv": HEADER + "1,2023-02-15 00,3\n",
        "b.csv.gz": gzip.compress((HEADER + "1,2023-02-15 00,3\n").encode()),
        "c.parquet": b"PAR1",
        ".hidden.csv": HEADER,
        "d.csv.tmp": HEADER,
        "notes.txt": "x",
        "sub/deeper.csv": HEADER,
    }
    folder = tmp_path / "drop"
    for name, body in layout.items():
        bucket.put(f"drop/{name}", body)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        data = body.encode() if isinstance(body, str) else body
        (folder / name).write_bytes(data)
    bucket.put("drop/", b"")  # a "folder" marker some tools create
    bucket.put("drop-other/e.csv", HEADER)  # a sibling prefix, not under drop/
    listed = location(bucket, storage).files()
    assert [f.name for f in listed] == ["a.csv", "b.csv.gz", "c.parquet"]
    assert [f.name for f in drop.list_drop_files(folder)] == [f.name for f in listed]
    assert [f.path for f in listed] == [
        f"{bucket.url()}/{n}" for n in ("a.csv", "b.csv.gz", "c.parquet")
    ]
    assert listed[0].size == len(layout["a.csv"])
    # The whole bucket is a location too, and an empty prefix is an empty folder, not an error.
    assert [f.name for f in location(bucket, storage, "").files()] == []
    assert location(bucket, storage, "nothing/here").files() == []
    missing = DropLocation("s3://no-such-drop-bucket/drop", s3fs_options(storage.s3))
    with pytest.raises(DropFileError, match="bucket 'no-such-drop-bucket' not found"):
        missing.files()


def test_a_rewrite_changes_the_signature_even_at_the_same_size(s3):
    bucket, storage = s3
    bucket.put("drop/a.csv", HEADER + "1,2023-02-15 00,21\n")
    [before] = location(bucket, storage).files()
    bucket.put("drop/a.csv", HEADER + "1,2023-02-15 00,22\n")  # same size, same second
    [after] = location(bucket, storage).files()
    assert before.size == after.size and before.etag != after.etag
    assert before.signature != after.signature
    assert after.signature == f"{after.size}-{after.mtime_ns}-{after.etag}"
    assert [f.signature for f in location(bucket, storage).files()] == [after.signature]


def typed_frame() -> pd.DataFrame:
    stamps = pd.date_range("2023-02-15 00:00", periods=48, freq="h")
    return pd.DataFrame(
        {
            "sensor_id": [7] * 48 + [8] * 48,
            "timestamp": list(stamps) * 2,
            "temperature": [float(i) for i in range(96)],
        }
    )


def encoded(name: str, frame: pd.DataFrame) -> bytes:
    if name.endswith(".parquet"):
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False, row_group_size=24)  # one row group per sensor-day
        return buf.getvalue()
    text = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H")).to_csv(index=False)
    return gzip.compress(text.encode()) if name.endswith(".gz") else text.encode()


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz", "r.parquet"])
def test_s3_objects_read_exactly_as_the_same_local_files(s3, tmp_path, monkeypatch, name):
    bucket, storage = s3
    data = encoded(name, typed_frame())
    (tmp_path / name).write_bytes(data)
    bucket.put(f"drop/{name}", data)
    [remote] = location(bucket, storage).files()
    [local] = drop.list_drop_files(tmp_path)

    filters = []
    real = drop._time_filters
    monkeypatch.setattr(drop, "_time_filters", lambda *a: filters.append(real(*a)) or filters[-1])
    window = (pd.Timestamp("2023-02-16"), pd.Timestamp("2023-02-17"))
    for args in ((), window):
        pd.testing.assert_frame_equal(read_drop_file(remote, *args), read_drop_file(local, *args))
    day2 = read_drop_file(remote, *window)
    assert len(day2) == 48 and (day2["timestamp"] >= window[0]).all()
    if name.endswith(".parquet"):  # row groups outside the window skipped on S3 as locally
        wanted = [("timestamp", ">=", window[0]), ("timestamp", "<", window[1])]
        assert filters[-3:] == [wanted, wanted, wanted]  # remote, local, remote
    assert file_days(remote) == file_days(local) == ["2023-02-15", "2023-02-16"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("7,2023-02-15 00,21\n7,2023-02-15 01,warm\n", r"bad.csv: field 'temperature' row 2\b"),
        ("7,2023-02-15 00,21\n7,yesterday,20\n", r"bad.csv: field 'timestamp' row 2\b"),
        ("7,2023-02-15 00,21\n,2023-02-15 01,20\n", r"bad.csv: field 'sensor_id' row 2\b"),
    ],
)
def test_a_bad_s3_object_fails_as_a_bad_local_file_does(s3, tmp_path, body, message):
    bucket, storage = s3
    bucket.put("drop/bad.csv", HEADER + body)
    (tmp_path / "bad.csv").write_text(HEADER + body)
    [remote] = location(bucket, storage).files()
    with pytest.raises(DropFileError, match=message) as on_s3:
        read_drop_file(remote)
    with pytest.raises(DropFileError) as on_disk:
        read_drop_file(tmp_path / "bad.csv")
    assert str(on_s3.value) == str(on_disk.value)
    bucket.put("drop/bad.csv", "sensor_id,time,temperature\n7,2023-02-15 00,21\n")
    [remote] = location(bucket, storage).files()
    with pytest.raises(DropFileError, match="bad.csv: cannot read columns"):
        file_days(remote)


def evaluate(instance: dg.DagsterInstance, cursor: str | None, resources: dict):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        return SENSOR(ctx)


def requested(result) -> list[tuple]:
    return [
        (
            r.partition_key,
            r.tags.get("dagster/asset_partition_range_start"),
            r.tags.get("dagster/asset_partition_range_end"),
            r.run_key,
        )
        for r in result.run_requests
    ]


def test_the_sensor_picks_up_a_new_object_once_and_a_rewritten_one_again(s3):
    bucket, storage = s3
    resources = profile_resources(storage, bucket.url(), k=2)
    with dg.instance_for_test() as instance:
        assert isinstance(evaluate(instance, None, resources), dg.SkipReason)

        bucket.put("drop/week7.csv", hourly_csv([101, 102, 103], "2023-02-15 06:00", 48))
        first = evaluate(instance, None, resources)
        [(key, start, end, run_key)] = requested(first)
        assert (key, start, end) == (None, "2023-02-15", "2023-02-17")
        assert set(json.loads(first.cursor)) == {"week7.csv"}
        assert requested(evaluate(instance, None, resources))[0][3] == run_key  # a replay
        assert isinstance(evaluate(instance, first.cursor, resources), dg.SkipReason)

        # Another object: only its day; the first one is not requested again.
        bucket.put("drop/later.csv", hourly_csv([101, 102], "2023-02-20 00:00", 24))
        second = evaluate(instance, first.cursor, resources)
        assert [r[:3] for r in requested(second)] == [("2023-02-20", None, None)]
        assert isinstance(evaluate(instance, second.cursor, resources), dg.SkipReason)

        # week7.csv rewritten in place, same size (one reading changed): picked up again.
        old = hourly_csv([101, 102, 103], "2023-02-15 06:00", 48)
        new = old.replace("101,2023-02-15 06,10.0", "101,2023-02-15 06,11.0")
        assert len(new) == len(old) and new != old
        bucket.put("drop/week7.csv", new)
        third = evaluate(instance, second.cursor, resources)
        [(_, start, end, rewritten_key)] = requested(third)
        assert (start, end) == ("2023-02-15", "2023-02-17") and rewritten_key != run_key
        assert json.loads(third.cursor)["later.csv"] == json.loads(second.cursor)["later.csv"]
        assert isinstance(evaluate(instance, third.cursor, resources), dg.SkipReason)
    assert bucket.keys() == ["drop/later.csv", "drop/week7.csv"]  # never moved or deleted


def upload(folder: Path, bucket: Bucket) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    for name in names:
        bucket.put(f"drop/{name}", (folder / name).read_bytes())
    return names


def test_the_four_assets_materialize_from_s3_as_from_a_folder(s3, tmp_path):
    bucket, storage = s3
    folder = tmp_path / "drop"
    write_days(folder, sensors=60, days=2, seed=5, fmt="parquet")
    write_days(folder, sensors=60, days=1, start=pd.Timestamp("2023-02-17").date(), fmt="csv")
    names = upload(folder, bucket)
    local = PlatformStorage.local(str(tmp_path / "storage"))
    days = ["2023-02-15", "2023-02-16", "2023-02-17"]
    with dg.instance_for_test() as instance:
        on_s3 = materialize_days(profile_resources(storage, bucket.url()), instance, *days[::2])
    with dg.instance_for_test() as instance:
        on_disk = materialize_days(profile_resources(local, folder), instance, *days[::2])
    assert on_s3.success and on_disk.success
    meta = on_s3.asset_materializations_for_node("sensor_temperatures")[0].metadata
    assert meta["files_used"].value == names  # 3 files: under the cap, all named
    assert meta["dagster/row_count"].value == 60 * 24 * 3
    for asset in (TEMPERATURES, FEATURES, ASSIGNMENTS):
        mine, theirs = read_days(storage, asset, days), read_days(local, asset, days)
        drop_cols = [c for c in ("run_id", "assigned_at") if c in mine]
        pd.testing.assert_frame_equal(mine.drop(columns=drop_cols), theirs.drop(columns=drop_cols))
    model = on_s3.asset_materializations_for_node(MODEL.path[-1])[0].metadata
    champion = on_s3.asset_materializations_for_node("sensor_profile_champion")[0].metadata
    assert champion["decision"].value == "champion"
    assert model["dagster/uri"].value.startswith(storage.root)
    assert bucket.keys() == [f"drop/{n}" for n in names]
