"""The UI's path to a champion: runs launched through a real ``dagster-webserver``'s GraphQL API
(``launchRun`` on an asset selection with run config, what the Launchpad sends) promote,
approve and roll back the IBU model under MODEL_APPROVAL=manual, and the predictions follow
the champion each time; the lineage reads candidate → champion → predictions."""

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beer_assets.ibu.assets import CANDIDATE, CHAMPION, train_run_config
from beer_assets.ingest.landing import land
from beer_assets.punkapi.client import FetchResult
from platform_core.champion import champion_run_config
from platform_core.registry import ModelRegistry, Status
from platform_core.storage import PlatformStorage
from tests.conftest import free_port, wait_http
from tests.graphql import graphql
from tests.polling import wait_for
from tests.processes import running

BIN = Path(sys.executable).parent
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message } } }"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
LATEST = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  dependencyKeys { path }
  assetMaterializations(limit: 1) { runId metadataEntries { label
    ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } } } } } }"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
INGEST = ["beers_clean", "punkapi_quarantine"]
TRAIN_AND_SCORE = [*INGEST, CANDIDATE.path[-1], CHAMPION.path[-1], "ibu_predictions"]
DECIDE_AND_SCORE = [CHAMPION.path[-1], "ibu_predictions"]


@dataclass
class Webserver:
    url: str
    location: str
    storage: PlatformStorage

    def launch(self, assets: list[str], run_config: dict | None = None) -> str:
        """A run of ``assets`` (their checks included), as the Launchpad submits it; its
        final status."""
        params = {
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [a]} for a in assets],
            },
            "runConfigData": run_config or {},
            "mode": "default",
        }
        answer = graphql(self.url, LAUNCH, {"params": params})["launchRun"]
        assert answer["__typename"] == "LaunchRunSuccess", answer
        run_id = answer["run"]["runId"]
        return wait_for(
            lambda: graphql(self.url, RUN, {"id": run_id})["runOrError"]["status"],
            240,
            f"run {run_id} of {assets}",
            until=lambda status: status in {"SUCCESS", "FAILURE", "CANCELED"},
        )

    def latest(self, asset: str) -> tuple[list[str], dict]:
        """The asset's parents and its newest materialization's metadata."""
        node = graphql(self.url, LATEST, {"key": {"path": [asset]}})["assetNodeOrError"]
        [event] = node["assetMaterializations"] or [{"metadataEntries": []}]
        meta = {e["label"]: e.get("intValue", e.get("text")) for e in event["metadataEntries"]}
        return ["/".join(k["path"]) for k in node["dependencyKeys"]], meta

    def served(self) -> set[int]:
        """The model versions in the stored predictions."""
        table = self.storage.read_parquet("tables/ibu_predictions.parquet")
        return set(table["model_version"])


def plant_landing(storage: PlatformStorage, beers: list[dict], at: datetime) -> None:
    land(
        storage,
        FetchResult(raw_pages=[json.dumps(beers).encode()]),
        mode="crawl",
        run_id="x",
        at=at,
    )


@pytest.fixture
def webserver(tmp_path, punkapi_server) -> Iterator[Webserver]:
    """``dagster-webserver`` on the beer location, a fresh instance (runs launched directly,
    no daemon) and storage, MODEL_APPROVAL=manual."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PLATFORM_"))},
        "DAGSTER_HOME": str(home),
        "PLATFORM_STORAGE_ROOT": str(tmp_path / "storage"),
        "PLATFORM_DATA_DIR": os.environ.get("PLATFORM_DATA_DIR", ""),
        "MODEL_APPROVAL": "manual",
        "PUNK_API_URL": punkapi_server.url,
    }
    port = free_port()
    cmd = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    with running([*cmd, "-m", "beer_assets.definitions"], env, tmp_path / "webserver.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/server_info", 180)
        locations = wait_for(
            lambda: graphql(url, LOCATIONS)["workspaceOrError"]["locationEntries"],
            180,
            "the beer location",
        )
        yield Webserver(url, locations[0]["name"], PlatformStorage.local(str(tmp_path / "storage")))


def test_promote_approve_and_roll_back_through_the_ui_path(webserver, punkapi_beers):
    ui, storage = webserver, webserver.storage
    registry = ModelRegistry(storage, "beer_ibu")
    fast = train_run_config(1)

    # The lineage: candidate → champion → predictions.
    assert ui.latest(CHAMPION.path[-1])[0] == [CANDIDATE.path[-1]]
    assert CHAMPION.path[-1] in ui.latest("ibu_predictions")[0]

    # 1. 300 beers: v1 is trained, passes its gate and waits for approval (manual); the
    #    predictions have no champion to score with.
    plant_landing(storage, punkapi_beers[:300], datetime(2024, 1, 1, tzinfo=UTC))
    assert ui.launch(TRAIN_AND_SCORE, fast) == "FAILURE"
    _, decision = ui.latest(CHAMPION.path[-1])
    assert (decision["decision"], decision["champion_version"]) == ("pending_approval", "none")
    assert registry.get(1).status == Status.PENDING_APPROVAL

    # 2. A person approves v1 from the Launchpad: champion and predictions in one run.
    assert ui.launch(DECIDE_AND_SCORE, champion_run_config(CHAMPION, 1, "ana")) == "SUCCESS"
    _, decision = ui.latest(CHAMPION.path[-1])
    assert (decision["decision"], decision["approver"], decision["champion_version"]) == (
        "approved",
        "ana",
        1,
    )
    assert ui.served() == {1}

    # 3. All 325 beers: v2 (same recipe, more rows) qualifies and waits; v1 still serves.
    plant_landing(storage, punkapi_beers, datetime(2024, 2, 1, tzinfo=UTC))
    assert ui.launch(TRAIN_AND_SCORE, fast) == "SUCCESS"
    _, decision = ui.latest(CHAMPION.path[-1])
    assert (decision["decision"], decision["decided_version"]) == ("pending_approval", 2)
    assert decision["champion_version"] == 1
    assert ui.served() == {1}

    # 4. Approved: the predictions follow v2.
    assert ui.launch(DECIDE_AND_SCORE, champion_run_config(CHAMPION, 2, "ben")) == "SUCCESS"
    assert ui.served() == {2}
    assert (registry.get(1).status, registry.get(2).status) == (Status.RETIRED, Status.CHAMPION)

    # 5. Rolled back to v1, the same action: the predictions follow v1 again.
    assert ui.launch(DECIDE_AND_SCORE, champion_run_config(CHAMPION, 1, "cy")) == "SUCCESS"
    _, decision = ui.latest(CHAMPION.path[-1])
    assert (decision["decision"], decision["approver"], decision["previous_champion"]) == (
        "rolled_back",
        "cy",
        2,
    )
    assert ui.served() == {1}
    assert registry.champion().version == 1
    _, scored = ui.latest("ibu_predictions")
    assert scored["model_version"] == 1
