"""The weekly report's electricity sections on a live API with a real influxd holding a simulated city of
feeders (fleetsim.feeders): losses per feeder as the meters' balance, the meters failing EN 50160 (a planted
frequency hour), the CSV of a section, and a city without feeders saying so."""

import csv
import datetime as dt
import io

import pytest

from analytics.feederloss import feeder_losses
from telemetry_shared.settings import get_settings
from tests.helpers.power_city import make_city, store

WEEK = "2026-W02"  # Monday 2026-01-05


@pytest.fixture
def reported(make_api, shared_influxd, influx_db):
    api = make_api()
    offset = get_settings().city.utc_offset_hours
    monday = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=offset))).timestamp() * 1000)
    # a day before the week (the counters' first difference) and the week; an hour at -2.5 % on Wednesday
    sim = make_city(monday - 86_400_000, 8, feeders=4, customers_per_feeder=(8, 12), seed=6, sag_rate=0.0,
                    frequency_events=[(144 * 3 + 60, 6, -0.025)])
    store(sim, api.services.registry, shared_influxd.url, influx_db.db)
    return api, sim


def test_the_electricity_sections_of_the_weekly_report(reported):
    api, sim = reported
    with api.client("engineer", timeout=300) as http:
        answer = http.get("/reports/weekly", params={"week": WEEK})
        assert answer.status_code == 200, answer.text
        sections = {s["key"]: s for s in answer.json()["sections"]}
        power = sections["power"]
        metered = feeder_losses(sim.transformer_kwh_day[:, 1:], sim.customer_kwh_day[:, 1:], sim.feeder_of)
        assert [r["rank"] for r in power["rows"]] == [1, 2, 3, 4]
        for row in power["rows"]:
            f = sim.feeder_ids.index(row["feeder"])
            assert row["loss_kwh"] == pytest.approx(metered.period_loss_kwh[f], rel=1e-3, abs=0.1)
            assert row["complete_days"] == 7 and list(power["columns"])[0] == "rank"
        failing = sections["power_quality"]["rows"]  # the planted hour: every meter fails the frequency
        assert len(failing) == len(sim.customer_ids) + 4 and all(r["frequency_share_in_band_pct"] < 99.5
                                                                  for r in failing)
        assert sections["tampering"]["notes"] == ["report.tampering.note"]
        sheet = http.get("/reports/weekly.csv", params={"week": WEEK, "section": "power"})
        assert sheet.status_code == 200
        rows = list(csv.DictReader(io.StringIO(sheet.text)))
        assert [r["feeder"] for r in rows] == [r["feeder"] for r in power["rows"]]
        assert http.get("/reports/weekly.csv", params={"week": WEEK, "section": "electricity"}).status_code == 422


def test_a_city_without_feeders_says_so(api):
    with api.client("operator") as http:
        sections = {s["key"]: s for s in http.get("/reports/weekly", params={"week": WEEK}).json()["sections"]}
        assert sections["power"]["rows"] == [] and sections["power"]["notes"] == ["report.power.no_feeders"]
        assert sections["tampering"]["notes"] == ["report.power.no_feeders"]
        assert sections["power_quality"]["rows"] == []
