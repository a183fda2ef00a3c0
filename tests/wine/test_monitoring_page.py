"""The service's pages in headless Chromium (Debian's, never a downloaded browser): the wine
form, the API docs and a drift report, the last two with the network cut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium
from tests.wine.wine_service import WINE, copy_storage, running_service
from wine_assets.monitoring.prediction_log import open_log

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_a_person_types_a_wine_and_sees_its_quality_and_verdict(
    browser, champion_storage, tmp_path
):
    log_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with running_service(champion_storage, log_dsn) as url:
        page = browser.new_page()
        page.goto(f"{url}/")
        # the form starts from the first UCI red wine; type a stronger, fresher white
        page.select_option("#wine_type", "white")
        page.fill("#alcohol", "12.8")
        page.fill("#volatile_acidity", "0.25")
        page.click("#predict")
        page.wait_for_selector("#verdict")
        quality = float(page.inner_text("#quality"))
        verdict = page.inner_text("#verdict")
        assert 0 <= quality <= 10
        assert verdict == ("good" if quality >= 6 else "not good")
        # beside it: the chance it is good and the 90 % range, around the score
        assert 0 <= int(page.inner_text("#p-good").removesuffix(" %")) <= 100
        low, high = (float(b) for b in page.inner_text("#interval").split("–"))
        assert low <= round(quality, 1) <= high
        # a value outside its physical range: the page names the field, nothing is scored
        page.fill("#ph", "9")
        page.click("#predict")
        page.wait_for_function(
            "document.getElementById('err-ph').textContent.includes('less than or equal to 5')"
        )
        assert "correct" in page.inner_text("#result")
        assert page.inner_text("#err-alcohol") == ""
        page.close()
    with open_log(log_dsn) as log:
        rows = log.window(*EVER)
    assert len(rows) == 1  # only the valid wine was answered and logged
    (row,) = rows.itertuples()
    assert (row.wine_type, row.alcohol, row.volatile_acidity) == ("white", 12.8, 0.25)
    assert row.ph == WINE["ph"] and round(row.predicted_quality, 2) == quality


@contextmanager
def offline(page: Page) -> Iterator[list[str]]:
    """Every request leaving the machine is refused (as without internet) and recorded."""
    refused: list[str] = []

    def route(request_route) -> None:
        host = urlsplit(request_route.request.url).hostname or ""
        if request_route.request.url.startswith(("http:", "https:")) and host != "127.0.0.1":
            refused.append(request_route.request.url)
            request_route.abort()
        else:
            request_route.continue_()

    page.route("**/*", route)
    yield refused


def test_api_docs_render_without_internet(browser, champion_storage, tmp_path):
    """/docs opened blank without internet (Swagger UI from a CDN): it lists the endpoints."""
    with running_service(champion_storage, f"sqlite:///{tmp_path / 'log.db'}") as url:
        page = browser.new_page()
        with offline(page) as refused:
            page.goto(f"{url}/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
        page.close()
    assert {"/predict", "/batch", "/health"} <= {p.replace("\u200b", "") for p in paths}
    assert refused == []


@pytest.mark.slow
def test_drift_report_opens_without_internet_from_the_reports_page(
    browser, champion_storage, tmp_path
):
    """A drift report, reached as a person would (wine-api's /reports, the link the Dagster
    UI shows), draws its figures with the network cut: it opened blank (CDN scripts)."""
    import pandas as pd

    from platform_core.model_store import ModelStoreResource
    from wine_assets.monitoring.assets import report_folder
    from wine_assets.monitoring.drift import compare, drift_frame
    from wine_assets.monitoring.send_batch import make_batch
    from wine_assets.quality import model as wine_model

    storage = copy_storage(champion_storage, tmp_path / "storage")
    _, files = ModelStoreResource(storage=storage).champion_files("wine_quality")
    result = compare(
        drift_frame(pd.DataFrame(make_batch("normal", 200, seed=3))),
        drift_frame(storage.read_parquet("tables/wine_training_data.parquet")),
        wine_model.from_files(files),
    )
    folder = report_folder(datetime(2026, 3, 4, 10, tzinfo=UTC), "1-200")
    storage.write_bytes(f"{folder}/report.html", result.report_html)
    summary = {"partition": "2026-03-04-10:00", "positions": "1-200", "rows": 200,
               "drift_auc": result.auc}  # fmt: skip
    storage.write_bytes(f"{folder}/summary.json", json.dumps(summary).encode())
    with running_service(storage, f"sqlite:///{tmp_path / 'log.db'}") as url:
        page = browser.new_page()
        with offline(page) as refused:
            page.goto(f"{url}/reports")
            page.click("a[href^='/reports/']")
            page.wait_for_url(f"{url}/reports/2026-03-04T1000Z/1-200")
            # Panel draws into shadow roots; Playwright's CSS selectors pierce them
            page.get_by_text("Wine prediction drift").first.wait_for(timeout=60_000)
            title = page.locator("h1").all_inner_texts()
            # the figures are in the other tabs: plotly.js has drawn them (an SVG on screen)
            page.get_by_text("Data drift", exact=True).first.click()
            page.locator(".js-plotly-plot .main-svg >> visible=true").first.wait_for()
            plots = page.locator(".js-plotly-plot .main-svg >> visible=true").count()
        page.close()
    assert refused == [] and plots >= 2
    assert "Wine prediction drift" in [t.strip() for t in title]
