"""The service's page in headless Chromium (Debian's, never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from tests.browser import chromium
from tests.wine.wine_service import WINE, running_service
from wine_assets.monitoring.prediction_log import open_log

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
        # a value outside its physical range: the page names the field, nothing is scored
        page.fill("#ph", "9")
        page.click("#predict")
        page.wait_for_function(
            "document.getElementById('err-ph').textContent.includes('physical bounds')"
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
