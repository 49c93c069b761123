"""The public city page in headless Debian Chromium at a phone's size, against the live API and
InfluxDB: the profile's districts drawn on the (offline, vector-only) map coloured by their public
power status, a table of each district's figures, Bahasa Indonesia first and an English switch, and
only public routes asked (the page can show nothing else).
Screenshots in docs/screenshots/ (CITY_UPDATE_SCREENSHOTS=1)."""

import re

from playwright.sync_api import expect

from tests.api.harness import wait_for
from tests.api.test_control_room import page  # noqa: F401 - the browser fixture
from tests.api.test_public import city  # noqa: F401 - the readings behind /public/city
from tests.helpers.screenshots import SCREENSHOTS

PHONE = {"width": 390, "height": 844}


def _open(page, api, path="/city", locale="id-ID"):  # noqa: F811
    context = page.context.browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2,
                                               is_mobile=True, has_touch=True)
    phone = context.new_page()
    asked: list[str] = []
    phone.on("request", lambda request: asked.append(request.url))
    phone.goto(api.url + path)
    return context, phone, asked


def test_the_city_page_maps_the_districts_with_their_public_status_in_both_languages(page, city):  # noqa: F811
    api, _ = city
    profile = api.settings.city
    context, phone, asked = _open(page, api)
    try:
        # Bahasa Indonesia first (the profile's default), with no switch touched
        expect(phone.locator("#heading")).to_have_text(f"{profile.name} hari ini")
        assert phone.evaluate("document.documentElement.lang") == "id"
        expect(phone.locator("#districts tbody tr")).to_have_count(len(profile.districts))
        wait_for(lambda: phone.evaluate("cityPage.districtsOnMap()") == len(profile.districts), timeout_s=5)
        labels = phone.locator(".district-label").all_inner_texts()
        assert sorted(labels) == sorted(d.name("id") for d in profile.districts)
        assert phone.locator("img.leaflet-tile").count() == 0  # vector shapes only: no tile server
        expect(phone.locator('tr[data-district="tanjungpinang-timur"] td.power')).to_have_text("padam")
        expect(phone.locator('tr[data-district="bukit-bestari"] td.power')).to_have_text("menyala")
        expect(phone.locator('tr[data-district="tanjungpinang-kota"] td.traffic')).to_have_text("macet (12 km/jam)")
        assert phone.evaluate("cityPage.powerLook('tanjungpinang-timur')") == "outage"
        expect(phone.locator("#water")).to_contain_text("Air tersalurkan hari ini:")
        assert re.search(r"\d+,\d m³", phone.locator("#water").inner_text())  # comma decimals
        expect(phone.locator("#as-of")).to_contain_text("WIB")
        expect(phone.locator('#site-nav a[aria-current="page"]')).to_have_text("Keadaan kota")
        # phone-sized: nothing wider than the screen
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(SCREENSHOTS / "public-city-id.png"), full_page=True)
        # the English switch, remembered
        phone.select_option("#lang", "en")
        expect(phone.locator("#heading")).to_have_text(f"{profile.name} today")
        expect(phone.locator('tr[data-district="tanjungpinang-timur"] td.power')).to_have_text("outage")
        expect(phone.locator('tr[data-district="tanjungpinang-kota"] td.traffic')).to_have_text("congested (12 km/h)")
        labels = phone.locator(".district-label").all_inner_texts()
        assert sorted(labels) == sorted(d.name("en") for d in profile.districts)
        phone.screenshot(path=str(SCREENSHOTS / "public-city-en.png"), full_page=True)
        phone.reload()
        expect(phone.locator("#heading")).to_have_text(f"{profile.name} today")
        # only public routes and static files: the page cannot show what they do not
        paths = {re.sub(r"^https?://[^/]+", "", url).split("?")[0] for url in asked}
        assert paths and all(p in ("/city", "/public/map", "/public/city") or p.startswith("/static/")
                             for p in paths), paths
        text = phone.locator("body").inner_text()
        assert "pwr-0002" not in text and "gate code" not in text and "RSUD" not in text
    finally:
        context.close()


def test_the_indonesian_path_and_an_outage_of_the_figures(page, api):  # noqa: F811
    context, phone, _ = _open(page, api, "/kota", locale="en-US")
    try:
        expect(phone.locator("#heading")).to_have_text(f"{api.settings.city.name} hari ini")  # the city's language
        # InfluxDB has no readings here: every district unknown, said so, nothing invented
        expect(phone.locator("#districts tbody tr")).to_have_count(len(api.settings.city.districts))
        expect(phone.locator("td.power.unknown")).to_have_count(len(api.settings.city.districts))
        expect(phone.locator("#water")).to_have_text("Air tersalurkan hari ini: belum diketahui")
    finally:
        context.close()

