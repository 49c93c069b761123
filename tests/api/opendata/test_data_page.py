"""The public open-data page in headless Debian Chromium at a phone's size, against the live API and real
influxd: every chart drawn (Chart.js, vendored) with the figures the open summaries give, the same numbers
in the tables, Bahasa Indonesia first and English, keyboard usable, dataset links that answer, only public
routes asked, nothing personal on the page. Screenshots in docs/screenshots/ (CITY_UPDATE_SCREENSHOTS=1)."""

import re

import httpx
from playwright.sync_api import expect

from tests.api.harness import wait_for
from tests.api.opendata.conftest import FULL, PERSONAL, SPARSE
from tests.api.phone import fits_the_screen, phone  # noqa: F401 - the browser fixture
from tests.helpers.screenshots import SCREENSHOTS

CHARTS = ("water", "power", "traffic", "complaints", "beds")


def _drawn(page, name):
    return page.evaluate(f"dataPage.chart('{name}')")


def test_the_open_data_page_charts_the_open_figures_in_both_languages(phone, open_city):  # noqa: F811
    api, expected = open_city
    profile = api.settings.city
    asked: list[str] = []
    phone.on("request", lambda request: asked.append(request.url))
    phone.goto(api.url + "/data-terbuka")
    expect(phone.locator("#heading")).to_have_text(f"Data terbuka {profile.name}")
    assert phone.evaluate("document.documentElement.lang") == "id"
    wait_for(lambda: phone.evaluate("dataPage.ready()") and all(_drawn(phone, c) for c in CHARTS), timeout_s=10)
    # water: the three published meters' total, the sparse district left out
    water = _drawn(phone, "water")
    assert water["datasets"][0]["drawn"] == 14
    assert abs(sum(v or 0 for v in water["datasets"][0]["data"]) - expected["supplied_m3"]) < 0.02 * 216
    expect(phone.locator("#water-figure")).to_contain_text("m³ sejauh ini")
    assert re.search(r"\d+,\d m³", phone.locator("#water-figure").inner_text())  # comma decimals
    # power: one district published, with its ten minutes
    power = _drawn(phone, "power")
    assert [d["label"] for d in power["datasets"]] == [profile.district(FULL).name("id")]
    assert sum(v or 0 for v in power["datasets"][0]["data"]) == expected["outage_minutes"]
    # traffic: the mean of three sensors in the last whole hour; complaints; beds
    assert [v for v in _drawn(phone, "traffic")["datasets"][0]["data"] if v is not None][-1] == 30
    complaints = _drawn(phone, "complaints")
    assert sum(v or 0 for v in complaints["datasets"][0]["data"]) == 3
    assert sum(v or 0 for v in complaints["datasets"][1]["data"]) == 1
    expect(phone.locator("#complaints-figure")).to_contain_text("3 diterima, 1 dijawab")
    beds = _drawn(phone, "beds")
    assert beds["labels"] == ["ICU", "Kelas III"] and beds["datasets"][0]["data"] == [3, 12]
    # every chart canvas really painted something (not blank)
    for name in CHARTS:
        assert phone.evaluate(f"""(() => {{ const c = document.getElementById('{name}-chart');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < px.length; i += 4) if (px[i]) return true; return false; }})()"""), name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SCREENSHOTS / "open-data-id.png"), full_page=True)
    # keyboard: Tab reaches the table switch of the first chart, Enter opens it
    phone.locator("#water-card summary").focus()
    phone.keyboard.press("Enter")
    expect(phone.locator("#water-table")).to_be_visible()
    expect(phone.locator("#water-table tbody tr")).to_have_count(14)
    assert fits_the_screen(phone)
    expect(phone.locator('#site-nav a[aria-current="page"]')).to_have_count(0)  # /data-terbuka is not /data
    # English, remembered
    phone.select_option("#lang", "en")
    expect(phone.locator("#heading")).to_have_text(f"Open data of {profile.name}")
    wait_for(lambda: _drawn(phone, "power")["datasets"][0]["label"] == profile.district(FULL).name("en"), timeout_s=5)
    expect(phone.locator("#complaints-figure")).to_contain_text("3 received, 1 answered")
    assert _drawn(phone, "beds")["labels"] == ["ICU", "Class III"]
    phone.screenshot(path=str(SCREENSHOTS / "open-data-en.png"), full_page=True)
    # every published dataset is listed with its page and this month's CSV, JSON and NGSI-LD files, and
    # every link on the page answers (the catalogue's, the downloads, the summaries)
    with httpx.Client(base_url=api.url, timeout=30) as c:
        published = {d["id"] for d in c.get("/opendata/datasets").json()["data"]}
        listed = set(phone.locator("#datasets li").evaluate_all("items => items.map(i => i.dataset.dataset)"))
        assert listed == published and "building-co2_ppm" not in listed  # closed by the policy
        traffic = phone.locator('#datasets li[data-dataset="traffic-speed_kmh"] a')
        assert traffic.all_inner_texts()[1:] == ["CSV", "JSON", "NGSI-LD"]
        hrefs = phone.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert len(hrefs) > len(published) + len(CHARTS)
        for href in hrefs:
            r = c.get(href)
            assert r.status_code == 200 and r.content, href
        csv = c.get(traffic.nth(1).get_attribute("href")).text.splitlines()
        assert csv[0].startswith("time,district,value") and all(FULL in line for line in csv[1:])
    # only public routes and static files, and nothing personal or of a device on the page
    paths = {re.sub(r"^https?://[^/]+", "", url).split("?")[0] for url in asked}
    assert paths and all(p in ("/data-terbuka", "/public/map", "/opendata/datasets")
                         or p.startswith(("/public/summary/", "/static/")) for p in paths), paths
    text = phone.locator("body").inner_text()
    for secret in [*PERSONAL.values(), "PLANTED", "wtr-", "pwr-", "trf-", profile.district(SPARSE).name("en")]:
        assert secret not in text, secret


def test_the_page_says_when_there_is_no_data(phone, api):  # noqa: F811
    phone.goto(api.url + "/data")
    wait_for(lambda: phone.evaluate("dataPage.ready()"), timeout_s=10)
    expect(phone.locator("#water-figure")).to_have_text("tidak ada data")
    expect(phone.locator('#site-nav a[aria-current="page"]')).to_have_text("Data terbuka")
    expect(phone.locator("#error")).to_be_hidden()
    assert fits_the_screen(phone)


def test_the_page_is_usable_with_the_keyboard_alone(phone, api):  # noqa: F811
    """Tab walks the language switch, the navigation, every chart's table switch and the catalogue links;
    Enter opens a table."""
    phone.goto(api.url + "/data")
    wait_for(lambda: phone.evaluate("dataPage.ready()"), timeout_s=10)
    seen = []
    for _ in range(80):
        phone.keyboard.press("Tab")
        seen.append(phone.evaluate("""(() => { const e = document.activeElement;
            return e.id || (e.closest('section') ? e.closest('section').id + ' ' + e.tagName : e.tagName)
              + ' ' + (e.getAttribute('href') || ''); })()"""))
    assert "lang" in seen and any(s.endswith(" /data") for s in seen)
    for chart in ("water", "power", "traffic", "complaints", "beds"):
        assert f"{chart}-card SUMMARY " in seen, (chart, seen)
    assert any("/api/3/action/package_list" in s for s in seen) and any("/opendata/catalog.jsonld" in s for s in seen)
    phone.locator("#beds-card summary").focus()
    phone.keyboard.press("Enter")
    expect(phone.locator("#beds-table")).to_be_visible()
