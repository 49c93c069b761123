"""The control room of a city of 100,000 devices, in headless Debian Chromium against the live API: the map
draws one marker per district (its device count, coloured by its worst, focusable with a label in the
page's language) instead of 100,000 points, and the devices of a district once the operator opens it
with the keyboard; the silent list shows the longest silent and how many there are. Each step within a
bound measured on this shared machine."""

import re
import time
from collections import Counter

import pytest
from playwright.sync_api import expect

from tests.api.browser import chromium
from tests.api.fleet_seed import seed_fleet
from tests.api.harness import KEY_NAMES
from tests.helpers.screenshots import SCREENSHOTS

DEVICES = 100_000
ALERTS = 300
BOARD_READY_S = 30  # navigation -> district markers; measured 1-3 s on the shared machine
DISTRICT_OPEN_S = 60  # Enter on a district -> its devices (25,000 here) on the map


@pytest.fixture
def api(make_api):
    # hundreds of alarms seeded at once, as a city that groups none (grouping and flood: test_control_room_alarms.py)
    return make_api(api_alarm_group_window_s=0, api_alarm_flood_count=1_000_000)


def test_a_city_of_100000_devices_is_drawn_by_district_and_one_district_opens(api):
    plan = seed_fleet(api, DEVICES, ALERTS, silent_every=10)
    per_district = Counter(spec["district"] for spec in plan)
    critical = {spec["district"] for n, spec in enumerate(plan[:ALERTS]) if n % 3 == 0}
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        started = time.monotonic()
        page.goto(api.url + "/control-room")
        page.fill("#key", api.keys["operator"])
        page.click("#login button")
        expect(page.locator("#who")).to_contain_text(KEY_NAMES["operator"])
        page.wait_for_function("() => window.controlRoom && controlRoom.aggregated()"
                               " && controlRoom.districtMarkers().length > 0", timeout=BOARD_READY_S * 1000)
        expect(page.locator("li.alert")).to_have_count(ALERTS, timeout=BOARD_READY_S * 1000)
        ready_s = time.monotonic() - started
        shown = {m["district"]: m for m in page.evaluate("controlRoom.districtMarkers()")}
        assert {slug: m["devices"] for slug, m in shown.items()} == dict(per_district)
        assert page.evaluate("controlRoom.devicesOnMap()") == 0  # no device drawn until a district is opened
        for slug, marker in shown.items():
            assert marker["look"] == ("critical" if slug in critical else "silent")
        expect(page.locator("#map-count")).to_contain_text("100,000 devices in 4 districts")
        # each district a focusable button with a label that says what it holds
        slug, n = per_district.most_common(1)[0]
        button = page.locator(f'.district-count[data-district="{slug}"]')
        expect(button).to_have_text(f"{n:,}")
        assert button.get_attribute("role") == "button" and button.get_attribute("tabindex") == "0"
        label = button.get_attribute("aria-label")
        assert f"{n:,} devices" in label and "open alerts" in label and "Open to show its devices" in label
        silent_total = sum(1 for i in range(DEVICES) if i % 10 == 1)
        expect(page.locator("#n-silent")).to_have_text(f"{silent_total:,}")
        expect(page.locator("#silent li")).to_have_count(500)
        expect(page.locator("#silent-shown")).to_have_text(f"The 500 longest silent of {silent_total:,}")
        page.screenshot(path=str(SCREENSHOTS / "control-room-100k-districts.png"))

        opened = time.monotonic()
        button.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("(want) => controlRoom.openDistrict() === want[0]"
                               " && controlRoom.devicesOnMap() === want[1]", arg=[slug, n],
                               timeout=DISTRICT_OPEN_S * 1000)
        open_s = time.monotonic() - opened
        inside = next(s for i, s in enumerate(plan) if s["district"] == slug and i % 10 not in (0, 1) and i >= ALERTS)
        assert page.evaluate(f"controlRoom.deviceLook('{inside['id']}')") == "ok"
        assert page.evaluate(f"controlRoom.deviceLook('{plan[1]['id']}')") in (None, "silent")
        expect(page.locator("#map-back")).to_be_visible()
        assert page.locator(f'.district-count[data-district="{slug}"]').count() == 0  # its devices instead
        assert page.locator(".district-count").count() == len(per_district) - 1  # the others stay to open
        page.screenshot(path=str(SCREENSHOTS / "control-room-100k-district-open.png"))

        page.select_option("#lang", "id")
        page.wait_for_function("() => document.documentElement.lang === 'id'")
        expect(page.locator("#map-back")).to_have_text("Seluruh kota")
        other = page.locator(".district-count").first
        expect(other).to_have_attribute("aria-label", re.compile(r"perangkat, .* senyap, .*Buka untuk menampilkan"))
        page.click("#map-back")
        page.wait_for_function("() => controlRoom.openDistrict() === null && controlRoom.devicesOnMap() === 0"
                               " && controlRoom.districtMarkers().length === 4")
        # zooming in twice on a district (double clicks on its point) opens it too
        time.sleep(0.8)  # the whole city's fit, animated
        box = page.locator(f'.district-count[data-district="{slug}"]').bounding_box()
        for _ in range(4):  # two steps in are enough; a double click the page was not ready for is tried again
            page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] - 12)  # the point the marker hangs under
            time.sleep(0.8)  # the zoom's animation
            if page.evaluate("controlRoom.openDistrict()"):
                break
        zoom = page.evaluate("controlRoom.zoom()")
        assert zoom["zoom"] >= zoom["city"] + 2
        page.wait_for_function("(want) => controlRoom.openDistrict() === want[0]"
                               " && controlRoom.devicesOnMap() === want[1]", arg=[slug, n],
                               timeout=DISTRICT_OPEN_S * 1000)
    print(f"\n100,000 devices: board ready in {ready_s:.1f} s, a district of {n:,} opened in {open_s:.1f} s")
    assert ready_s < BOARD_READY_S and open_s < DISTRICT_OPEN_S
