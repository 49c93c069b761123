"""Headless Debian Chromium for the page tests (the control room's desk-sized page, the citizens' phone)."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium() -> Iterator[Browser]:
    """The browser, closed afterwards; a missing Chromium fails the test with what to install."""
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian chromium is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()
