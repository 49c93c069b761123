"""Stored district x hour cells (ingest/cells.py) on the live API with real influxd: a cold download read
from the stored cells is byte for byte what summing the hourly rollups at request time gave, a cell below k
is stored (with its device count) but still withheld by the publication policy, and a late reading is in
the download once the rollup ran again."""

import csv
import io
import random
import time
from datetime import datetime

import pytest

from api.opendata.datasets import iso_hour
from ingest import cells
from ingest.rollup import ROLLUP_RP
from telemetry_shared.influx import V1Writer
from tests.api.opendata_seed import HOUR_MS, roll_up, write_readings

FULL, SPARSE = "tanjungpinang-timur", "bukit-bestari"  # 4 devices (k = 3), and 2
DATASETS = ("water-flow_lps", "water-pressure_bar")
FORMATS = ("csv", "json")


def _readings(start: int, end: int) -> list[str]:
    """Uneven values every 10 minutes; the fourth FULL device misses two hours; pressure from two a district."""
    rng = random.Random(20)
    lines = []
    for t in range(start, end, 600_000):
        for n in range(4):
            if n == 3 and start + HOUR_MS <= t < start + 3 * HOUR_MS:
                continue
            pressure = f",pressure_bar={rng.uniform(1, 4)!r}" if n < 2 else ""
            lines.append(f"water,device=wtr-f{n},district={FULL} flow_lps={rng.uniform(0, 90)!r}{pressure} {t}")
        for n in range(2):
            lines.append(f"water,device=wtr-s{n},district={SPARSE} flow_lps={rng.uniform(0, 90)!r},"
                         f"pressure_bar={rng.uniform(1, 4)!r} {t}")
    return lines


def _months(api, start: int, end: int) -> list[str]:
    zone = api.settings.city.zone
    return sorted({datetime.fromtimestamp(t / 1000, zone).strftime("%Y-%m") for t in range(start, end, HOUR_MS)})


def _download(api, months: list[str]) -> dict[tuple[str, str, str], bytes]:
    with api.client() as c:
        answers = {(d, m, f): c.get(f"/opendata/download/{d}/{m}.{f}") for d in DATASETS for m in months
                   for f in FORMATS}
    assert all(a.status_code == 200 for a in answers.values()), {k: a.text[:200] for k, a in answers.items()}
    return {key: a.content for key, a in answers.items()}


def _rows(files: dict, dataset: str) -> list[dict]:
    return [row for (d, _m, f), body in sorted(files.items()) if d == dataset and f == "csv"
            for row in csv.DictReader(io.StringIO(body.decode()))]


def _stored(influx, district: str) -> list[dict]:
    return influx.rows(f'SELECT "flow_lps_devices" FROM "{ROLLUP_RP}"."water_district_1h"'
                       f" WHERE \"district\" = '{district}'")


@pytest.fixture
def city(make_api):
    api = make_api(api_public_rate_per_min=100_000, api_opendata_rate_per_min=100_000,
                   api_public_data_cache_mb=0)  # no file cache: every download is cold
    influx = api.services.influx
    end = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS
    start = end - 6 * HOUR_MS
    write_readings(influx, _readings(start, end))
    roll_up(influx, start, end)
    writer = V1Writer(str(influx.http.base_url), influx.db, rp=ROLLUP_RP)
    yield api, influx, writer, start, end
    writer.close()


def test_a_cold_download_from_the_stored_cells_is_what_summing_the_rollups_gave(city):
    api, influx, writer, start, end = city
    months = _months(api, start, end)
    assert cells.covered_from(influx) == 0  # the rollup run wrote the cells and their coverage mark
    cells.mark(writer, cells.NEVER)  # as before the first run with cells: summed at request time
    summed = _download(api, months)
    cells.mark(writer, 0)
    stored = _download(api, months)
    assert stored == summed  # every byte of every file
    rows = _rows(stored, "water-flow_lps")
    assert len(rows) == 6 and {r["district"] for r in rows} == {FULL}
    assert sorted({r["devices"] for r in rows}) == ["3", "4"]  # the hours the fourth device missed
    assert _rows(stored, "water-pressure_bar") == []  # two devices a district: below k everywhere
    # the cells really are what was read: without the rollups they sum from, the files stay the same
    influx.raw('DROP MEASUREMENT "water_1h"', method="POST")
    assert _download(api, months) == summed
    cells.mark(writer, cells.NEVER)
    assert _rows(_download(api, months), "water-flow_lps") == []


def test_the_first_rollup_run_after_an_upgrade_writes_the_cells_of_the_hours_rolled_up_before(city):
    api, influx, writer, start, end = city
    months = _months(api, start, end)
    expected = _download(api, months)
    influx.raw('DROP MEASUREMENT "water_district_1h"', method="POST")  # rolled up by a release without cells
    influx.raw(f'DROP MEASUREMENT "{cells.MARKER}"', method="POST")
    assert cells.covered_from(influx) == cells.NEVER
    assert _download(api, months) == expected  # summed per request meanwhile
    report = cells.backfill(influx, writer, end)
    assert report["points"] == 6 * 2 and report["from_ms"] == start and cells.covered_from(influx) == 0
    assert _stored(influx, FULL) and _download(api, months) == expected
    assert cells.backfill(influx, writer, end)["points"] == 0  # once


def test_a_cell_below_k_is_stored_but_never_published(city):
    api, influx, writer, start, end = city
    sparse = _stored(influx, SPARSE)
    assert len(sparse) == 6 and {r["flow_lps_devices"] for r in sparse} == {2}  # kept with its count
    files = _download(api, _months(api, start, end))
    assert all(SPARSE.encode() not in body for body in files.values())


def test_a_late_reading_is_in_the_download_once_the_rollup_ran_again(city):
    api, influx, writer, start, end = city
    months = _months(api, start, end)
    before = _rows(_download(api, months), "water-flow_lps")
    late_hour = start + 2 * HOUR_MS  # a third SPARSE device, back online, sends an hour it had kept
    write_readings(influx, [f"water,device=wtr-s9,district={SPARSE} flow_lps=1000.0 {late_hour + m * 60_000}"
                            for m in range(0, 60, 5)])
    roll_up(influx, start, end)  # `city rollup run` re-runs its lookback hours
    after = _download(api, months)
    rows = _rows(after, "water-flow_lps")
    late = [r for r in rows if r["district"] == SPARSE]
    assert len(late) == 1 and late[0]["devices"] == "3" and late[0]["readings"] == str(12 + 2 * 6)
    assert late[0]["time"] == iso_hour(late_hour)
    assert float(late[0]["max"]) == 1000.0 and float(late[0]["value"]) > 1000.0 / 3
    assert [r for r in rows if r["district"] == FULL] == before  # the other cells unchanged
    cells.mark(writer, cells.NEVER)  # and exactly what summing the rollups gives now
    assert _download(api, months) == after
