"""The weekly report on a live API with a real influxd holding a simulated water network: the water section
ranks the DMAs with the leakage the simulator put in (+-10 %), the CSV has the same rows, a week that does
not exist is refused, and the page is served with its texts in the catalogues."""

import csv
import datetime as dt
import io

import numpy as np
import pytest
from fleetsim import waternet

from api.reports import weekly
from telemetry_shared.settings import get_settings
from tests.cli.test_water_balance_cli import store

WEEK = "2026-W02"  # Monday 2026-01-05


@pytest.fixture
def reported(make_api, shared_influxd, influx_db):
    api = make_api()
    offset = get_settings().utc_offset_hours or 0
    start = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=offset))).timestamp() * 1000)
    net = waternet.plan(3, 150, 8, seed=5, start_ms=start, utc_offset_h=offset)
    data = store(net, api.services.registry, shared_influxd.url, influx_db.db, days=8)
    return api, net, data


def test_the_water_section_ranks_dmas_with_the_simulated_leakage(reported):
    api, net, data = reported
    with api.client("engineer", timeout=60) as http:
        answer = http.get("/reports/weekly", params={"week": WEEK})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        [water] = [s for s in body["sections"] if s["key"] == "water"]
        truth = data.truth_leak_lps[:, : 7 * net.samples_per_day].mean(axis=1) * 86.4
        assert [row["dma"] for row in water["rows"]][0] == net.dma_ids[int(np.argmax(truth))]
        for row in water["rows"]:
            assert row["leakage_m3_per_day"] == pytest.approx(truth[net.dma_ids.index(row["dma"])], rel=0.10)
            assert row["days"] == 7
        sheet = http.get("/reports/weekly.csv", params={"week": WEEK, "section": "water"})
        assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(sheet.text)))
        assert [r["dma"] for r in rows] == [r["dma"] for r in water["rows"]] and list(rows[0]) == water["columns"]
        assert http.get("/reports/weekly", params={"week": "2025-W53"}).status_code == 409  # 2025 has 52 weeks
        assert http.get("/reports/weekly", params={"week": "2026-02"}).status_code == 422
        assert http.get("/reports/weekly", params={"week": "0000-W01"}).status_code == 422
        assert http.get("/reports/weekly.csv", params={"week": WEEK, "section": "gas"}).status_code == 422
    with api.client() as anonymous:
        assert anonymous.get("/reports/weekly", params={"week": WEEK}).status_code == 401
        page = anonymous.get("/control-room/report")
        assert page.status_code == 200 and 'data-i18n="report.heading"' in page.text


def test_a_city_without_dmas_says_so(api):
    with api.client("operator") as http:
        sections = http.get("/reports/weekly", params={"week": WEEK}).json()["sections"]
        [water] = [s for s in sections if s["key"] == "water"]  # the electricity sections follow it
        assert water["rows"] == [] and water["notes"] == ["report.water.no_dmas"]


def test_sections_come_from_one_list():
    assert [s.key for s in weekly.SECTIONS][0] == "water"
    assert all(s.title.startswith("report.") and s.columns for s in weekly.SECTIONS)
