"""A phone-sized headless Debian Chromium for the citizens' pages (390 x 844, touch, Indonesian)."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.api.browser import chromium

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "locale": "id-ID"}


@pytest.fixture
def phone() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_context(**PHONE).new_page()


def fits_the_screen(page: Page) -> bool:
    """Nothing wider than the phone: no sideways scrolling."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
