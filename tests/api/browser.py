"""Headless Debian Chromium for the page tests (the control room's desk-sized page, the citizens' phone).

Every page opened in it is watched for Content-Security-Policy violations (Chromium logs each as a console
error naming the "Content Security Policy" directive): a test whose
page broke the API's CSP (api/security_headers.py) fails. Under that CSP (no eval) wait_for_function needs a
function ("() => ..."), not an expression: Playwright evaluates an expression again at each poll."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

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
        violations = _watch_csp(browser)
        try:
            yield browser
        finally:
            browser.close()
        if violations:
            pytest.fail("the page broke its Content-Security-Policy:\n" + "\n".join(violations), pytrace=False)


def _watch_csp(browser: Browser) -> list[str]:
    """The CSP violations of every page opened through browser.new_page or browser.new_context."""
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(message.text)

    new_context, new_page = browser.new_context, browser.new_page

    def watched_context(**kwargs) -> BrowserContext:
        context = new_context(**kwargs)
        context.on("console", note)
        return context

    def watched_page(**kwargs) -> Page:
        page = new_page(**kwargs)
        page.on("console", note)
        return page

    browser.new_context, browser.new_page = watched_context, watched_page
    return violations
