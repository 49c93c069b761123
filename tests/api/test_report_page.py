"""The weekly report page in headless Debian Chromium against the live API with a simulated water network
in a real influxd: signed in by keyboard, the water section's table lists the DMAs leakiest first, the CSV
button downloads that section, and the page speaks Indonesian when asked."""

import datetime as dt

import pytest
from fleetsim import waternet
from playwright.sync_api import expect

from telemetry_shared.settings import get_settings
from tests.api.browser import chromium
from tests.cli.test_water_balance_cli import store


@pytest.fixture
def report_page(make_api, shared_influxd, influx_db):
    api = make_api()
    offset = get_settings().utc_offset_hours or 0
    start = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=offset))).timestamp() * 1000)
    net = waternet.plan(3, 60, 8, seed=4, start_ms=start, utc_offset_h=offset)
    data = store(net, api.services.registry, shared_influxd.url, influx_db.db, days=8)
    with chromium() as browser:
        yield api, net, data, browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)


def test_the_report_by_keyboard_with_its_csv_in_both_languages(report_page):
    api, net, data, page = report_page
    page.goto(api.url + "/control-room/report")
    page.locator("#key").fill(api.keys["engineer"])
    page.locator("#key").press("Enter")
    page.locator("#week").fill("2026-W02")
    page.locator("#week").press("Enter")
    table = page.locator("#section-water table")
    expect(table).to_be_visible(timeout=30_000)
    leakiest = net.dma_ids[int(data.truth_leak_lps[:, : 7 * 96].mean(axis=1).argmax())]
    expect(table.locator("tbody tr").first).to_contain_text(leakiest)
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.locator("#section-water h2")).to_contain_text("Water balance per district meter area")
    with page.expect_download() as download:
        page.locator("#section-water button").focus()
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "report-2026-W02-water.csv"
    page.select_option("#lang", "id")
    expect(page.locator("#section-water h2")).to_contain_text("Neraca air per zona meter distrik")
    expect(table.locator("thead")).to_contain_text("kehilangan fisik m3")
