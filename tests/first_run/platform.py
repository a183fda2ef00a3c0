"""A fresh machine's first ``make dev``, driven and observed from outside.

Starts ``platform-dev`` (what ``make dev`` runs) with empty ``PLATFORM_HOME`` and
``DAGSTER_HOME`` and no ``PLATFORM_DATA_DIR`` (only the shipped wine files, the generated drop
month and the Punk API dump that ``make data`` fetched into ``./data``), then reads what the
platform did through Dagster's GraphQL API and the stores. Shared by the first-run test and
``benchmarks/first_run.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from platform_core.dev import alive, descendants
from platform_core.registry import ModelRegistry
from platform_core.settings import PROJECT_ROOT
from platform_core.storage import PlatformStorage
from tests.graphql import graphql
from wine_assets.readings.store import open_store

PUNK_DUMP = PROJECT_ROOT / "data" / "punkapi" / "beers.json"
#: The days of the generated drop month (wine_assets.profiles.generate).
SYNTHETIC_DAYS = 29
#: Checks whose WARN is documented in the README (the Punk API dump really has 13 beers with
#: swapped gravities and one pH of 79).
DOCUMENTED_WARNINGS = {("beers_clean", "values_plausible")}

ASSET = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  __typename ... on AssetNode {
    assetMaterializations(limit: 200) { runId partition timestamp }
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status evaluation { severity } } } } } } } }"""
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"


@dataclass
class RunningPlatform:
    """The launcher's process and where its pieces are."""

    proc: subprocess.Popen
    home: Path
    ui_url: str
    api_url: str
    env: dict[str, str]
    started: float
    seen: set[int] = field(default_factory=set)

    @property
    def platform_home(self) -> Path:
        return self.home / "platform"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.ui_url, query, variables)

    def asset(self, name: str) -> dict:
        """An asset's materializations and its checks' latest results."""
        node = self.graphql(ASSET, {"key": {"path": [name]}})["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise RuntimeError(f"{name}: {node['__typename']}")
        return node

    def materialized(self, name: str) -> list[dict]:
        return self.asset(name)["assetMaterializations"]

    def asset_names(self) -> list[str]:
        return ["/".join(n["assetKey"]["path"]) for n in self.graphql(ASSET_KEYS)["assetNodes"]]

    def checks(self, name: str) -> dict[str, tuple[str | None, str | None]]:
        """``check name → (status, severity)`` of each check's latest execution."""
        out = {}
        for check in self.asset(name)["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            if execution is None:
                out[check["name"]] = (None, None)
            else:
                evaluation = execution["evaluation"] or {}
                out[check["name"]] = (execution["status"], evaluation.get("severity"))
        return out

    def registry(self, model: str) -> ModelRegistry:
        storage = PlatformStorage.local(str(self.platform_home / "storage"))
        return ModelRegistry(storage, model)

    def readings_url(self) -> str:
        return f"sqlite:///{self.platform_home / 'readings.db'}"

    def watch(self) -> None:
        """Remember every process below the launcher (for the leftovers count)."""
        self.seen |= descendants(self.proc.pid)


def wait_until(
    check: Callable[[], object], timeout_s: float, what: str, poll_s: float = 2.0, on_poll=None
) -> object:
    """``check()`` once truthy; fails naming ``what`` and the last error after ``timeout_s``."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if on_poll is not None:
            on_poll()
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the service may not be up yet
            last = exc
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what} (last error: {last})")


def fresh_env(home: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: no platform variables, empty homes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLATFORM_", "DAGSTER_", "WINE_", "PROFILES_", "PREDICTION_"))
        and not k.startswith("AWS_")
        and k not in {"PUNK_API_URL", "MODEL_APPROVAL", "SIMULATE"}
    }
    env["PLATFORM_HOME"] = str(home / "platform")
    env["DAGSTER_HOME"] = str(home / "dagster")
    return env


@contextmanager
def running_platform(
    home: Path, ui_port: int, api_port: int, log: Path
) -> Iterator[RunningPlatform]:
    """``platform-dev`` started as ``make dev`` starts it; stopped with SIGINT (Ctrl-C) when the
    block ends."""
    if not PUNK_DUMP.is_file():
        raise FileNotFoundError(f"{PUNK_DUMP} is missing: `make data` fetches it (npm)")
    env = fresh_env(home)
    exe = str(Path(sys.executable).with_name("platform-dev"))
    argv = [exe, "--port", str(ui_port), "--api-port", str(api_port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=out)
        platform = RunningPlatform(
            proc,
            home,
            f"http://127.0.0.1:{ui_port}",
            f"http://127.0.0.1:{api_port}",
            env,
            time.monotonic(),
        )
        try:
            yield platform
        finally:
            stop(platform)


def stop(platform: RunningPlatform, timeout_s: float = 60.0) -> int:
    """Ctrl-C the launcher and wait for it; how many processes it ever had are still alive."""
    platform.watch()
    if platform.proc.poll() is None:
        platform.proc.send_signal(signal.SIGINT)
        try:
            platform.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            platform.proc.kill()
            platform.proc.wait()
    return len(leftovers(platform))


def leftovers(platform: RunningPlatform) -> set[int]:
    """The processes the launcher ever had that are still alive."""
    return {pid for pid in platform.seen if alive(pid)}


def ui_up(platform: RunningPlatform) -> bool:
    """Both code locations loaded in the webserver."""
    data = platform.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name "
        "locationOrLoadError { __typename } } } } }"
    )
    entries = data["workspaceOrError"]["locationEntries"]
    loaded = {
        e["name"]
        for e in entries
        if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
    }
    return loaded == {"beer", "wine"}


def send_normal_batch(platform: RunningPlatform) -> subprocess.CompletedProcess:
    """``wine-send-batch normal`` once, as the README's walkthrough says."""
    exe = str(Path(sys.executable).with_name("wine-send-batch"))
    return subprocess.run(
        [exe, "normal", "--url", platform.api_url],
        env=platform.env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def scored_after_champion(platform: RunningPlatform, seq_at_champion: int) -> bool:
    """A prediction is stored for a reading written after the champion appeared."""
    with open_store(platform.readings_url()) as store:
        return any(p.reading_seq > seq_at_champion for p in store.predictions())


def max_seq(platform: RunningPlatform) -> int:
    with open_store(platform.readings_url()) as store:
        return store.max_seq()


GROUPS = ("beer_ingest", "beer_ibu", "wine_quality", "wine_monitoring", "sensor_profiles")


def _graph_label(page, text: str) -> dict | None:
    """The bounding box of ``text`` drawn in the graph (not the sidebar's tree)."""
    labels = page.get_by_text(text, exact=True)
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    sidebar = page.get_by_placeholder("Jump to…").bounding_box()
    right_of = (sidebar["x"] + sidebar["width"]) if sidebar else 0
    return next((b for b in boxes if b and b["width"] and b["x"] > right_of), None)


def screenshot_lineage(page, ui_url: str, path: Path) -> list[str]:
    """The global asset lineage with the groups opened, zoomed out to fit, saved as PNG.

    Opening a group is best effort: once the graph is zoomed out, the UI may draw a group's
    label too small to find, and a picture for the README is not a promise of the product.
    Returns the groups it opened.
    """
    page.goto(f"{ui_url}/asset-groups", wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # the first visit's newsletter dialog
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except Exception:  # noqa: BLE001 - shown once per instance only
        pass
    zoom_out = page.locator("button:has([aria-label=zoom_out])")
    opened: list[str] = []
    for group in GROUPS:
        try:
            box = wait_until(lambda g=group: _graph_label(page, g), 15, f"group {group}", 0.5)
        except TimeoutError:
            continue
        page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        time.sleep(0.5)
        zoom_out.click()  # the opened group is larger: keep the others in view
        time.sleep(0.3)
        opened.append(group)
    time.sleep(1)
    page.screenshot(path=str(path))
    return opened


def profiled_days(platform: RunningPlatform) -> set[str]:
    return {m["partition"] for m in platform.materialized("sensor_profile_assignments")}


def bring_up(platform: RunningPlatform, timeout_s: float = 600.0) -> dict[str, float]:
    """Wait for every domain's outputs, taking the walkthrough's one action (one normal batch)
    as soon as a wine champion serves; seconds from Dagster up to each output.

    Outputs: beers_clean and ibu_predictions materialized (beer), a wine champion registered,
    a barrel reading written after it scored, profile assignments for every generated day,
    a drift report materialized after the batch was sent.
    """
    wait_until(lambda: ui_up(platform), 300, "both code locations", on_poll=platform.watch)
    up = time.monotonic()
    seconds: dict[str, float] = {"dagster_up": up - platform.started}
    state: dict = {}

    def beer() -> bool:
        return all(platform.materialized(a) for a in ("beers_clean", "ibu_predictions"))

    def champion() -> bool:
        if platform.registry("wine_quality").champion() is None:
            return False
        state["seq_at_champion"] = max_seq(platform)
        sent = send_normal_batch(platform)
        state["drift_partitions"] = set(json.loads(sent.stdout)["drift_partitions"])
        return True

    def scored() -> bool:
        return "seq_at_champion" in state and scored_after_champion(
            platform, state["seq_at_champion"]
        )

    def profiles() -> bool:
        return len(profiled_days(platform)) >= SYNTHETIC_DAYS

    def drift() -> bool:
        """The batch's hour has a report and its checks have finished (they run after it)."""
        if "drift_partitions" not in state:
            return False
        reported = {m["partition"] for m in platform.materialized("wine_drift_report")}
        checks = platform.checks("wine_drift_report")
        return state["drift_partitions"] <= reported and all(
            status not in (None, "IN_PROGRESS") for status, _ in checks.values()
        )

    waiting = {
        "beer": beer,
        "wine_champion": champion,
        "barrels_scored": scored,
        "profiles": profiles,
        "drift_report": drift,
    }
    deadline = up + timeout_s
    while waiting and time.monotonic() < deadline:
        platform.watch()
        for name, ready in list(waiting.items()):
            if ready():
                seconds[name] = time.monotonic() - up
                del waiting[name]
        time.sleep(2.0)
    if waiting:
        raise TimeoutError(f"after {timeout_s:g}s still waiting for {sorted(waiting)}")
    seconds["all_domains"] = max(v for k, v in seconds.items() if k != "dagster_up")
    return seconds
