"""Complaints through Open311 GeoReport v2 on the live API: created with the spec's form post (the
photo as multipart `media`, as Open311 clients send it), read back by a real Open311 client from PyPI
(`georeport`, JSON and XML), every field of the spec; contacts never public and stored sealed; the
description public only after moderation; hostile input refused or escaped; limits and duplicates."""

import io
import sqlite3

import httpx
import pytest
from georeport import GeoReport
from PIL import Image

from tests.api.harness import alert, wait_for

SPEC_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
               "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
               "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}
CONTACT = {"first_name": "Siti", "last_name": "Zxrahma", "email": "siti.zx@example.id", "phone": "0812-7777-4711"}


def photo_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "ZX-CameraMaker"  # Make
    exif[0x8825] = {1: "N", 2: (0.0, 55.0, 7.0)}  # GPS IFD: where the citizen stood
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
def city311(make_api):
    return make_api(api_public_rate_per_min=100_000, api_citizen_per_address_per_hour=50)


def spot(api, slug="bukit-bestari"):
    point = api.settings.city.district(slug).geometry.representative_point()
    return {"lat": str(round(point.y, 6)), "long": str(round(point.x, 6))}


def post(api, fmt="json", files=None, **form):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        return c.post(f"/open311/v2/requests.{fmt}", data=form, files=files)


def test_a_real_open311_client_reads_what_the_spec_post_created(city311):
    api = city311
    client = GeoReport(api.url + "/open311/v2")
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == ["no_water", "low_pressure", "leak", "power_out",
                                                      "street_light", "traffic_light", "flooding", "other"]
    assert set(services[0]) == {"service_code", "service_name", "description", "metadata", "type", "keywords",
                                "group"}
    assert services[0]["metadata"] is False and services[0]["type"] == "realtime"
    r = post(api, service_code="leak", description="Pipa bocor di depan masjid <script>alert(1)</script>",
             address_string="Jl. Ganet", api_key="ignored", **spot(api), **CONTACT,
             files={"media": ("leak.jpg", photo_with_gps(), "image/jpeg")})
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created) == 1 and set(created[0]) == {"service_request_id", "service_notice", "account_id"}
    code = created[0]["service_request_id"]
    assert code.startswith("PGD-") and len(code) == 12
    one = client.get_service_request(code)
    assert set(one) == SPEC_FIELDS
    assert one["status"] == "open" and one["service_code"] == "leak"
    assert one["description"] is None and one["lat"] is None and one["media_url"] is None  # not moderated yet
    assert one["requested_datetime"].endswith("+07:00")  # W3C, the city's local time
    # moderation makes the text, point and photo public
    with api.client("operator") as op:
        assert op.post(f"/complaints/{code}/moderate", json={"approve": True}).status_code == 200
        detail = op.get(f"/complaints/{code}").json()
        assert detail["contact"] == CONTACT  # staff open the sealed contact to call back
    one = client.get_service_request(code)
    assert one["description"] == "Pipa bocor di depan masjid <script>alert(1)</script>"  # JSON data, not markup
    assert one["address"] == "Jl. Ganet" and one["lat"] == pytest.approx(float(spot(api)["lat"]))
    with httpx.Client(timeout=10) as c:
        image = c.get(one["media_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    cleaned = Image.open(io.BytesIO(image.content))
    assert not cleaned.getexif() and b"ZX-CameraMaker" not in image.content  # metadata stripped
    # XML through the same client, and the list
    xml_client = GeoReport(api.url + "/open311/v2", output_format="xml")
    as_xml = xml_client.get_service_request(code)
    assert as_xml["service_request_id"] == code
    assert as_xml["description"] == "Pipa bocor di depan masjid <script>alert(1)</script>"
    with httpx.Client(base_url=api.url) as c:
        raw = c.get(f"/open311/v2/requests/{code}.xml").text
    assert "<script>" not in raw and "&lt;script&gt;" in raw  # escaped in XML
    listed = client.get_service_requests(service_code="leak", status="open")
    assert [r["service_request_id"] for r in listed] == [code]


def test_contacts_never_public_and_stored_sealed(city311):
    api = city311
    code = post(api, service_code="no_water", description="Air mati sejak pagi", district="bukit-bestari",
                **CONTACT).json()[0]["service_request_id"]
    with api.client("operator") as op:
        op.post(f"/complaints/{code}/moderate", json={"approve": True})
    with httpx.Client(base_url=api.url) as c:
        public = c.get("/open311/v2/requests.json").text + c.get(f"/open311/v2/requests/{code}.xml").text
    raw = api.settings.api_db_file.read_bytes()
    wal = api.settings.api_db_file.with_name(api.settings.api_db_file.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    for value in (*CONTACT.values(), "08127777", "zx@example"):
        assert value not in public, value
        assert value.encode() not in raw, f"{value} stored in clear"


def test_hostile_input_is_refused_with_the_spec_errors(city311):
    api = city311
    cases = [
        ({"service_code": "nuclear", "description": "something", "district": "bukit-bestari"}, None, 400),
        ({"service_code": "leak", "description": "x", "district": "bukit-bestari"}, None, 400),
        ({"service_code": "leak", "description": "pipa bocor", "district": "atlantis"}, None, 400),
        ({"service_code": "leak", "description": "pipa bocor", "lat": "nan", "long": "104.4"}, None, 400),
        ({"service_code": "leak", "description": "pipa bocor", "lat": "-6.2", "long": "106.8"}, None, 400),
        ({"service_code": "leak", "description": "pipa bocor " * 182, "district": "bukit-bestari"}, None, 400),
        ({"service_code": "leak", "description": "pipa bocor", "district": "bukit-bestari", "phone": "1" * 31},
         None, 400),  # refused, not cut short
        ({"service_code": "leak", "description": "pipa bocor", "district": "<script>", "lat": "0.92",
          "long": "104.45"}, None, 400),  # a district that is none, even beside a point
        ({"service_code": "leak", "description": "pipa bocor", "district": "bukit-bestari"},
         {"media": ("x.jpg", b"<?php system($_GET['c']); ?>", "image/jpeg")}, 400),  # a fake photo
        ({"service_code": "leak", "description": "pipa bocor", "district": "bukit-bestari"},
         {"media": ("x.gif", _gif(), "image/gif")}, 400),  # a real image of a type we do not take
        ({"service_code": "leak", "description": "pipa bocor", "district": "bukit-bestari"},
         {"media": ("bomb.png", _bomb(), "image/png")}, 413),  # 30,000 x 30,000 pixels in a few KB
    ]
    for form, files, status in cases:
        r = post(api, files=files, **form)
        assert r.status_code == status, (form, r.text)
        body = r.json()
        assert isinstance(body, list) and set(body[0]) == {"code", "description"} and body[0]["code"] == status
    huge = post(api, service_code="leak", description="pipa bocor", district="bukit-bestari",
                files={"media": ("big.jpg", b"\xff\xd8" + b"0" * 6_000_000, "image/jpeg")})
    assert huge.status_code == 413
    xml = post(api, fmt="xml", service_code="nuclear", description="x")
    assert xml.status_code == 400 and xml.text.startswith("<?xml") and "<errors><error><code>400</code>" in xml.text
    with httpx.Client(base_url=api.url) as c:
        assert c.get("/open311/v2/requests/PGD-NOTHERE.json").status_code == 404
        assert c.get("/open311/v2/requests/../../etc.json").status_code == 404
        assert c.get("/open311/v2/requests.json", params={"status": "<x>"}).status_code == 400
        for bad in ({"start_date": ""}, {"end_date": "2026-02-31T00:00:00Z"}, {"service_code": "leak,<x>"},
                    {"service_request_id": "PGD-2345678A, DROP TABLE"}, {"status": "open,"}):
            r = c.get("/open311/v2/requests.json", params=bad)
            assert r.status_code == 400 and r.json()[0]["code"] == 400, (bad, r.text)
    found, total = api.services.complaints.find()
    assert total == 0  # nothing stored from any of it


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "GIF")
    return out.getvalue()


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(out, "PNG", optimize=True)
    return out.getvalue()


def test_floods_duplicates_and_contact_limits(make_api):
    api = make_api(api_citizen_per_address_per_hour=3, api_citizen_per_contact_per_day=2)
    first = post(api, service_code="power_out", description="Listrik padam", district="bukit-bestari")
    again = post(api, service_code="power_out", description="listrik  PADAM!", district="bukit-bestari")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()[0]["service_request_id"] == first.json()[0]["service_request_id"]  # a duplicate
    assert "duplicate" in again.json()[0]["service_notice"]
    statuses = [post(api, service_code="power_out", description=f"Listrik padam nomor {n}",
                     district="bukit-bestari").status_code for n in range(4)]
    assert statuses == [201, 201, 429, 429]  # 3 an hour from one address
    assert api.services.complaints.find()[1] == 3
    other = make_api(api_citizen_per_address_per_hour=50, api_citizen_per_contact_per_day=2)
    statuses = [post(other, service_code="leak", description=f"Pipa bocor nomor {n}", district="bukit-bestari",
                     phone=phone).status_code for n, phone in enumerate(["0812 1111 2222", "+62 812-1111-2222",
                                                                          "6281211112222"])]
    assert statuses == [201, 201, 429]  # one phone number however it is written
    with sqlite3.connect(other.settings.api_db_file) as db:
        hashes = {row[0] for row in db.execute("SELECT contact_hash FROM complaints")}
    assert len(hashes) == 1 and "1111" not in next(iter(hashes))


def test_a_complaint_links_to_the_open_incident_and_its_resolution_answers_it(city311, analytics):
    api = city311
    analytics.publish(alert("inc-leak", district="bukit-bestari"))  # a water incident in bukit-bestari
    wait_for(lambda: api.services.alerts.store.find()[1] == 1)
    code = post(api, service_code="low_pressure", description="Air kecil sekali",
                district="bukit-bestari").json()[0]["service_request_id"]
    unrelated = post(api, service_code="street_light", description="Lampu jalan mati",
                     district="bukit-bestari").json()[0]["service_request_id"]
    elsewhere = post(api, service_code="no_water", description="Air mati total",
                     district="tanjungpinang-kota").json()[0]["service_request_id"]
    with api.client("operator") as op:
        board = op.get("/alerts/inc-leak").json()["alert"]
        assert board["citizen_reports"] == 1
        texts = op.get("/complaints", params={"alert_id": "inc-leak"}).json()
        assert [c["description"] for c in texts["data"]] == ["Air kecil sekali"]
        # by hand: link the one from elsewhere, unlink it again; both in the incident's audit trail
        assert op.put(f"/complaints/{elsewhere}/link", json={"alert_id": "inc-leak"}).json()["citizen_reports"] == 2
        assert op.delete(f"/complaints/{elsewhere}/link").status_code == 204
        assert op.delete(f"/complaints/{elsewhere}/link").status_code == 404
        actions = [(a["actor"], a["action"]) for a in op.get("/alerts/inc-leak").json()["audit"]]
        assert ("citizen-linker", "complaint_linked") in actions
        assert ("operator-ana", "complaint_linked") in actions and ("operator-ana", "complaint_unlinked") in actions
        r = op.post("/alerts/inc-leak/resolve", json={"note": "valve 12 replaced, crew 3",
                                                      "public_note": "Pipa sudah diperbaiki. Terima kasih."})
        assert r.status_code == 200
    client = GeoReport(api.url + "/open311/v2")
    answered = client.get_service_request(code)
    assert (answered["status"], answered["status_notes"]) == ("closed", "Pipa sudah diperbaiki. Terima kasih.")
    assert client.get_service_request(unrelated)["status"] == "open"
    assert "valve 12" not in str(client.get_service_requests())  # the staff note is not the public answer


def test_three_unmatched_reports_in_30_minutes_raise_a_citizen_alert(city311):
    api = city311
    codes = [post(api, service_code="flooding", description=f"Banjir di jalan nomor {n}",
                  district="tanjungpinang-timur").json()[0]["service_request_id"] for n in range(3)]
    found, total = api.services.alerts.store.find()
    assert total == 1
    raised = found[0]
    assert (raised.rule, raised.kind, raised.district, raised.citizen_reports) == \
        ("citizen_reported", "water", "tanjungpinang-timur", 3)
    assert {c.id for c in api.services.complaints.find(alert_id=raised.id)[0]} == set(codes)
    # a fourth joins the same alert instead of raising another
    post(api, service_code="flooding", description="Banjir lagi", district="tanjungpinang-timur")
    found, total = api.services.alerts.store.find()
    assert total == 1 and found[0].citizen_reports == 4


def test_production_refuses_to_start_without_a_contact_key():
    from api.citizens.protect import ContactVault

    for weak in ("", "short-secret"):
        with pytest.raises(ValueError, match="CITY_API_CITIZEN_CONTACT_KEY must be set in production"):
            ContactVault(weak, production=True)
    vault = ContactVault("x" * 32, production=True)
    sealed = vault.seal({"phone": "0812"}, "PGD-AAAAAAAA")
    assert vault.open(sealed, "PGD-AAAAAAAA") == {"phone": "0812"}
    with pytest.raises(Exception):  # noqa: B017 - a sealed contact moved to another complaint does not open
        vault.open(sealed, "PGD-BBBBBBBB")
    with pytest.raises(Exception):  # noqa: B017 - nor under another key
        ContactVault("y" * 32).open(sealed, "PGD-AAAAAAAA")


def test_a_sensor_incident_takes_over_a_citizen_reported_alert(city311, analytics):
    api = city311
    codes = [post(api, service_code="no_water", description=f"Air mati di gang {n}",
                  district="bukit-bestari").json()[0]["service_request_id"] for n in range(3)]
    (cluster,), _ = api.services.alerts.store.find()
    assert cluster.citizen_reports == 3
    analytics.publish(alert("inc-later", district="bukit-bestari"))  # the sensors see it a little later
    wait_for(lambda: api.services.alerts.store.get("inc-later").citizen_reports == 3 if
             api.services.alerts.store.find()[1] == 2 else False)
    assert api.services.alerts.store.get(cluster.id).citizen_reports == 0
    assert {c.id for c in api.services.complaints.find(alert_id="inc-later")[0]} == set(codes)
    moved = [a for a in api.services.alerts.store.audit(cluster.id) if a.action == "complaint_unlinked"]
    assert len(moved) == 3 and moved[0].detail["moved_to"] == "inc-later"
