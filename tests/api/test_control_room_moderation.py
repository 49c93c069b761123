"""The moderation queue in headless Debian Chromium against the live API: complaints filed through
Open311 wait in the queue with their text as text (a planted script never runs) and their photo;
approving one by keyboard makes its text public on the citizen's status page, rejecting another with
the mouse keeps its text off; a key whose role cannot moderate gets no queue."""

import io

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.api.harness import KEY_NAMES
from tests.api.test_control_room import page, sign_in  # noqa: F401 - the page fixture

HOSTILE = "Pipa bocor <script>window.pwned=1</script><img src=x onerror=\"window.pwned=1\">"
PLAIN = "Lampu jalan mati di depan sekolah, nomor telepon saya 0812"


@pytest.fixture
def api(make_api):
    return make_api(api_public_rate_per_min=100_000, api_citizen_per_address_per_hour=50)


def file(api, text: str, service_code: str, photo: bool = False) -> str:
    files = None
    if photo:
        out = io.BytesIO()
        Image.new("RGB", (640, 480), (200, 60, 40)).save(out, "JPEG")
        files = {"media": ("foto.jpg", out.getvalue(), "image/jpeg")}
    with httpx.Client(base_url=api.url, timeout=10) as c:
        r = c.post("/open311/v2/requests.json", files=files,
                   data={"service_code": service_code, "description": text, "district": "bukit-bestari"})
    assert r.status_code in (200, 201), r.text
    return r.json()[0]["service_request_id"]


def public_text(api, code: str):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        return c.get(f"/open311/v2/requests/{code}.json").json()[0]["description"]


def item(page, code: str):  # noqa: F811
    return page.locator(f'#pending li[data-complaint-id="{code}"]')


def test_approve_by_keyboard_reject_by_mouse_and_what_the_public_sees(page, api):  # noqa: F811
    hostile = file(api, HOSTILE, "leak", photo=True)
    plain = file(api, PLAIN, "street_light")
    sign_in(page, api)
    page.goto(api.url + "/control-room/moderation")
    expect(page.locator("#who")).to_contain_text(KEY_NAMES["operator"], timeout=5000)
    expect(page.locator("#pending li")).to_have_count(2, timeout=5000)
    expect(page.locator("#mod-count")).to_have_text("2 waiting")
    # the citizen's text as text: the markup is shown, nothing of it runs or becomes an element
    expect(item(page, hostile).locator(".text")).to_have_text(HOSTILE)
    assert item(page, hostile).locator(".text script, .text img").count() == 0
    assert page.evaluate("window.pwned") is None
    expect(item(page, hostile).locator(".meta")).to_contain_text("Leak or burst")
    expect(item(page, hostile).locator(".meta")).to_contain_text("Bukit Bestari")
    thumb = item(page, hostile).locator("img.thumb")
    expect(thumb).to_have_count(1)
    # the photo loaded (a function, not an expression: Playwright evaluates an expression again at each poll,
    # which the page's CSP refuses as eval)
    page.wait_for_function("() => (document.querySelector('img.thumb') || {}).naturalWidth > 0")
    assert item(page, plain).locator("img.thumb").count() == 0
    assert public_text(api, hostile) is None and public_text(api, plain) is None  # nothing public yet

    # keyboard: Tab through the page to the complaint, A approves it
    item(page, hostile).focus()
    page.keyboard.press("a")
    expect(item(page, hostile)).to_have_count(0, timeout=3000)
    expect(page.locator("#mod-count")).to_have_text("1 waiting")
    assert page.evaluate("document.activeElement.dataset.complaintId") == plain  # the next one has the focus
    # mouse: reject the other
    item(page, plain).locator("button.reject").click()
    expect(page.locator("#pending li")).to_have_count(0, timeout=3000)
    expect(page.locator("#no-pending")).to_be_visible()
    assert api.services.complaints.get(hostile).moderation == "approved"
    assert api.services.complaints.get(plain).moderation == "rejected"
    assert api.services.complaints.get(plain).moderated_by == KEY_NAMES["operator"]

    # the citizen's status page: the approved text, escaped; the rejected one stays off
    page.goto(api.url + f"/complaint?code={hostile}")
    expect(page.locator("#t-description")).to_have_text(HOSTILE, timeout=5000)
    assert page.locator("#t-description script, #t-description img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.goto(api.url + f"/complaint?code={plain}")
    expect(page.locator("#t-code")).to_have_text(plain, timeout=5000)
    expect(page.locator("#t-description")).not_to_contain_text("Lampu jalan")
    assert PLAIN not in page.content()
    assert public_text(api, hostile) == HOSTILE and public_text(api, plain) is None


def test_the_queue_updates_by_itself_and_speaks_indonesian(page, api):  # noqa: F811
    sign_in(page, api, "admin")
    page.goto(api.url + "/control-room/moderation")
    expect(page.locator("#no-pending")).to_be_visible(timeout=5000)
    code = file(api, "Air mati sejak pagi", "no_water")
    expect(item(page, code)).to_be_visible(timeout=15000)  # read again every 10 s
    page.select_option("#lang", "id")
    expect(page.locator("#mod-count")).to_have_text("1 menunggu")
    expect(item(page, code).locator("button.approve")).to_have_text("Setujui (tampilkan)")
    expect(item(page, code).locator(".meta")).to_contain_text("Air tidak mengalir")


def test_a_role_that_cannot_moderate_gets_no_queue(page, api):  # noqa: F811
    file(api, "Air mati sejak pagi", "no_water")
    sign_in(page, api, "engineer")
    page.goto(api.url + "/control-room/moderation")
    expect(page.locator("#login-error")).to_contain_text("The role engineer cannot moderate", timeout=5000)
    expect(page.locator("#queue")).to_be_hidden()
    assert page.locator("#pending li").count() == 0


def test_a_hospital_key_is_told_why(page, api):  # noqa: F811
    page.goto(api.url + "/control-room/moderation")
    page.fill("#key", api.keys["hospital"])
    page.click("#login button")
    expect(page.locator("#login-error")).to_contain_text("Could not moderate: this needs the role", timeout=5000)
    expect(page.locator("#queue")).to_be_hidden()
