"""Raw landing: pages land as they arrive, a failed ingestion keeps what it fetched (with a
manifest saying it is incomplete), and a landing without a manifest is never read."""

import hashlib
import json
import logging
from datetime import UTC, datetime

import dagster as dg
import pytest

from beer_assets.definitions import defs
from beer_assets.ingest.landing import (
    RAW_PREFIX,
    LandingWriter,
    iter_raw_pages,
    land,
    landing_folder,
    list_landings,
)
from beer_assets.punkapi.client import FetchResult, PunkApiError
from beer_assets.punkapi.resource import PunkApiResource
from beer_assets.punkapi.server import FaultPlan, FaultRule
from platform_core.resources import shared_resources
from platform_core.storage import AlreadyExistsError, PlatformStorage

ALL = [*defs.assets, *defs.asset_checks]
RAW = dg.AssetSelection.assets("punkapi_raw_beers")
CLEAN_ONLY = dg.AssetSelection.assets("beers_clean", "punkapi_quarantine")


def resources(storage: PlatformStorage, api_url: str, max_retries: int = 5) -> dict:
    return {
        **shared_resources(storage=storage),
        "punk_api": PunkApiResource(
            base_url=api_url, max_requests_per_hour=0, timeout_s=2, max_retries=max_retries
        ),
    }


def materialize(storage, api_url, selection, run_config=None, max_retries=5):
    with dg.instance_for_test() as instance:
        return dg.materialize(
            ALL,
            selection=selection,
            resources=resources(storage, api_url, max_retries),
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
        )


def step_error(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1
    return failures[0].step_failure_data.error.to_string()


def landings(storage: PlatformStorage) -> dict[str, list[str]]:
    """Files of each landing folder."""
    found: dict[str, list[str]] = {}
    for key in storage.list_keys(RAW_PREFIX):
        folder, name = key.rsplit("/", 1)
        found.setdefault(folder, []).append(name)
    return found


def manifest(storage: PlatformStorage, folder: str) -> dict:
    return json.loads(storage.read_bytes(f"{folder}/manifest.json"))


def clean_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("validated_beers")[0].metadata


def test_successful_crawl_lands_every_page_and_a_complete_manifest(local_storage, punkapi_server):
    result = materialize(local_storage, punkapi_server.url, RAW)
    assert result.success
    [(folder, names)] = landings(local_storage).items()
    assert names == ["manifest.json", *(f"page-{i:04d}.json" for i in range(1, 6))]
    m = manifest(local_storage, folder)
    assert m["complete"] is True and "error" not in m
    assert m["records"] == 325 and m["requests"] == 6  # the terminal empty page is counted
    meta = result.asset_materializations_for_node("punkapi_raw_beers")[0].metadata
    assert meta["pages"].value == 5 and meta["requests"].value == 6


@pytest.mark.parametrize(
    ("fault", "says"),
    [("server_error", "HTTP 500"), ("rate_limit", "HTTP 429"), ("truncated", "invalid JSON")],
)
def test_crawl_failing_on_a_later_page_keeps_the_earlier_pages(
    local_storage, punkapi_server_factory, punkapi_beers, fault, says
):
    """Page 3 fails for good (no retries): pages 1-2 stay landed, the manifest says the landing
    is incomplete and why, the asset fails naming the error, and cleaning uses pages 1-2."""
    server = punkapi_server_factory(FaultPlan(**{fault: FaultRule(every_nth=3)}))
    result = materialize(local_storage, server.url, RAW, max_retries=0)
    assert not result.success
    error = step_error(result)
    assert "PunkApiError" in error and says in error and "page=3" in error
    assert "complete: false" in error  # the note naming the kept landing

    [(folder, names)] = landings(local_storage).items()
    assert names == ["manifest.json", "page-0001.json", "page-0002.json"]
    m = manifest(local_storage, folder)
    assert m["complete"] is False
    assert m["records"] == 160 and m["requests"] == 3
    assert m["error"]["type"] == "PunkApiError" and says in m["error"]["message"]
    assert "page=3" in m["error"]["url"]
    for i, name in enumerate(["page-0001.json", "page-0002.json"]):
        body = local_storage.read_bytes(f"{folder}/{name}")
        assert m["pages"][name] == hashlib.sha256(body).hexdigest()
        assert json.loads(body) == punkapi_beers[80 * i : 80 * (i + 1)]

    # The incomplete landing's pages are real responses: cleaning reads them.
    cleaned = materialize(local_storage, server.url, CLEAN_ONLY)
    assert "beers_clean" in {
        e.asset_key.to_user_string() for e in cleaned.get_asset_materialization_events()
    }
    clean = local_storage.read_parquet("tables/beers_clean.parquet")
    assert sorted(clean["id"]) == [b["id"] for b in punkapi_beers[:160]]
    meta = clean_metadata(cleaned)
    assert meta["landings_incomplete"].value == [folder.rsplit("/", 1)[-1]]
    assert meta["landings_skipped"].value == []


def test_random_poll_failing_midway_keeps_the_earlier_responses(
    local_storage, punkapi_server_factory
):
    server = punkapi_server_factory(FaultPlan(server_error=FaultRule(every_nth=3)))
    config = {"ops": {"punkapi_raw_beers": {"config": {"mode": "random", "count": 5}}}}
    result = materialize(local_storage, server.url, RAW, run_config=config, max_retries=0)
    assert not result.success and "HTTP 500" in step_error(result)
    [(folder, names)] = landings(local_storage).items()
    assert folder.endswith("-random")
    assert names == ["manifest.json", "page-0001.json", "page-0002.json"]
    m = manifest(local_storage, folder)
    assert m["complete"] is False and m["records"] == 2 and m["error"]["status"] == 500


def test_landing_without_manifest_is_not_read(local_storage, punkapi_beers, caplog):
    """A landing whose process died mid-write (pages, no manifest) is skipped, not read as
    complete: neither its beers nor its truncated last page reach the cleaned tables."""
    land(
        local_storage,
        FetchResult(raw_pages=[json.dumps(punkapi_beers[:10]).encode()]),
        mode="crawl",
        run_id="earlier",
        at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    killed = landing_folder("crawl", datetime(2024, 1, 2, tzinfo=UTC))
    local_storage.write_bytes(f"{killed}/page-0001.json", json.dumps(punkapi_beers[10:20]).encode())
    local_storage.write_bytes(f"{killed}/page-0002.json", b'[{"id": 21, "na')

    with caplog.at_level(logging.WARNING):
        pages = list(iter_raw_pages(local_storage))
    assert [(p.landing, p.page) for p in pages] == [
        ("ingested_at=20240101T000000000000Z-crawl", "page-0001.json")
    ]
    assert killed in caplog.text and "no manifest" in caplog.text

    result = materialize(local_storage, "file:///unused", CLEAN_ONLY)
    clean = local_storage.read_parquet("tables/beers_clean.parquet")
    assert sorted(clean["id"]) == list(range(1, 11))
    assert len(local_storage.read_parquet("tables/punkapi_quarantine.parquet")) == 0
    meta = clean_metadata(result)
    assert meta["landings_skipped"].value == [
        "ingested_at=20240102T000000000000Z-crawl: no manifest"
    ]
    assert meta["landings_read"].value == 1


def test_reader_uses_the_pages_a_manifest_lists(local_storage):
    """Old manifests (no ``complete`` field) are complete; a page file the manifest does not
    list is not read; an unreadable manifest makes the landing skipped."""
    old = landing_folder("crawl", datetime(2023, 1, 1, tzinfo=UTC))
    local_storage.write_bytes(f"{old}/page-0001.json", b'[{"id": 1}]')
    local_storage.write_bytes(f"{old}/page-0002.json", b'[{"id": 2}]')
    local_storage.write_bytes(
        f"{old}/manifest.json", json.dumps({"pages": {"page-0001.json": "x"}}).encode()
    )
    bad = landing_folder("random", datetime(2023, 1, 2, tzinfo=UTC))
    local_storage.write_bytes(f"{bad}/page-0001.json", b'[{"id": 3}]')
    local_storage.write_bytes(f"{bad}/manifest.json", b"{not json")

    found = list_landings(local_storage)
    assert [(x.folder, x.status, x.readable) for x in found] == [
        (old, "complete", True),
        (bad, "unreadable manifest", False),
    ]
    assert found[0].unlisted == ("page-0002.json",)
    assert [p.body for p in iter_raw_pages(local_storage)] == [b'[{"id": 1}]']


def test_writer_keeps_pages_and_reraises_when_the_source_fails(local_storage):
    def responses():
        yield FetchResult(raw_pages=[b"[1]"], records=[1], requests=1)
        yield FetchResult(raw_pages=[b"[2]"], records=[2], requests=2, retries=1)
        raise PunkApiError("GET x failed after 3 attempts", url="x", status=503, attempts=3)

    writer = LandingWriter(local_storage, "crawl", "r1", datetime(2024, 5, 1, tzinfo=UTC))
    with pytest.raises(PunkApiError, match="failed after 3 attempts") as raised:
        writer.land_all(responses())
    assert any("complete: false" in note for note in raised.value.__notes__)
    m = manifest(local_storage, writer.folder)
    assert m["complete"] is False and list(m["pages"]) == ["page-0001.json", "page-0002.json"]
    assert m["requests"] == 6 and m["retries"] == 3 and m["error"]["status"] == 503
    assert [x.status for x in list_landings(local_storage)] == ["incomplete"]
    with pytest.raises(RuntimeError, match="already has its manifest"):
        writer.add(FetchResult(raw_pages=[b"[3]"]))


def test_a_second_landing_never_replaces_the_first(local_storage, punkapi_beers):
    """Two ingestions stamped with the same instant (a clock stepped back, two workers) land in
    the same folder: the second is refused before it changes anything, and the first keeps
    its pages and its manifest byte for byte (and is still read as complete)."""
    at = datetime(2024, 3, 1, 12, tzinfo=UTC)
    pages = [json.dumps(punkapi_beers[:80]).encode(), json.dumps(punkapi_beers[80:160]).encode()]
    first = land(
        local_storage,
        FetchResult(raw_pages=pages, records=punkapi_beers[:160], requests=2),
        mode="crawl",
        run_id="first",
        at=at,
    )
    before = {key: local_storage.read_bytes(key) for key in local_storage.list_keys(RAW_PREFIX)}
    assert len(before) == 3  # two pages and the manifest

    later = [json.dumps(punkapi_beers[200:210]).encode()]
    with pytest.raises(AlreadyExistsError):
        land(local_storage, FetchResult(raw_pages=later), mode="crawl", run_id="second", at=at)
    # page by page as a crawl lands them: refused at its first page, manifest untouched too
    writer = LandingWriter(local_storage, "crawl", "third", at)
    assert writer.folder == first.folder
    with pytest.raises(AlreadyExistsError):
        writer.land_all([FetchResult(raw_pages=later, records=punkapi_beers[200:210])])

    after = {key: local_storage.read_bytes(key) for key in local_storage.list_keys(RAW_PREFIX)}
    assert after == before
    [found] = list_landings(local_storage)
    assert (found.folder, found.status) == (first.folder, "complete")
    assert [p.body for p in iter_raw_pages(local_storage)] == pages
