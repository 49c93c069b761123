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


def test_an_earlier_weeks_answer_that_comes_late_does_not_replace_the_week_asked_for(report_page):
    """Signing in loads last week's report; a week typed meanwhile is loaded too. When last week's answer came
    after it, it replaced the table asked for (and the CSV button focused on it), as in a CI run where Enter on the
    button then downloaded nothing. Last week's request is held here until the week asked for is shown."""
    api, net, data, page = report_page
    held = []

    def hold_the_first(route):
        if not held:
            held.append(route)  # answered below, after the week asked for
            return
        route.continue_()

    page.route("**/reports/weekly?*", hold_the_first)
    page.goto(api.url + "/control-room/report")
    page.locator("#key").fill(api.keys["engineer"])
    page.locator("#key").press("Enter")
    expect(page.locator("#report-status")).to_be_visible()
    for _ in range(100):  # the sign-in's request reaches the route
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1 and "2026-W02" not in held[0].request.url
    page.locator("#week").fill("2026-W02")
    page.locator("#week").press("Enter")
    table = page.locator("#section-water table")
    expect(table.locator("tbody tr")).to_have_count(3, timeout=30_000)
    with page.expect_response(lambda response: response.request == held[0].request):
        held[0].continue_()
    page.wait_for_timeout(500)  # its body read and handled: it used to be rendered here
    expect(page.locator("#report-status")).to_contain_text("2026-W02")
    expect(table.locator("tbody tr")).to_have_count(3)
    with page.expect_download() as download:
        page.locator("#section-water button").focus()
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "report-2026-W02-water.csv"
