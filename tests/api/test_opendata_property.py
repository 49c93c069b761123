"""A property test over the publication policy (hypothesis): for any open_data section of the city profile
(every mode for any metric, any k, any delay, defaults for the metrics it leaves out), every open route and
file (the dataset list and pages, the DCAT catalogue, the CKAN actions, CSV and JSON of every month and a
day of every open dataset) shows nothing closed, no aggregated cell below k, no raw reading before its
delay, and none of the personal data planted everywhere: registry notes and positions, device ids,
complaint contacts, texts and addresses, hospital staff names and key names.

One live API on real influxd; each example rewrites the profile file, which the API reads again on its
next request (telemetry_shared.city.cached_profile), so the policy changes between requests as an
operator's edit would; the download cache stays on, so a file cached under one policy must not leak
under the next."""

import csv
import io
import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.citizens.complaints import NewComplaint
from api.citizens.hospitals import BedsUpdate, HospitalNew, WardNew
from edge import contract
from telemetry_shared.registry import DeviceNew
from tests.api.opendata_seed import HOUR_MS, roll_up, write_readings

PROFILE = Path(__file__).resolve().parents[2] / "cities" / "tanjungpinang.yaml"
DEVICES = {"bukit-bestari": 4, "tanjungpinang-kota": 2, "tanjungpinang-barat": 3, "tanjungpinang-timur": 1}
PREFIX = {"water": "wtr", "power": "pwr", "building": "bld", "traffic": "trf"}
PUBLIC_NAME = "Menara Air Publik"
PLANTED = ["zx-note gate code 4711", "0.9187654321", "Zxsiti", "Zxrahma", "zx-citizen@example.id", "0812 9999 0001",
           "zx complaint text about my neighbour", "Jl. Zx Rahasia 7", "zx-staff-nurse", "zx hospital key owner"]
METRIC_KEYS = [f"{kind}.{metric}" for kind, metrics in contract.KINDS.items() for metric in metrics]
DEFAULT_CLOSED = {"building.occupancy", "building.co2_ppm"}


def _device(kind: str, district: str, n: int) -> str:
    return f"{PREFIX[kind]}-zx{list(DEVICES).index(district)}{n}"


@pytest.fixture
def planted(make_api, tmp_path):
    profile = tmp_path / "city.yaml"
    profile.write_text(PROFILE.read_text(encoding="utf-8").split("\nopen_data:")[0], encoding="utf-8")
    api = make_api(profile=profile, api_public_rate_per_min=10_000_000,
                   api_opendata_rate_per_min=10_000_000)
    now = int(time.time() * 1000)
    first = (now // HOUR_MS - 6) * HOUR_MS
    times = [now - 50 * HOUR_MS, now - 30 * HOUR_MS, *range(first, now, 20 * 60_000)]
    registry, lines = api.services.registry, []
    for kind, metrics in contract.KINDS.items():
        for district, count in DEVICES.items():
            for n in range(count):
                device = _device(kind, district, n)
                registry.add(DeviceNew(id=device, kind=kind, district=district, lat=float(PLANTED[1]), lon=104.45,
                                       note=PLANTED[0]))
                fields = ",".join(f"{m}={1.0 + n}" for m in metrics)
                lines += [f"{kind},device={device},district={district} {fields},seq={i}i {t}"
                          for i, t in enumerate(times)]
    registry.update(_device("water", "bukit-bestari", 0), public_name=PUBLIC_NAME)  # public by design
    write_readings(api.services.influx, lines)
    roll_up(api.services.influx, now - 52 * HOUR_MS, now)
    for n in range(5):  # 4 leak complaints in one district, 1 in another, every personal field planted
        district = "bukit-bestari" if n < 4 else "tanjungpinang-kota"
        api.services.complaints.create(NewComplaint(
            service_code="leak", district=district, description=f"{PLANTED[6]} {n}", address_string=PLANTED[7],
            first_name=PLANTED[2], last_name=PLANTED[3], email=PLANTED[4], phone=PLANTED[5]),
            client=f"10.9.0.{n}", t_ms=now - 3 * HOUR_MS)
    hospitals = api.services.hospitals
    spot = api.settings.city.district("bukit-bestari").geometry.representative_point()
    hospitals.add(HospitalNew(id="rs-zx", name="RS Umum", address="Jl. Umum 1", lat=spot.y, lon=spot.x,
                              phone="+62 771 1", type="government"), "bukit-bestari")
    hospitals.add_ward("rs-zx", WardNew(id="rs-zx-icu", name="ICU", bed_class="icu", capacity=4))
    hospitals.set_beds("rs-zx", "rs-zx-icu", BedsUpdate(beds_free=2), PLANTED[8])
    api.services.keys.create(PLANTED[9], "hospital")
    return api, profile


RULES = st.fixed_dictionaries({"mode": st.sampled_from(["raw", "aggregated", "closed"])},
                              optional={"k": st.integers(2, 6), "delay_hours": st.sampled_from([0, 6, 24, 40, 60])})
POLICIES = st.fixed_dictionaries({"k": st.integers(2, 6), "raw_delay_hours": st.sampled_from([0, 6, 24, 40, 60]),
                                  "metrics": st.dictionaries(st.sampled_from(METRIC_KEYS), RULES)})


def _expected(section: dict) -> dict[str, tuple[str, int, int]]:
    """dataset id -> (mode, k, delay_hours), as the policy should read the section."""
    out = {}
    for key in METRIC_KEYS:
        rule = section["metrics"].get(key, {})
        mode = rule.get("mode", "closed" if key in DEFAULT_CLOSED else "aggregated")
        out[key.replace(".", "-", 1)] = (mode, rule.get("k", section["k"]), rule.get("delay_hours",
                                                                                    section["raw_delay_hours"]))
    out["complaints-daily"] = ("aggregated", section["k"], 0)
    return out


def _rows(answer, fmt: str) -> list[dict]:
    if fmt == "json":
        return answer.json()["data"]
    return list(csv.DictReader(io.StringIO(answer.text)))


def _check_rows(dataset: str, rule: tuple[str, int, int], rows: list[dict], asked_at_ms: int) -> None:
    mode, k, delay_h = rule
    for row in rows:
        if dataset == "complaints-daily":
            assert int(row["received"]) >= k, (dataset, row)
        elif mode == "aggregated":
            devices = int(row["devices"])
            assert devices >= k and devices == DEVICES[row["district"]], (dataset, k, row)
            assert _ms(row["time"]) + HOUR_MS <= asked_at_ms + 1000, ("a cell not yet complete", dataset, row)
        else:
            assert _ms(row["time"]) < asked_at_ms + 1000 - delay_h * HOUR_MS, (dataset, delay_h, row)
            assert row["sensor"] in ("", PUBLIC_NAME), row


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# no shrinking: each example is ~100 requests to a live API; the failing policy is printed as it is
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(section=POLICIES)
def test_no_route_or_file_shows_what_the_policy_closes(planted, section):
    api, profile = planted
    text = profile.read_text(encoding="utf-8").split("\nopen_data:")[0]
    profile.write_text(text + "\nopen_data: " + json.dumps(section) + "\n", encoding="utf-8")
    expected = _expected(section)
    open_ids = {d for d, rule in expected.items() if rule[0] != "closed"}
    seen: list[str] = []
    with api.client() as c:
        def get(path: str, *ok: int):
            answer = c.get(path)
            assert answer.status_code in (ok or (200,)), (path, answer.status_code, answer.text[:300])
            seen.append(answer.text)
            return answer

        listed = get("/opendata/datasets").json()["data"]
        assert {d["id"] for d in listed} == open_ids
        assert set(get("/api/3/action/package_list").json()["result"]) == open_ids
        search = get("/api/3/action/package_search?rows=1000").json()["result"]
        assert {p["name"] for p in search["results"]} == open_ids
        get("/api/3/action/current_package_list_with_resources")
        catalog = get("/opendata/catalog.jsonld").json()
        assert {d["dct:identifier"] for d in catalog["dcat:dataset"]} == open_ids
        zone = api.settings.city.zone
        month = datetime.now(zone).strftime("%Y-%m")
        for dataset, rule in expected.items():
            if rule[0] == "closed":
                get(f"/opendata/datasets/{dataset}", 404)
                get(f"/api/3/action/package_show?id={dataset}", 404)
                get(f"/opendata/download/{dataset}/{month}.csv", 404)
                continue
            page = get(f"/opendata/datasets/{dataset}").json()
            assert page["mode"] == rule[0]
            get(f"/api/3/action/package_show?id={dataset}")
            periods = page["months"] + [datetime.fromtimestamp(time.time() - 7200, zone).strftime("%Y-%m-%d")]
            for period in periods:
                for fmt in ("csv", "json"):
                    asked_at = int(time.time() * 1000)
                    answer = get(f"/opendata/download/{dataset}/{period}.{fmt}", 200, 404)
                    if answer.status_code == 200:
                        rows = _rows(answer, fmt)
                        _check_rows(dataset, rule, rows, asked_at)
                        if rule[0] == "aggregated" and rule[1] <= 4 and len(period) == 7:
                            assert rows, f"{dataset} {period}: the control, 4 devices report in bukit-bestari"
    everything = "\n".join(seen)
    for secret in PLANTED:
        assert secret not in everything, f"planted {secret!r} was published"
    assert not re.search(r"(wtr|pwr|bld|trf)-zx", everything), "a device id was published"
