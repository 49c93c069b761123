"""The control-room page in headless Debian Chromium, against the live API:
an alert published over MQTT shows on the board within 2 s, and an
acknowledgement made on the page is stored with its author."""

import time

import pytest
from playwright.sync_api import expect

from tests.api.browser import chromium
from tests.api.harness import KEY_NAMES, alert, wait_for


@pytest.fixture
def page(api):
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1920, "height": 1080})


def sign_in(page, api, role="operator"):
    page.goto(api.url + "/control-room")
    page.fill("#key", api.keys[role])
    page.click("#login button")
    expect(page.locator("#link")).to_have_text("live", timeout=5000)
    expect(page.locator("#who")).to_contain_text(KEY_NAMES[role])


def test_alert_over_mqtt_shows_within_2s_and_ack_on_page_is_stored(page, api, analytics):
    sign_in(page, api)
    published = time.monotonic()
    analytics.publish(alert("inc-live", severity="critical"))
    card = page.locator('li.alert[data-alert-id="inc-live"]')
    expect(card).to_be_visible(timeout=2000)
    shown_after_s = time.monotonic() - published
    assert shown_after_s < 2.0
    assert "critical" in card.get_attribute("class")
    expect(card.locator(".sev")).to_have_text("critical")
    expect(page.locator("#n-critical")).to_have_text("1")
    # the map marks the device with its alert colour
    assert page.evaluate("controlRoom.deviceLook('wtr-0001')") is None  # not registered yet: not on the map

    card.locator("input.note").fill("crew 3 on the way")
    card.locator("button.ack").click()
    expect(card.locator(".status")).to_contain_text(f"acknowledged by {KEY_NAMES['operator']}")
    stored = api.services.alerts.store.get("inc-live")
    assert stored.acknowledged_by == KEY_NAMES["operator"]
    entry = api.services.alerts.store.audit("inc-live")[-1]
    assert (entry.actor, entry.action, entry.note) == (KEY_NAMES["operator"], "acknowledged", "crew 3 on the way")


def test_resolve_needs_a_note_and_removes_the_card(page, api, analytics):
    sign_in(page, api, "engineer")
    analytics.publish(alert("inc-res", severity="warning"))
    card = page.locator('li.alert[data-alert-id="inc-res"]')
    expect(card).to_be_visible(timeout=2000)
    card.locator("button.resolve").click()  # no note: nothing is sent
    time.sleep(0.3)
    assert not api.services.alerts.store.get("inc-res").resolved
    card.locator("input.note").fill("sensor cleaned")
    card.locator("button.resolve").click()
    expect(card).to_have_count(0)
    resolved = api.services.alerts.store.get("inc-res")
    assert (resolved.resolved_by, resolved.state) == (KEY_NAMES["engineer"], "cleared")


def test_map_and_silent_list_show_device_states(page, api, analytics):
    from telemetry_shared.registry import DeviceNew

    registry = api.services.registry
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari", lat=0.93, lon=104.46))
    registry.add(DeviceNew(id="pwr-0002", kind="power", district="tanjungpinang-timur"))
    registry.add(DeviceNew(id="trf-0003", kind="traffic", district="tanjungpinang-kota"))
    now = int(time.time() * 1000)
    registry.seen("wtr-0001", now, "0.1.0")
    registry.seen("pwr-0002", now - 3_600_000, "0.1.0")  # an hour quiet: silent
    sign_in(page, api)
    analytics.publish(alert("inc-map", severity="critical"))
    # the map is a canvas (thousands of devices): its state is asked of the page
    wait_for(lambda: page.evaluate("controlRoom.deviceLook('wtr-0001')") == "critical", timeout_s=3)
    assert page.evaluate("controlRoom.deviceLook('pwr-0002')") == "silent"
    assert page.evaluate("controlRoom.deviceLook('trf-0003')") == "provisioned"
    expect(page.locator("#silent li")).to_have_count(1)
    expect(page.locator("#silent li")).to_contain_text("pwr-0002")
    expect(page.locator("#n-silent")).to_have_text("1")
    assert page.locator("#map img").count() == 0  # no map tiles


def test_a_wrong_key_is_refused_on_the_page(page, api):
    page.goto(api.url + "/control-room")
    page.fill("#key", "city_deadbeef_not-a-real-key")
    page.click("#login button")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    wait_for(lambda: page.locator("#board").is_hidden(), timeout_s=2)
