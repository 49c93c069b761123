"""Alarm management on the control-room page, in headless Debian Chromium against the live API:
shelving by keyboard and its return on expiry, maintenance set from the CLI shown on the board and
the map, a flood grouped by district and utility, and the supervisor's KPI page in two languages,
and the tuning proposals learnt from false alarms (engineers decide, operators read)."""

import json
import time

import pytest
from playwright.sync_api import expect
from typer.testing import CliRunner

from telemetry_shared.detector_tuning import DetectorTuningStore
from tests.api.harness import KEY_NAMES, alert, wait_for
from tests.api.test_control_room import page, sign_in  # noqa: F401 - the page fixture

SHELVE_MAX_S = 3


@pytest.fixture
def api(make_api):
    """Shelving of at most 3 s, checked often; the server's own grouping off, so the flood test
    sees what the page does with many alarms of one district and utility."""
    return make_api(api_alarm_shelve_max_s=SHELVE_MAX_S, api_alarm_check_s=0.3, api_alarm_group_window_s=0)


def card(page, incident: str):  # noqa: F811
    return page.locator(f'li.alert[data-alert-id="{incident}"]')


def test_shelve_by_keyboard_then_it_returns_when_its_time_is_up(page, api, analytics):  # noqa: F811
    sign_in(page, api)
    analytics.publish(alert("inc-shelf", severity="critical"))
    expect(card(page, "inc-shelf")).to_be_visible(timeout=3000)
    expect(card(page, "inc-shelf").locator(".prio")).to_have_text("high")  # low water pressure
    # keyboard only: type the reason, Tab to the duration (the 3 s maximum is the only choice), Tab, Enter
    card(page, "inc-shelf").locator("input.note").focus()
    page.keyboard.type("crew on site, valve being replaced")
    page.keyboard.press("Tab")  # acknowledge
    page.keyboard.press("Tab")  # what it was (for resolving)
    page.keyboard.press("Tab")  # resolve
    page.keyboard.press("Tab")  # how long
    assert page.evaluate("document.activeElement.className") == "shelve-for"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(card(page, "inc-shelf")).to_have_count(0, timeout=3000)
    shelved = page.locator('#shelved li[data-alert-id="inc-shelf"]')
    expect(shelved).to_contain_text("crew on site, valve being replaced")
    expect(shelved).to_contain_text(KEY_NAMES["operator"])
    expect(page.locator("#n-shelved")).to_have_text("1")
    stored = api.services.alerts.store.get("inc-shelf")
    assert stored.shelved_by == KEY_NAMES["operator"]
    # back by itself, with nobody touching the page
    expect(card(page, "inc-shelf")).to_be_visible(timeout=SHELVE_MAX_S * 1000 + 5000)
    expect(page.locator("#n-shelved")).to_have_text("0", timeout=3000)
    actions = [(e.actor, e.action) for e in api.services.alerts.store.audit("inc-shelf")]
    assert actions[-2:] == [(KEY_NAMES["operator"], "shelved"), ("system", "unshelved")]


def test_unshelve_from_the_list_with_the_mouse(page, api, analytics):  # noqa: F811
    sign_in(page, api)
    analytics.publish(alert("inc-back", severity="warning"))
    expect(card(page, "inc-back")).to_be_visible(timeout=3000)
    card(page, "inc-back").locator("button.shelve").click()  # no reason: nothing is sent
    time.sleep(0.3)
    assert api.services.alerts.store.get("inc-back").shelved_until_ms is None
    card(page, "inc-back").locator("input.note").fill("known, pump test")
    card(page, "inc-back").locator("button.shelve").click()
    expect(card(page, "inc-back")).to_have_count(0, timeout=3000)
    page.locator('#shelved li[data-alert-id="inc-back"] button.unshelve').click()
    expect(card(page, "inc-back")).to_be_visible(timeout=3000)


def test_an_engineer_sees_no_shelve_controls(page, api, analytics):  # noqa: F811
    sign_in(page, api, "engineer")
    analytics.publish(alert("inc-eng"))
    expect(card(page, "inc-eng")).to_be_visible(timeout=3000)
    assert card(page, "inc-eng").locator("button.shelve").count() == 0


def test_maintenance_from_the_cli_shows_on_the_board_and_the_map(page, api, analytics):  # noqa: F811
    from telemetry_cli.main import app
    from telemetry_shared.registry import DeviceNew

    api.services.registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari", lat=0.89,
                                        lon=104.46))
    api.services.registry.seen("wtr-0001", int(time.time() * 1000), "0.1.0")
    sign_in(page, api)
    analytics.publish(alert("inc-maint", device="wtr-0001", severity="warning"))
    expect(card(page, "inc-maint")).to_be_visible(timeout=3000)
    wait_for(lambda: page.evaluate("controlRoom.deviceLook('wtr-0001')") == "warning", timeout_s=5)

    env = {"CITY_API_URL": api.url, "CITY_API_TOKEN": api.keys["technician"]}
    runner = CliRunner()
    started = runner.invoke(app, ["device", "maintenance", "start", "wtr-0001", "--until", "2h", "--note",
                                  "replacing the pressure sensor", "--json"], env=env, catch_exceptions=False)
    assert started.exit_code == 0, started.output
    assert json.loads(started.stdout)["alerts"] == ["inc-maint"]
    expect(card(page, "inc-maint")).to_have_count(0, timeout=3000)
    expect(page.locator("#maintenance")).to_contain_text("replacing the pressure sensor", timeout=3000)
    expect(page.locator("#maintenance")).to_contain_text("wtr-0001")
    wait_for(lambda: page.evaluate("controlRoom.deviceLook('wtr-0001')") == "maintenance", timeout_s=5)
    # an alarm raised while the work goes on stays off the board too
    analytics.publish(alert("inc-during", device="wtr-0001", severity="critical"))
    wait_for(lambda: [a for a in api.services.alerts.store.find()[0] if a.id == "inc-during" and a.suppressed],
             timeout_s=5)
    time.sleep(0.5)
    assert card(page, "inc-during").count() == 0

    stopped = runner.invoke(app, ["device", "maintenance", "stop", "wtr-0001"], env=env, catch_exceptions=False)
    assert stopped.exit_code == 0, stopped.output
    expect(card(page, "inc-maint")).to_be_visible(timeout=3000)
    expect(card(page, "inc-during")).to_be_visible(timeout=3000)
    expect(page.locator("#no-maintenance")).to_be_visible(timeout=3000)
    wait_for(lambda: page.evaluate("controlRoom.deviceLook('wtr-0001')") == "critical", timeout_s=5)


def test_a_flood_raises_the_banner_and_groups_by_district_and_utility(page, api, analytics):  # noqa: F811
    sign_in(page, api)
    districts = api.settings.city.slugs[:2]
    for n in range(12):  # 6 water alarms in each of two districts within seconds
        analytics.publish(alert(f"inc-fl{n:02d}", device=f"wtr-{n:04d}", district=districts[n % 2],
                                rule="unusual_value", metric="flow_lps", severity="warning"), device=f"wtr-{n:04d}")
    wait_for(lambda: api.services.alerts.store.find()[1] == 12)
    banner = page.locator("#flood")
    expect(banner).to_be_visible(timeout=5000)
    expect(banner).to_contain_text("12 new alarms in 10 min")
    visible = page.locator("li.alert:visible")
    expect(visible).to_have_count(2, timeout=3000)  # one card per district and utility
    toggles = page.locator("li.alert:visible .group-toggle")
    expect(toggles).to_have_count(2)
    expect(toggles.first).to_have_text("+5 grouped: show")
    toggles.first.focus()
    page.keyboard.press("Enter")  # open one group from the keyboard: its 5 cards are shown
    expect(visible).to_have_count(7, timeout=3000)
    expect(page.locator("li.alert:visible .group-toggle").first).to_have_text("+5 grouped: hide")
    assert page.evaluate("document.activeElement.className") == "group-toggle"


def test_the_kpi_page_shows_the_shift_in_both_languages(page, api, analytics):  # noqa: F811
    for n in range(3):
        api.services.alerts.apply(alert(f"inc-k{n}", device=f"wtr-{n:04d}", district=api.settings.city.slugs[n]))
    api.services.alerts.store.acknowledge("inc-k0", "someone")
    sign_in(page, api, "engineer")
    page.goto(api.url + "/control-room/kpis")
    expect(page.locator("h1")).to_have_text("Alarm system: KPIs for the shift")
    expect(page.locator('[data-testid="annunciated"] td')).to_have_text(
        "3 of 3 raised (the rest grouped, suppressed or chattering)", timeout=5000)
    expect(page.locator('[data-testid="mix-high"] td')).to_have_text("3 (100.0 %; target 5 %)")
    expect(page.locator('[data-testid="per-10min"] td')).to_have_text("mean 0.0, worst 3")
    expect(page.locator('[data-testid="ack"] td')).to_contain_text("median")
    expect(page.locator("#top li")).to_have_count(3)
    page.select_option("#range", index=0)  # the last 8 h
    expect(page.locator('[data-testid="per-operator-hour"] td')).to_have_text("0.4", timeout=5000)
    page.select_option("#lang", "id")
    expect(page.locator("h1")).to_have_text("Sistem alarm: KPI untuk giliran jaga")
    expect(page.locator('[data-testid="mix-high"] th')).to_have_text("tinggi")
    expect(page.locator('[data-testid="mix-high"] td')).to_have_text("3 (100,0 %; target 5 %)")


def test_an_answer_for_the_range_before_does_not_replace_the_range_chosen(page, api, analytics):  # noqa: F811
    """The page loads the last 24 h; an engineer picks the last 8 h before that answer came. When the 24 h answer
    came last, it replaced the 8 h figures under the 8 h choice. It is held here until the 8 h figures are shown."""
    for n in range(3):
        api.services.alerts.apply(alert(f"inc-r{n}", device=f"wtr-{n:04d}", district=api.settings.city.slugs[n]))
    sign_in(page, api, "engineer")
    held = []

    def hold_the_first(route):
        if not held:
            held.append(route)  # answered below, after the 8 h figures
            return
        route.continue_()

    page.route("**/alarms/kpis?*", hold_the_first)
    page.goto(api.url + "/control-room/kpis")
    for _ in range(100):  # the page's first request reaches the route
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1 and "since=24h" in held[0].request.url
    page.select_option("#range", index=0)  # the last 8 h
    hour = page.locator('[data-testid="per-operator-hour"] td')
    expect(hour).to_have_text("0.4", timeout=5000)
    with page.expect_response(lambda response: response.request == held[0].request):
        held[0].continue_()
    page.wait_for_timeout(500)  # its body read and handled: it used to be rendered here
    expect(hour).to_have_text("0.4")


def test_resolving_as_a_false_alarm_on_the_page_is_recorded(page, api, analytics):  # noqa: F811
    sign_in(page, api)
    analytics.publish(alert("inc-false", severity="warning"))
    expect(card(page, "inc-false")).to_be_visible(timeout=3000)
    card(page, "inc-false").locator("input.note").fill("pressure fine at the hydrant")
    card(page, "inc-false").locator("select.cause").select_option("false_alarm")
    card(page, "inc-false").locator("button.resolve").click()
    expect(card(page, "inc-false")).to_have_count(0, timeout=3000)
    resolved = api.services.alerts.store.get("inc-false")
    assert (resolved.resolution_cause, resolved.resolved_by) == ("false_alarm", KEY_NAMES["operator"])
    assert api.services.alerts.store.audit("inc-false")[-1].detail == {"cause": "false_alarm"}


def dismiss_twice(api, device: str = "wtr-0007") -> None:
    """Two alarms of one source, both resolved by the operator as false alarms (and one elsewhere, once)."""
    with api.client("operator") as op:
        for incident, source in ((f"inc-{device}-a", device), (f"inc-{device}-b", device), ("inc-once", "wtr-0008")):
            api.services.alerts.apply(alert(incident, device=source))
            answer = op.post(f"/alerts/{incident}/resolve", json={"note": "pressure fine", "cause": "false_alarm"})
            assert answer.status_code == 200, answer.text


def proposal(page, device: str):  # noqa: F811
    return page.locator("#tuning li.proposal", has_text=device)


def test_false_alarms_make_a_proposal_an_engineer_approves_by_keyboard_and_undoes(page, api):  # noqa: F811
    sign_in(page, api, "engineer")
    page.goto(api.url + "/control-room/kpis")
    expect(page.locator("#tuning li.none")).to_have_text(
        "No proposals: no source was dismissed (false alarm or planned work) twice in 30 days.", timeout=5000)
    dismiss_twice(api)
    page.select_option("#range", index=0)  # any reload of the page's data looks again
    item = proposal(page, "wtr-0007")
    expect(item).to_have_attribute("data-state", "proposed", timeout=5000)
    expect(item.locator("strong")).to_have_text("wtr-0007 · pressure · pressure low")
    expect(item.locator(".effect")).to_contain_text("2 alarms")
    expect(item.locator(".effect")).to_contain_text("it would have held back 2: 2 false alarms, 0 real faults (hidden)")
    expect(item.locator(".change")).to_have_text(
        "Change: an alarm of this device and metric opens only at a score of at least 0.91")
    expect(page.locator("#tuning li.proposal")).to_have_count(1)  # one false alarm of wtr-0008: nothing
    tuning_id = item.get_attribute("data-tuning-id")

    item.locator("button.tuning-approve").focus()  # keyboard: Enter on the focused button
    page.keyboard.press("Enter")
    expect(item).to_have_attribute("data-state", "approved", timeout=5000)
    expect(item.locator(".badge")).to_have_text("approved")
    expect(item.locator(".decided")).to_contain_text(f"approved by {KEY_NAMES['engineer']}")
    assert item.locator("button.tuning-approve").count() == 0
    assert page.evaluate("document.activeElement.className") == "tuning-undo"  # focus stays on the item
    with api.client("operator") as op:
        stored = op.get("/alarms/tuning?state=approved").json()["data"]
    assert [(str(t["id"]), t["decided_by"]) for t in stored] == [(tuning_id, KEY_NAMES["engineer"])]
    [change] = DetectorTuningStore(api.settings.registry_file).changes()  # what the analytics engines apply
    assert (str(change.tuning_id), change.device, change.params) == (tuning_id, "wtr-0007", {"min_score": 0.91})

    undone = page.locator(f'#tuning li[data-tuning-id="{tuning_id}"]')
    undone.locator("button.tuning-undo").click()  # and the mouse
    expect(undone).to_have_attribute("data-state", "undone", timeout=5000)
    expect(undone.locator(".decided")).to_contain_text(f"undone by {KEY_NAMES['engineer']}")
    assert api.services.alerts.alarms.tuning.get(int(tuning_id)).state == "undone"
    assert DetectorTuningStore(api.settings.registry_file).changes() == []
    page.select_option("#lang", "id")
    expect(undone.locator(".badge")).to_have_text("dibatalkan")
    expect(undone.locator("button.tuning-undo")).to_have_count(0)


def test_an_operator_sees_proposals_read_only_and_cannot_approve(page, api):  # noqa: F811
    dismiss_twice(api, "wtr-0009")
    tuning_id = api.services.alerts.alarms.tuning.list("proposed")[0].id  # the second dismissal proposed it
    sign_in(page, api)  # the operator
    page.goto(api.url + "/control-room/kpis")
    item = proposal(page, "wtr-0009")
    expect(item).to_have_attribute("data-state", "proposed", timeout=5000)
    expect(item.locator(".effect")).to_contain_text("2 false alarms")
    expect(page.locator("#tuning-who")).to_have_text("Read only: an engineer approves, rejects or undoes these.")
    assert page.locator("#tuning button").count() == 0
    with api.client("operator") as op:
        assert op.post(f"/alarms/tuning/{tuning_id}/approve", json={}).status_code == 403
    assert api.services.alerts.alarms.tuning.get(tuning_id).state == "proposed"


def test_planned_work_shows_its_calendar_exception_in_words_in_both_languages(page, api):  # noqa: F811
    tue = 1_767_665_400_000  # Tuesday 2026-01-06 09:10 in the city
    with api.client("operator") as op:
        for n, (metric, rule) in enumerate((("pressure_bar", "pressure_low"), ("flow_lps", "level_shift"))):
            incident = f"inc-work{n}"
            api.services.alerts.apply(alert(incident, device="wtr-0012", metric=metric, rule=rule,
                                            started_ms=tue + n * 86_400_000))
            done = op.post(f"/alerts/{incident}/resolve", json={"note": "valve works", "cause": "planned_work"})
            assert done.is_success, done.text
    sign_in(page, api, "engineer")
    page.goto(api.url + "/control-room/kpis")
    item = proposal(page, "wtr-0012")
    expect(item.locator("strong")).to_have_text("wtr-0012 · every metric · every rule", timeout=5000)
    expect(item.locator(".change")).to_have_text(
        "Change: planned work, no alarm of this device on Tuesday, Wednesday from 09:00 to 10:00 (city time)")
    page.select_option("#lang", "id")
    expect(item.locator(".change")).to_have_text("Perubahan: pekerjaan terencana, tidak ada alarm perangkat ini pada "
                                                 "Selasa, Rabu dari 09:00 sampai 10:00 (waktu kota)")
