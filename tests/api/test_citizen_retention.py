"""Citizens' data on the live API: photos and closed complaints' contacts deleted after their retention
(CITY_API_CITIZEN_PHOTO_KEEP_DAYS, CITY_API_CITIZEN_CONTACT_KEEP_DAYS), gone from the public route, the
operator's view and the database file; the contact key rotated (a new key seals, former keys still open,
`city citizens rekey` moves every contact to the new key) without losing a contact or the per-contact limit."""

import json
import time

from typer.testing import CliRunner

from telemetry_cli.main import app
from tests.api.test_open311 import CONTACT, photo_with_gps, post

KEY_1 = "first-contact-key-0123456789-abcdefghij"
KEY_2 = "second-contact-key-9876543210-zyxwvutsrq"
KEEP_S = 10.0
runner = CliRunner()


def citizens(api, *args: str, key: str = KEY_2, old: str = KEY_1):
    env = {"CITY_API_DB_PATH": str(api.settings.api_db_file), "CITY_API_CITIZEN_CONTACT_KEY": key,
           "CITY_API_CITIZEN_CONTACT_OLD_KEYS": old}
    return runner.invoke(app, ["citizens", *args], env=env)


def file_one(api, description: str, **extra) -> str:
    r = post(api, service_code="leak", description=description, district="bukit-bestari", **extra)
    assert r.status_code == 201, r.text
    return r.json()[0]["service_request_id"]


def raw_db(api) -> bytes:
    path = api.settings.api_db_file
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_photos_and_closed_contacts_expire(make_api):
    # retention of 10 s, so the test need not wait days; the API checks at start and hourly,
    # the test asks for the check itself (as the hourly task does)
    api = make_api(api_public_rate_per_min=100_000, api_citizen_photo_keep_days=KEEP_S / 86_400,
                   api_citizen_contact_keep_days=KEEP_S / 86_400)
    closed = file_one(api, "Pipa bocor di Jalan Ganet", files={"media": ("a.jpg", photo_with_gps(), "image/jpeg")},
                      **CONTACT)
    still_open = file_one(api, "Air merembes dari trotoar", phone="0813 5555 1234")
    with api.client("operator") as op:
        assert op.post(f"/complaints/{closed}/moderate", json={"approve": True}).status_code == 200
        assert op.post(f"/complaints/{closed}/answer", json={"status": "closed", "notes": "Sudah diperbaiki"}
                       ).status_code == 200
        with api.client() as public:
            photo = public.get(f"/public/complaints/{closed}/photo.jpg")
            assert photo.status_code == 200
        assert op.get(f"/complaints/{closed}").json()["contact"] == CONTACT
        assert api.services.expire_citizen_data() == (0, 0)  # nothing is old enough yet
        time.sleep(KEEP_S + 0.5)
        assert api.services.expire_citizen_data() == (1, 1)
        with api.client() as public:
            assert public.get(f"/public/complaints/{closed}/photo.jpg").status_code == 404
            request = public.get(f"/open311/v2/requests/{closed}.json").json()[0]
        assert request["media_url"] is None and request["status_notes"] == "Sudah diperbaiki"  # the rest stays
        assert op.get(f"/complaints/{closed}").json()["contact"] == {}
        assert op.get(f"/complaints/{closed}/photo").status_code == 404
        assert op.get(f"/complaints/{still_open}").json()["contact"] == {"phone": "0813 5555 1234"}  # still open
    assert photo.content[200:400] not in raw_db(api)  # overwritten, not left in a free page
    assert api.services.expire_citizen_data() == (0, 0)


def test_expire_command(make_api):
    api = make_api(api_public_rate_per_min=100_000)
    file_one(api, "Pipa bocor di Jalan Ganet", files={"media": ("a.jpg", photo_with_gps(), "image/jpeg")})
    done = citizens(api, "expire", "--json", key=KEY_1, old="")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"photos": 0, "contacts": 0}  # 90 and 30 days by default
    table = citizens(api, "expire", key=KEY_1, old="")
    assert table.exit_code == 0 and "photos deleted" in table.output


def test_contact_key_rotation(make_api):
    api = make_api(api_public_rate_per_min=100_000, api_citizen_contact_key=KEY_1,
                   api_citizen_per_contact_per_day=2)
    first = file_one(api, "Air mati sejak pagi", **CONTACT)
    db = {"api_db_path": api.settings.api_db_file}
    # the new key seals, the former one still opens what it sealed
    rotated = make_api(api_public_rate_per_min=100_000, api_citizen_contact_key=KEY_2,
                       api_citizen_contact_old_keys=KEY_1, api_citizen_per_contact_per_day=2, **db)
    second = file_one(rotated, "Tekanan air lemah sekali", phone="0812 9999 0000")
    with rotated.client("operator") as op:
        assert op.get(f"/complaints/{first}").json()["contact"] == CONTACT
        assert op.get(f"/complaints/{second}").json()["contact"] == {"phone": "0812 9999 0000"}
    with api.client("operator") as op:  # the former key alone cannot open what the new one sealed
        assert op.get(f"/complaints/{second}").json()["contact"] == {}
    # a former key missing: the command says so and fails, nothing is changed
    missing = citizens(rotated, "rekey", "--json", old="")
    assert missing.exit_code == 1 and '"unreadable": 1' in missing.output and "no key opens" in missing.output
    moved = citizens(rotated, "rekey", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.output) == {"resealed": 1, "current": 1, "unreadable": 0}
    again = citizens(rotated, "rekey", "--json")
    assert json.loads(again.output) == {"resealed": 0, "current": 2, "unreadable": 0}
    assert "Zxrahma" not in citizens(rotated, "rekey").output  # a table of counts, never a contact
    # the new key alone opens every contact now; the per-contact limit still counts the first complaint
    alone = make_api(api_public_rate_per_min=100_000, api_citizen_contact_key=KEY_2,
                     api_citizen_per_contact_per_day=2, **db)
    with alone.client("operator") as op:
        assert op.get(f"/complaints/{first}").json()["contact"] == CONTACT
    assert post(alone, service_code="leak", description="Pipa bocor lagi", district="bukit-bestari",
                **CONTACT).status_code == 201
    limited = post(alone, service_code="leak", description="Pipa bocor ketiga", district="bukit-bestari", **CONTACT)
    assert limited.status_code == 429  # 2 a day: the first (re-hashed under the new key) counted
    assert b"Zxrahma" not in raw_db(alone) and KEY_1.encode() not in raw_db(alone)
