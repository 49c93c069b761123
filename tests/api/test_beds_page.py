"""The "where is a free bed now" page on a phone (headless Chromium, 390 x 844), against the live API:
in Bahasa Indonesia first, a citizen picks ICU and finds the hospital with a free ICU bed, its phone
number and the doctor on duty; a stale ward shows when it was last told, never a free bed."""

import time

from playwright.sync_api import expect

from api.citizens.hospitals import BedsUpdate, HospitalNew, WardNew
from tests.api.phone import fits_the_screen, phone  # noqa: F401 - the fixture
from tests.api.test_public_page import SCREENSHOTS

HOUR_MS = 3600_000


def seed(api) -> None:
    hospitals = api.services.hospitals
    now = int(time.time() * 1000)
    for n, (hid, name, phone_no) in enumerate([("rsud-tabib", "RSUD Raja Ahmad Tabib", "+62 771 7335203"),
                                               ("rsal-midiyato", "RSAL Dr. Midiyato Suratani", "+62 771 21211")]):
        spot = api.settings.city.districts[n].geometry.representative_point()
        hospitals.add(HospitalNew(id=hid, name=name, address="Jl. Contoh No. 1", lat=spot.y, lon=spot.x,
                                  phone=phone_no, type="government"), api.settings.city.districts[n].slug)
        # the API refuses markup in names; one stored all the same (an older row) must still show as text
        hospitals.add_ward(hid, WardNew.model_construct(id=f"{hid}-icu", name="ICU <b>Melati</b>", bed_class="icu",
                                                        capacity=6))
        hospitals.add_ward(hid, WardNew(id=f"{hid}-k3", name="Anggrek", bed_class="class_3", capacity=20))
    hospitals.set_beds("rsud-tabib", "rsud-tabib-icu", BedsUpdate(beds_free=2), "desk")
    hospitals.set_beds("rsud-tabib", "rsud-tabib-k3", BedsUpdate(beds_free=7), "desk")
    hospitals.set_beds("rsal-midiyato", "rsal-midiyato-icu", BedsUpdate(beds_free=3), "desk", t_ms=now - 2 * HOUR_MS)
    from api.citizens.hospitals import DutyShift, Roster
    hospitals.set_roster("rsud-tabib", Roster(shifts=[DutyShift(doctor="dr. Sari, Sp.An", speciality="anestesi",
                                                                start_ms=now - HOUR_MS, end_ms=now + HOUR_MS)]))


def test_find_a_free_icu_bed_on_a_phone(phone, make_api):  # noqa: F811
    api = make_api(api_public_rate_per_min=100_000)
    seed(api)
    phone.goto(api.url + "/beds")
    expect(phone.locator("#heading")).to_have_text("Tempat tidur kosong sekarang")  # the city's language first
    phone.select_option("#bed-class", "icu")
    cards = phone.locator("article.hospital")
    expect(cards).to_have_count(2)
    rsud = phone.locator('article[data-hospital="rsud-tabib"]')
    expect(rsud.locator(".ward")).to_have_text(["ICU · ICU <b>Melati</b>2 kosong dari 6"])  # shown as text
    expect(rsud.locator("a.phone")).to_have_attribute("href", "tel:+627717335203")
    expect(rsud.locator(".doctor")).to_contain_text("dr. Sari, Sp.An (anestesi), sampai")
    stale = phone.locator('article[data-hospital="rsal-midiyato"] .ward')
    expect(stale).to_contain_text("Belum diperbarui sejak")
    expect(stale.locator(".free")).to_have_count(0)  # two hours old: never shown as free
    phone.check("#only-free")
    expect(cards).to_have_count(1)
    assert phone.locator("b").count() == 0  # the ward's name did not become markup
    assert fits_the_screen(phone)
    phone.screenshot(path=str(SCREENSHOTS / "beds-id.png"), full_page=True)
    # English on the switch
    phone.select_option("#lang", "en")
    expect(phone.locator("#heading")).to_have_text("Free hospital beds now")
    expect(rsud.locator(".ward")).to_have_text(["ICU · ICU <b>Melati</b>2 free of 6"])


def test_an_answer_to_filters_changed_since_does_not_replace_the_list(phone, make_api):  # noqa: F811
    """A citizen picks ICU, then ticks "only free" before the ICU list came: when the ICU answer came last, it replaced
    the free-only list (a hospital with no free bed shown). That answer is held here until the later one is shown."""
    api = make_api(api_public_rate_per_min=100_000)
    seed(api)
    held = []

    def hold_icu_alone(route):
        url = route.request.url
        if not held and "bed_class=icu" in url and "only_free" not in url:
            held.append(route)  # answered below, after the free-only list
            return
        route.continue_()

    phone.route("**/public/hospitals/beds?*", hold_icu_alone)
    phone.goto(api.url + "/beds")
    cards = phone.locator("article.hospital")
    expect(cards).to_have_count(2)  # the first list, every class
    phone.select_option("#bed-class", "icu")
    for _ in range(100):  # the ICU request reaches the route
        if held:
            break
        phone.wait_for_timeout(50)
    assert len(held) == 1
    phone.check("#only-free")
    expect(cards).to_have_count(1)
    with phone.expect_response(lambda response: response.request == held[0].request):
        held[0].continue_()
    phone.wait_for_timeout(500)  # its body read and handled: it used to be rendered here
    expect(cards).to_have_count(1)
    expect(phone.locator('article[data-hospital="rsud-tabib"]')).to_have_count(1)


def test_the_hospital_desk_updates_its_own_beds_and_roster(phone, make_api):  # noqa: F811
    api = make_api(api_public_rate_per_min=100_000)
    seed(api)
    key = api.services.keys.create("rsal night desk", "hospital")
    api.services.hospitals.scope_key(key.id, "rsal-midiyato")
    phone.goto(api.url + "/hospital-desk")
    expect(phone.locator("#heading")).to_have_text("Tempat tidur dan dokter jaga")
    phone.fill("#key", api.keys["operator"])  # a staff key is not a hospital's
    phone.click("#login button")
    expect(phone.locator("#login-error")).to_have_text("Kunci ini tidak berlaku untuk rumah sakit.")
    phone.fill("#key", key.key)
    phone.click("#login button")
    expect(phone.locator("#hospital-name")).to_have_text("RSAL Dr. Midiyato Suratani")
    ward = phone.locator('[data-ward="rsal-midiyato-icu"]')
    ward.locator("input.beds").fill("4")
    ward.locator("button.save").click()
    expect(phone.locator("#saved")).to_contain_text("disimpan")
    assert api.services.hospitals.ward("rsal-midiyato", "rsal-midiyato-icu").beds_free == 4
    assert api.services.hospitals.ward("rsal-midiyato", "rsal-midiyato-icu").updated_by == "rsal night desk"
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 3600))
    phone.fill("#roster", f"dr. Budi, Sp.JP; jantung; {today} 00:00; {today} 23:59\nrusak")
    phone.click("#upload")
    expect(phone.locator("#roster-result")).to_have_text("Baris 2 tidak bisa dibaca.")
    phone.fill("#roster", f"dr. Budi, Sp.JP; jantung; {today} 00:00; {today} 23:59")
    phone.click("#upload")
    expect(phone.locator("#roster-result")).to_contain_text("1 giliran disimpan")
    api.services.public.forget("beds")
    phone.goto(api.url + "/beds")
    phone.select_option("#bed-class", "icu")
    rsal = phone.locator('article[data-hospital="rsal-midiyato"]')
    expect(rsal.locator(".ward")).to_have_text(["ICU · ICU <b>Melati</b>4 kosong dari 6"])  # fresh again
    expect(rsal.locator(".doctor")).to_contain_text("dr. Budi, Sp.JP (jantung)")
    assert fits_the_screen(phone)
