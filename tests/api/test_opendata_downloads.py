"""Open-data downloads on the live API with real influxd: CSV and JSON per local day and month, the disk
cache, and hostile input answered with a clear 4xx, fast, before InfluxDB is asked."""

import csv
import io
import time
from datetime import datetime

import pytest

from tests.api.opendata_seed import HOUR_MS, readings, roll_up, write_readings


@pytest.fixture
def flows(make_api):
    api = make_api(api_public_rate_per_min=100_000)
    now = int(time.time() * 1000)
    start, end = (now // HOUR_MS - 30) * HOUR_MS, (now // HOUR_MS - 1) * HOUR_MS
    lines = [line for n in range(3) for line in readings(
        "water", "flow_lps", f"wtr-{n:04d}", "tanjungpinang-timur", start, end, 900_000, 1.5 * (n + 1))]
    write_readings(api.services.influx, lines)
    roll_up(api.services.influx, start, end)
    return api, start, end


def _local(api, t_ms: int, fmt: str) -> str:
    return datetime.fromtimestamp(t_ms / 1000, api.settings.city.zone).strftime(fmt)


def test_a_month_as_csv_and_json_holds_the_same_rows_and_is_cached(flows):
    api, start, end = flows
    month = _local(api, end - HOUR_MS, "%Y-%m")
    with api.client() as c:
        as_csv = c.get(f"/opendata/download/water-flow_lps/{month}.csv")
        as_json = c.get(f"/opendata/download/water-flow_lps/{month}.json")
        page = c.get("/opendata/datasets/water-flow_lps").json()
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="water-flow_lps_' in as_csv.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    data = as_json.json()
    assert data["dataset"] == "water-flow_lps" and data["period"] == month
    assert len(table) == len(data["data"]) > 0
    assert {(r["time"], float(r["value"]), int(r["devices"])) for r in table} == {
        (r["time"], r["value"], r["devices"]) for r in data["data"]}
    assert all(r["district"] == "tanjungpinang-timur" and r["devices"] == "3" for r in table)
    assert month in page["months"] and page["downloads"][month]["csv"].endswith(f"/{month}.csv")
    cached = list((api.settings.data_dir / "opendata-cache" / "water-flow_lps").glob(f"{month}.*.csv"))
    assert len(cached) == 1 and cached[0].read_bytes() == as_csv.content
    cached[0].write_bytes(b"time\r\nfrom-the-cache\r\n")  # the next answer comes from the file, not InfluxDB
    with api.client() as c:
        assert "from-the-cache" in c.get(f"/opendata/download/water-flow_lps/{month}.csv").text


def test_a_local_day_holds_only_that_day(flows):
    api, start, end = flows
    day = _local(api, end - HOUR_MS, "%Y-%m-%d")
    with api.client() as c:
        answer = c.get(f"/opendata/download/water-flow_lps/{day}.json")
    assert answer.status_code == 200
    rows = answer.json()["data"]
    assert rows and all(_local(api, int(datetime.fromisoformat(r["time"]).timestamp() * 1000), "%Y-%m-%d") == day
                        for r in rows)


def test_a_period_with_nothing_published_is_an_empty_file_not_an_error(flows):
    api, _, _ = flows
    with api.client() as c:
        files = {fmt: c.get(f"/opendata/download/water-flow_lps/2001-01.{fmt}") for fmt in ("csv", "json", "ngsild")}
        unknown = c.get("/opendata/download/no-such-data/2001-01.csv")
    assert {fmt: a.status_code for fmt, a in files.items()} == {"csv": 200, "json": 200, "ngsild": 200}
    assert files["csv"].text.splitlines() == ["time,district,value,min,max,sum,devices,readings"]
    assert files["csv"].headers["content-type"].startswith("text/csv")
    assert files["json"].json() == {"dataset": "water-flow_lps", "period": "2001-01",
                                    "columns": ["time", "district", "value", "min", "max", "sum", "devices",
                                                "readings"], "data": []}
    assert files["ngsild"].json() == []
    assert unknown.status_code == 404  # an unknown dataset stays an error


@pytest.mark.parametrize("path, status, says", [
    ("/opendata/download/no-such-data/2026-11.csv", 404, "no published dataset"),
    ("/opendata/download/building-co2_ppm/2026-11.csv", 404, "no published dataset"),  # closed
    ("/opendata/download/water-flow_lps/2026-13.csv", 422, "period"),
    ("/opendata/download/water-flow_lps/2026-02-30.csv", 404, "not a date"),
    ("/opendata/download/water-flow_lps/1999-12.csv", 422, "period"),
    ("/opendata/download/water-flow_lps/9999-12.csv", 422, "period"),
    ("/opendata/download/water-flow_lps/2098-12.csv", 404, "has not begun"),
    ("/opendata/download/water-flow_lps/2026-1.csv", 422, "period"),
    ("/opendata/download/water-flow_lps/2026-11.xlsx", 422, "fmt"),
    ("/opendata/download/water-flow_lps/2026-11.parquet", 422, "fmt"),
    ("/opendata/download/water-flow_lps/2000-01-01--9999-12-31.csv", 422, "period"),
    ("/opendata/download/" + "x" * 5000 + "/2026-11.csv", 422, "dataset_id"),
    ("/opendata/datasets/../../etc/passwd", 404, ""),
    ("/opendata/datasets/building-occupancy", 404, "no published dataset"),
    ("/api/3/action/package_search?rows=1000000000", 409, "at most 1000"),
    ("/api/3/action/package_list?limit=99999999999999999999", 409, "at most 1000"),
    ("/api/3/action/package_search?start=-1", 409, "natural number"),
    ("/api/3/action/package_search?rows=1.5", 409, "Invalid integer"),
    ("/api/3/action/package_search?rows=%2B5", 409, "Invalid integer"),
    ("/api/3/action/organization_list?all_fields=maybe", 409, "true or false"),
    ("/api/3/action/package_search?q=" + "a" * 5000, 400, "at most 500"),
])
def test_hostile_requests_get_a_clear_4xx_fast(flows, path, status, says):
    api, _, _ = flows
    with api.client() as c:
        c.get("/opendata/datasets")  # a fresh API's first request pays for imports and caches: not timed
        began = time.monotonic()
        answer = c.get(path)
        took = time.monotonic() - began
    assert answer.status_code == status, (path, answer.status_code, answer.text[:300])
    assert says in answer.text
    assert took < 2.0, f"{path}: {took:.2f} s"  # milliseconds on a quiet machine; 2 s with others' tests beside
