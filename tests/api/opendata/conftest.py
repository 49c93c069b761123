"""A city with open data to summarise, on the live API, real influxd (readings rolled up by the real rollup
code, as `city rollup` does) and the API's SQLite: a district with k devices of each metric and one with a
single device (below k), complaints with planted personal data, hospital wards."""

import time

import pytest

from api.citizens.complaints import NewComplaint
from api.citizens.hospitals import BedsUpdate, HospitalNew, WardNew
from tests.api.opendata_seed import roll_up, write_readings

MINUTE = 60_000
HOUR = 60 * MINUTE
# planted everywhere a person could be named: none of it may reach a public route or page
PERSONAL = {"first_name": "Siti", "last_name": "Rahmawati-Planted", "email": "siti.planted@example.org",
            "phone": "081234567890", "description": "PLANTED-TEXT my neighbour at Jl. Merdeka 7",
            "address_string": "PLANTED-ADDRESS Jl. Merdeka 7"}
FULL, SPARSE = "bukit-bestari", "tanjungpinang-timur"  # 3 devices of each metric (k = 3); 1 device


def _lines(start: int, end: int) -> tuple[list[str], dict]:
    """Two whole hours [start, end): the policy publishes no hour in progress."""
    lines = []
    minutes = list(range(start, end, MINUTE))
    outage = set(minutes[-15:-5])  # ten minutes without power in FULL: two of three meters at 0 V
    for t in minutes:
        for n in range(3):
            lines.append(f"water,device=wtr-10{n},district={FULL} flow_lps=10.0 {t}")
            volts = 0.0 if t in outage and n < 2 else 229.0
            lines.append(f"power,device=pwr-10{n},district={FULL} voltage_v={volts} {t}")
        lines.append(f"water,device=wtr-200,district={SPARSE} flow_lps=500.0 {t}")
        lines.append(f"power,device=pwr-200,district={SPARSE} voltage_v=0.0 {t}")
    for n, speed in enumerate((20.0, 30.0, 40.0)):
        lines += [f"traffic,device=trf-10{n},district={FULL} speed_kmh={speed} {t}" for t in minutes[-30:]]
    lines += [f"traffic,device=trf-200,district={SPARSE} speed_kmh=3.0 {t}" for t in minutes[-30:]]
    # three meters at 10 L/s for two hours: 216 m³
    return lines, {"supplied_m3": 3 * 10 * 2 * 3600 / 1000, "outage_minutes": len(outage), "last_hour": end - HOUR}


@pytest.fixture
def open_city(api, influx_db):
    """(api, expected figures): readings in the two whole hours before this one."""
    now = int(time.time() * 1000)
    end = now // HOUR * HOUR
    lines, expected = _lines(end - 2 * HOUR, end)
    write_readings(influx_db, lines)
    roll_up(influx_db, end - 2 * HOUR, end)
    store = api.services.complaints
    for n in range(3):  # three today (k): published, one of them answered after three hours
        filed, _ = store.create(NewComplaint(service_code="no_water", district=FULL,
                                             **PERSONAL | {"description": f"PLANTED-TEXT {n}"}),
                                client=f"10.0.0.{n}", t_ms=now - 4 * HOUR + n)
        if n == 0:
            with api.services.db.transaction() as conn:  # the first public answer, three hours after filing
                conn.execute("UPDATE complaints SET status = 'closed', status_notes = 'Pipa sudah diperbaiki',"
                             " answered_ms = ? WHERE id = ?", (now - 4 * HOUR + 3 * HOUR, filed.id))
    hospitals = api.services.hospitals
    hospitals.add(HospitalNew(id="rs-open", name="RS Terbuka", address="Jl. Data 1", lat=0.92, lon=104.45,
                              phone="+62 771 1", type="government"), FULL)
    hospitals.add_ward("rs-open", WardNew(id="rs-open-icu", name="ICU", bed_class="icu", capacity=8))
    hospitals.add_ward("rs-open", WardNew(id="rs-open-k3", name="Kelas 3", bed_class="class_3", capacity=30))
    hospitals.set_beds("rs-open", "rs-open-icu", BedsUpdate(beds_free=3), by="PLANTED-STAFF-NAME")
    hospitals.set_beds("rs-open", "rs-open-k3", BedsUpdate(beds_free=12), by="PLANTED-STAFF-NAME")
    api.services.public.forget("beds")
    return api, expected
