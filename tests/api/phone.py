"""A phone-sized headless Debian Chromium for the citizens' pages (390 x 844, touch, Indonesian)."""

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.api.test_control_room import CHROMIUM

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "locale": "id-ID"}


@pytest.fixture
def phone() -> Iterator[Page]:
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian chromium is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            context = browser.new_context(**PHONE)
            yield context.new_page()
        finally:
            browser.close()


def fits_the_screen(page: Page) -> bool:
    """Nothing wider than the phone: no sideways scrolling."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
