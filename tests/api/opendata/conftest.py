"""A city with open data to summarise, on the live API, real influxd and the API's SQLite: districts with
enough devices (k) and one without, complaints with planted personal data, hospital wards."""

import time

import pytest

from api.citizens.complaints import NewComplaint
from api.citizens.hospitals import BedsUpdate, HospitalNew, WardNew
from api.routes.public import day_start_ms
from telemetry_shared.influx import V1Writer

MINUTE = 60_000
# planted everywhere a person could be named: none of it may reach a public route or page
PERSONAL = {"first_name": "Siti", "last_name": "Rahmawati-Planted", "email": "siti.planted@example.org",
            "phone": "081234567890", "description": "PLANTED-TEXT my neighbour at Jl. Merdeka 7",
            "address_string": "PLANTED-ADDRESS Jl. Merdeka 7"}
FULL, SPARSE = "bukit-bestari", "tanjungpinang-timur"  # 3 devices each metric; 1 device (below k)


def _lines(now: int, first: int) -> tuple[list[str], dict]:
    lines = []
    minutes = list(range(first, now, MINUTE))
    for t in minutes:
        for n in range(3):
            lines.append(f"water,device=wtr-10{n},district={FULL} flow_lps=10.0 {t}")
        lines.append(f"water,device=wtr-200,district={SPARSE} flow_lps=500.0 {t}")
    outage = set(minutes[-15:-5])  # ten minutes without power in FULL: two of three meters at 0 V
    for t in minutes:
        for n in range(3):
            volts = 0.0 if t in outage and n < 2 else 229.0
            lines.append(f"power,device=pwr-10{n},district={FULL} voltage_v={volts} {t}")
        lines.append(f"power,device=pwr-200,district={SPARSE} voltage_v=0.0 {t}")
    for n, speed in enumerate((20.0, 30.0, 40.0)):
        lines.append(f"traffic,device=trf-10{n},district={FULL} speed_kmh={speed} {now - 2 * MINUTE}")
    lines.append(f"traffic,device=trf-200,district={SPARSE} speed_kmh=3.0 {now - 2 * MINUTE}")
    supplied_m3 = 3 * 10 * (minutes[-1] - minutes[0]) / 1000 / 1000
    return lines, {"supplied_m3": supplied_m3, "outage_minutes": len(outage)}


@pytest.fixture
def open_city(api, influx_db):
    """(api, expected figures)."""
    now = int(time.time() * 1000)
    first = max(day_start_ms(api.services, now), now - 40 * MINUTE)
    if now - first < 20 * MINUTE:  # just after local midnight: wait for enough of today
        pytest.skip("too close to local midnight for today's figures")  # pragma: no cover
    lines, expected = _lines(now, first)
    writer = V1Writer(str(influx_db.http.base_url), influx_db.db)
    writer.write(lines)
    writer.close()
    store = api.services.complaints
    answered, _ = store.create(NewComplaint(service_code="no_water", district=FULL, **PERSONAL), client="10.0.0.1",
                               t_ms=now - 3 * 3_600_000)
    store.answer(answered.id, "closed", "Pipa sudah diperbaiki")
    store.create(NewComplaint(service_code="power_out", district=SPARSE, **PERSONAL | {"description": "PLANTED-2"}),
                 client="10.0.0.2", t_ms=now - 60_000)
    hospitals = api.services.hospitals
    hospitals.add(HospitalNew(id="rs-open", name="RS Terbuka", address="Jl. Data 1", lat=0.92, lon=104.45,
                              phone="+62 771 1", type="government"), FULL)
    hospitals.add_ward("rs-open", WardNew(id="rs-open-icu", name="ICU", bed_class="icu", capacity=8))
    hospitals.add_ward("rs-open", WardNew(id="rs-open-k3", name="Kelas 3", bed_class="class_3", capacity=30))
    hospitals.set_beds("rs-open", "rs-open-icu", BedsUpdate(beds_free=3), by="PLANTED-STAFF-NAME")
    hospitals.set_beds("rs-open", "rs-open-k3", BedsUpdate(beds_free=12), by="PLANTED-STAFF-NAME")
    api.services.public.forget("beds")
    return api, expected
