"""Headless Chromium for the page tests: Debian's /usr/bin/chromium, never a downloaded browser.

One launch for every test that drives a page (the prediction service's page, the webserver's
UI), so the binary and its flags are chosen in one place.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
#: Chromium does not start as root (containers) without --no-sandbox; no GPU on test machines.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


@contextmanager
def chromium() -> Iterator["Browser"]:
    """A launched headless browser, closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
