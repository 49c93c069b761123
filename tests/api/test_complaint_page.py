"""The complaint page on a phone (headless Chromium, 390 x 844) against the live API, and the control
room: a citizen files a complaint with a photo (Bahasa Indonesia first) and gets a tracking code; the
control room shows "1 laporan warga" on the water incident it was linked to, with its text; the
operator resolves the incident with a public answer; the citizen follows the code and reads it."""


from PIL import Image
from playwright.sync_api import expect

from tests.api.harness import alert, wait_for
from tests.api.phone import fits_the_screen, phone  # noqa: F401 - the fixture
from tests.api.test_control_room import sign_in
from tests.api.test_public_page import SCREENSHOTS


def jpeg(path) -> str:
    image = Image.new("RGB", (800, 600), (40, 90, 200))
    exif = Image.Exif()
    exif[0x010F] = "ZX-Phone"
    image.save(path, "JPEG", exif=exif.tobytes())
    return str(path)


def test_file_follow_and_read_the_answer(phone, api, analytics, tmp_path):  # noqa: F811
    analytics.publish(alert("inc-pipe", district="bukit-bestari", severity="critical"))
    wait_for(lambda: api.services.alerts.store.find()[1] == 1)
    phone.goto(api.url + "/pengaduan")
    expect(phone.locator("#heading")).to_have_text("Pengaduan")
    phone.select_option("#category", "no_water")
    phone.select_option("#district", "bukit-bestari")
    phone.fill("#description", "Air tidak mengalir sejak subuh <img src=x onerror=alert(1)>")
    phone.set_input_files("#photo", jpeg(tmp_path / "keran.jpg"))
    phone.fill("#phone", "0812 3456 7890")
    assert fits_the_screen(phone)
    phone.click("#send")
    code_box = phone.locator("#filed-code")
    expect(code_box).to_have_text(__import__("re").compile(r"^PGD-[2-9A-HJ-NP-Z]{8}$"))
    code = code_box.inner_text()
    expect(phone.locator("#t-status")).to_have_text("Sedang ditangani")
    expect(phone.locator("#t-description")).to_contain_text("diperiksa dulu")  # not public before moderation
    stored = api.services.complaints.get(code)
    assert stored.has_photo and stored.alert_id == "inc-pipe"
    assert b"ZX-Phone" not in api.services.complaints.photo(code, public=False)
    # the control room: the incident says "1 citizen report", with its text as text
    page = phone.context.browser.new_page(viewport={"width": 1600, "height": 900})  # the wall screen
    sign_in(page, api)
    card = page.locator('li.alert[data-alert-id="inc-pipe"]')
    expect(card.locator(".citizens summary")).to_have_text("1 citizen reports")
    card.locator(".citizens summary").click()
    expect(card.locator(".citizen-texts li")).to_have_text(
        "Air tidak mengalir sejak subuh <img src=x onerror=alert(1)>")
    assert card.locator(".citizen-texts img").count() == 0
    card.locator("input.note").fill("valve 7 closed by mistake, reopened")
    card.locator("input.public-note").fill("Katup sudah dibuka kembali. Air mengalir lagi.")
    card.locator("button.resolve").click()
    wait_for(lambda: api.services.alerts.store.get("inc-pipe").resolved)
    # the citizen follows the code on another day: the answer is there
    phone.goto(api.url + f"/complaint?code={code}")
    expect(phone.locator("#t-status")).to_have_text("Selesai")
    expect(phone.locator("#t-answer")).to_have_text("Katup sudah dibuka kembali. Air mengalir lagi.")
    phone.screenshot(path=str(SCREENSHOTS / "complaint-answered-id.png"), full_page=True)
    assert "valve 7" not in phone.content()
    assert fits_the_screen(phone)


def test_the_page_says_why_a_complaint_was_refused(phone, make_api, tmp_path):  # noqa: F811
    api = make_api(api_citizen_per_address_per_hour=1)
    phone.goto(api.url + "/complaint")
    expect(phone.locator("#heading")).to_have_text("Pengaduan")
    phone.fill("#description", "Lampu jalan mati")
    phone.click("#send")
    expect(phone.locator("#file-error")).to_have_text("Pilih kecamatan atau ketuk lokasi di peta.")
    fake = tmp_path / "foto.jpg"
    fake.write_bytes(b"not a photo at all")
    phone.select_option("#district", "bukit-bestari")
    phone.set_input_files("#photo", str(fake))
    phone.click("#send")
    expect(phone.locator("#file-error")).to_have_text(
        "File ini bukan foto yang bisa kami baca (JPEG, PNG atau WebP).")
    phone.set_input_files("#photo", [])
    phone.click("#send")
    expect(phone.locator("#filed")).to_be_visible()
    phone.goto(api.url + "/complaint")
    phone.select_option("#district", "bukit-bestari")
    phone.fill("#description", "Lampu jalan lain juga mati")
    phone.click("#send")
    expect(phone.locator("#file-error")).to_have_text("Terlalu banyak pengaduan dari Anda. Coba lagi nanti.")
