"""The publication policy and the dataset registry (api/opendata/policy.py, datasets.py) on a live API
with real influxd: what each mode publishes, and what it never does."""

import time
from datetime import datetime
from pathlib import Path

import pytest

from api.citizens.complaints import NewComplaint
from api.opendata import datasets, policy
from telemetry_shared.city import ProfileError, load_profile
from tests.api.opendata_seed import HOUR_MS, readings, roll_up, write_readings

PROFILE = Path(__file__).resolve().parents[2] / "cities" / "tanjungpinang.yaml"


def _profile_with(tmp_path: Path, open_data: str) -> Path:
    text = PROFILE.read_text(encoding="utf-8").split("\nopen_data:")[0]
    path = tmp_path / "city.yaml"
    path.write_text(text + open_data, encoding="utf-8")
    return path


def test_a_profile_without_open_data_protects_by_default(tmp_path):
    profile = load_profile(_profile_with(tmp_path, ""))
    assert policy.policy_for(profile, "building", "occupancy").mode == "closed"
    assert policy.policy_for(profile, "building", "co2_ppm").mode == "closed"
    for kind, metric in (("building", "temperature_c"), ("water", "flow_lps"), ("traffic", "speed_kmh")):
        rule = policy.policy_for(profile, kind, metric)
        assert (rule.mode, rule.k) == ("aggregated", 3)
    ids = {d.id for d in datasets.open_datasets(profile)}
    assert "building-co2_ppm" not in ids and "building-occupancy" not in ids
    assert "water-flow_lps" in ids and datasets.COMPLAINTS_ID in ids
    with pytest.raises(policy.Closed):
        datasets.get(profile, "building-occupancy")
    with pytest.raises(datasets.UnknownDataset):
        datasets.get(profile, "water-nothing")


@pytest.mark.parametrize("section, says", [
    ("\nopen_data:\n  metrics:\n    water.nothing: {mode: raw}\n", "open_data.metrics: 'water.nothing' is not"),
    ("\nopen_data:\n  metrics:\n    water.flow_lps: {mode: public}\n", "open_data.metrics.water.flow_lps.mode"),
    ("\nopen_data:\n  k: 1\n", "open_data.k"),
    ("\nopen_data:\n  secret: 1\n", "open_data.secret"),
])
def test_a_bad_open_data_section_refuses_the_profile_naming_the_field(tmp_path, section, says):
    with pytest.raises(ProfileError) as caught:
        load_profile(_profile_with(tmp_path, section))
    assert says in str(caught.value)
    assert "city.yaml:" in str(caught.value)


def _hour(now_ms: int, back: int) -> int:
    return (now_ms // HOUR_MS - back) * HOUR_MS


def test_aggregated_cells_need_k_devices_and_never_name_one(api):
    influx = api.services.influx
    now = int(time.time() * 1000)
    start, end = _hour(now, 5), _hour(now, 2)
    lines = []
    for n in range(4):  # bukit-bestari: 4 devices, values 10, 20, 30, 40
        lines += readings("water", "flow_lps", f"wtr-a{n:03d}", "bukit-bestari", start, end, 600_000, 10.0 * (n + 1))
    for n in range(2):  # tanjungpinang-kota: 2 devices, below k = 3
        lines += readings("water", "flow_lps", f"wtr-b{n:03d}", "tanjungpinang-kota", start, end, 600_000, 5.0)
    write_readings(influx, lines)
    roll_up(influx, start, end)
    dataset = datasets.get(api.settings.city, "water-flow_lps")
    got = list(datasets.rows(api.services, dataset, start - HOUR_MS, now))
    assert [r["district"] for r in got] == ["bukit-bestari"] * 3
    for row in got:
        assert tuple(row) == datasets.AGGREGATED_COLUMNS
        assert (row["value"], row["min"], row["max"], row["sum"], row["devices"], row["readings"]) == (
            25.0, 10.0, 40.0, 100.0, 4, 24)
    assert got[0]["time"].endswith(":00:00Z")
    assert "wtr-" not in repr(got)


def test_the_hour_in_progress_is_never_published(api):
    influx = api.services.influx
    now = int(time.time() * 1000)
    start = _hour(now, 0)
    write_readings(influx, [line for n in range(4) for line in readings(
        "traffic", "speed_kmh", f"trf-{n:04d}", "bukit-bestari", start, now, 60_000, 30.0)])
    roll_up(influx, start, start + HOUR_MS)
    dataset = datasets.get(api.settings.city, "traffic-speed_kmh")
    assert list(datasets.rows(api.services, dataset, start - HOUR_MS, now + HOUR_MS)) == []


def test_raw_readings_wait_their_delay_and_show_only_a_public_name(api):
    from telemetry_shared.registry import DeviceNew

    influx = api.services.influx
    registry = api.services.registry
    registry.add(DeviceNew(id="wtr-r001", kind="water", district="bukit-bestari", note="PRIVATE-NOTE"))
    registry.update("wtr-r001", public_name="Reservoir Hill")
    registry.add(DeviceNew(id="wtr-r002", kind="water", district="bukit-bestari", note="PRIVATE-NOTE"))
    now = int(time.time() * 1000)
    old, fresh = now - 30 * HOUR_MS, now - HOUR_MS  # the profile publishes water.level_m 24 h late
    write_readings(influx, [f"water,device=wtr-r001,district=bukit-bestari level_m=3.5,seq=1i {old}",
                            f"water,device=wtr-r002,district=bukit-bestari level_m=4.5,seq=1i {old + 1000}",
                            f"water,device=wtr-r001,district=bukit-bestari level_m=3.6,seq=2i {fresh}"])
    dataset = datasets.get(api.settings.city, "water-level_m")
    assert dataset.policy.mode == "raw"
    got = list(datasets.rows(api.services, dataset, now - 48 * HOUR_MS, now))
    assert [(r["sensor"], r["value"]) for r in got] == [("Reservoir Hill", 3.5), ("", 4.5)]
    assert all(tuple(r) == datasets.RAW_COLUMNS for r in got)
    assert "wtr-" not in repr(got) and "PRIVATE" not in repr(got)


def test_complaints_are_counts_of_at_least_k_without_any_personal_data(api):
    store = api.services.complaints
    now = int(time.time() * 1000)
    ids = []
    for n in range(3):
        complaint, _ = store.create(NewComplaint(
            service_code="leak", district="bukit-bestari", description=f"PRIVATE-TEXT pipe {n} at my house",
            address_string="PRIVATE-ADDRESS", first_name="PRIVATE-NAME", email=f"p{n}@private.example",
            phone="0812000000"), client=f"10.0.0.{n}", t_ms=now - 3 * HOUR_MS)
        ids.append(complaint.id)
    store.create(NewComplaint(service_code="no_water", district="bukit-bestari", description="PRIVATE-TEXT dry"),
                 client="10.0.1.1", t_ms=now - 3 * HOUR_MS)  # one complaint alone: below k
    store.answer(ids[0], "closed", "fixed")
    profile = api.settings.city
    dataset = datasets.get(profile, datasets.COMPLAINTS_ID)
    filed = datetime.fromtimestamp((now - 3 * HOUR_MS) / 1000, profile.zone)
    start, end = datasets.period_bounds(profile, filed.strftime("%Y-%m-%d"))
    got = list(datasets.rows(api.services, dataset, start, end))
    assert len(got) == 1
    row = got[0]
    assert (row["district"], row["category"], row["received"], row["answered"]) == ("bukit-bestari", "leak", 3, 1)
    assert row["median_hours_to_answer"] == pytest.approx(3.0, abs=0.1)
    assert tuple(row) == datasets.COMPLAINT_COLUMNS
    assert "PRIVATE" not in repr(got) and "private" not in repr(got) and "0812" not in repr(got)


def test_period_bounds_are_local_days_and_months(api):
    profile = api.settings.city  # UTC+7
    start, end = datasets.period_bounds(profile, "2026-11-05")
    assert (end - start, time.gmtime(start / 1000).tm_hour) == (24 * HOUR_MS, 17)
    start, end = datasets.period_bounds(profile, "2026-12")
    assert end - start == 31 * 24 * HOUR_MS
    for bad in ("2026-13", "2026-02-30", "1999-01", "26-01", "2026-1", ""):
        with pytest.raises(datasets.PeriodError):
            datasets.period_bounds(profile, bad)
