"""The webserver's UI in headless Chromium (Debian's, never a downloaded browser), on the
topology of conftest.py: what a person opening the production deployment sees and does."""

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.browser import chromium
from tests.polling import wait_for
from tests.topology.stack import Topology

pytestmark = [pytest.mark.topology, pytest.mark.slow]

BEER_ASSETS = ["punkapi_raw_beers", "beers_clean", "ibu_model_candidate", "ibu_predictions"]
WINE_ASSETS = ["wine_training_data", "wine_sensor_snapshot", "barrel_quality_predictions"]
GROUPS = ["beer_ingest", "beer_ibu", "wine_quality"]
#: beers_clean's blocking checks: each must show its result once the beer graph has run.
BLOCKING_CHECKS = ["ids_unique_and_present", "values_in_physical_range", "row_count_not_falling"]


@pytest.fixture
def page(topology: Topology) -> Iterator:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        yield page


def open_page(page, url: str) -> None:
    """Go to ``url``; dismiss the first-visit community dialog when it shows."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except Exception:  # playwright's TimeoutError: no dialog this time
        pass


def expanded_global_graph(page, topology: Topology) -> None:
    """The global asset lineage with the groups of both locations open (as "Expand all
    groups" leaves it: the groups are in the URL)."""
    groups = ",".join(f"global@global:{g}" for g in GROUPS)
    open_page(page, f"{topology.webserver_url}/asset-groups?{urlencode({'expanded': groups})}")


def missing_from_graph(page, assets: list[str]) -> list[str]:
    """The assets no node of the graph is labelled with. Zoomed out, the graph shortens long
    names in the middle (``ibu_mod…_candidate``): such a label matches by prefix and suffix."""
    # Nodes are HTML inside the graph's SVG: every line of their text is a candidate label.
    labels = [
        line for text in page.locator("svg foreignObject > *").all_inner_texts()
        for line in text.splitlines()
    ]  # fmt: skip

    def drawn(name: str) -> bool:
        for label in labels:
            head, cut, tail = label.strip().partition("…")
            if label.strip() == name or (cut and name.startswith(head) and name.endswith(tail)):
                return True
        return False

    return [a for a in assets if not drawn(a)]


def drawn_within(page, assets: list[str], artifacts: Path, timeout_s: float = 30.0) -> list[str]:
    """Wait until the graph draws every one of ``assets``; those still missing after that."""
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not missing_from_graph(page, assets), timeout_s, "assets drawn")
    missing = missing_from_graph(page, assets)
    if missing:
        page.screenshot(path=str(artifacts / "asset-graph-missing.png"), full_page=True)
        (artifacts / "asset-graph-missing.html").write_text(page.content())
    return missing


def check_status(page, name: str) -> str:
    """The status shown next to a check in the asset's Checks tab."""
    text = page.inner_text("body")
    found = re.search(rf"{name}\n{name}\n([^\n]+)", text)
    return found.group(1) if found else ""


def test_ui_graph_materialize_all_on_beer_and_check_results(page, topology):
    # Both code locations' assets are in the global asset graph.
    expanded_global_graph(page, topology)
    assert drawn_within(page, BEER_ASSETS + WINE_ASSETS, topology.artifacts) == [], page.locator(
        "svg foreignObject > *"
    ).all_inner_texts()

    # "Materialize all" on the beer graph (the full-crawl job) ends in success.
    open_page(page, f"{topology.webserver_url}/locations/beer/jobs/punkapi_full_crawl")
    page.get_by_role("button", name="Materialize all").click()
    page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).wait_for()
    page.get_by_role("link", name="View").first.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
    assert topology.wait_run(run_id, timeout_s=240) == "SUCCESS"
    page.get_by_text("Success", exact=True).first.wait_for()

    # The asset checks' results are shown on the cleaned table.
    open_page(page, f"{topology.webserver_url}/assets/beers_clean?view=checks")
    page.get_by_text(BLOCKING_CHECKS[0], exact=True).first.wait_for()
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: all(check_status(page, n) == "Succeeded" for n in BLOCKING_CHECKS), 30, "")
    statuses = {name: check_status(page, name) for name in BLOCKING_CHECKS}
    assert statuses == dict.fromkeys(BLOCKING_CHECKS, "Succeeded"), statuses

    # The graph with its fresh statuses, kept for people to look at.
    expanded_global_graph(page, topology)
    assert drawn_within(page, BEER_ASSETS, topology.artifacts) == []
    page.wait_for_timeout(1500)  # statuses render after the layout
    shot = topology.artifacts / "asset-graph.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
