"""The simulated city in process: the plan, the curves, the faults and the labels."""

import csv
import json
import statistics
from collections import defaultdict

import fleetsim
import pytest
from fleetsim.scenario import local_hour

from edge import contract

START_MS = 1_796_000_400_000 - (1_796_000_400_000 + 7 * 3_600_000) % 86_400_000  # a local midnight (UTC+7)


@pytest.fixture(scope="module")
def scenario() -> dict:
    return fleetsim.load_scenario()


@pytest.fixture(scope="module")
def day(scenario):
    """One day of 300 devices every 5 minutes, kept in memory by device."""
    readings, faults = fleetsim.generate(scenario, 300, 11, START_MS, 24, 300)
    by_device = defaultdict(list)
    for device, kind, district, t_ms, values in readings:
        by_device[device].append((t_ms, values, kind, district))
    return by_device, faults


def test_plan_fleet_is_deterministic_and_follows_the_scenario(scenario):
    from telemetry_shared.settings import get_settings

    city = get_settings().city
    specs = fleetsim.plan_fleet(scenario, 2000, 3)
    assert specs == fleetsim.plan_fleet(scenario, 2000, 3)
    assert len(specs) == 2000 and len({s["id"] for s in specs}) == 2000
    assert all(contract.valid_device_id(s["id"]) for s in specs)
    kinds = defaultdict(int)
    for s in specs:
        kinds[s["kind"]] += 1
        assert s["district"] in {d["slug"] for d in scenario["districts"]}
        assert city.district_at(s["lat"], s["lon"]) == s["district"]  # inside its boundary in the city profile
    assert kinds == {"water": 600, "power": 700, "building": 300, "traffic": 400}
    assert specs[0]["id"] == "wtr-bb-0001"
    assert set(specs[0]) == {"id", "kind", "district", "lat", "lon"}


def test_every_reading_passes_the_wire_contract(day):
    by_device, _ = day
    assert {rows[0][2] for rows in by_device.values()} == set(contract.KINDS)
    for device, rows in list(by_device.items())[::7]:
        samples = [(t, v, 0) for t, v, _, _ in rows[:60]]  # the agent's backfill batch
        batch = contract.decode_telemetry(contract.encode_telemetry(0, samples, "sim"), rows[0][2],
                                          START_MS + 86_400_000)
        assert batch.rejects == [], (device, batch.rejects[:3])


def test_daily_curves_in_local_time(day, scenario):
    by_device, faults = day
    faulty = {f.device for f in faults}
    night, morning, rush, midday = (defaultdict(list) for _ in range(4))
    for device, rows in by_device.items():
        if device in faulty:
            continue
        for t_ms, values, kind, _ in rows:
            hour = local_hour(scenario, t_ms)
            if kind == "water" and "pressure_bar" in values:
                if 2 <= hour < 4:
                    night["flow"].append(values["flow_lps"])
                    night["pressure"].append(values["pressure_bar"])
                elif 6 <= hour < 8:
                    morning["flow"].append(values["flow_lps"])
                    morning["pressure"].append(values["pressure_bar"])
            if kind == "traffic" and (7 <= hour < 8 or 2 <= hour < 4):
                (rush if hour >= 7 else night)["speed"].append(values["speed_kmh"])
            if kind == "building" and "beds_free" not in values and (10 <= hour < 14 or 2 <= hour < 4):
                (midday if hour >= 10 else night)["co2"].append(values["co2_ppm"])
    # Minimum night flow is a fraction of the morning peak; pressure is highest at night.
    assert statistics.mean(night["flow"]) < 0.4 * statistics.mean(morning["flow"])
    assert statistics.mean(night["pressure"]) > statistics.mean(morning["pressure"]) + 0.3
    assert statistics.mean(rush["speed"]) < statistics.mean(night["speed"]) - 10
    assert statistics.mean(midday["co2"]) > statistics.mean(night["co2"]) + 150


def test_generate_is_deterministic(scenario):
    a, fa = fleetsim.generate(scenario, 40, 5, START_MS, 2, 60)
    b, fb = fleetsim.generate(scenario, 40, 5, START_MS, 2, 60)
    assert list(a) == list(b)
    assert fleetsim.label_rows(fa) == fleetsim.label_rows(fb)
    c, fc = fleetsim.generate(scenario, 40, 6, START_MS, 2, 60)
    assert fleetsim.label_rows(fc) != fleetsim.label_rows(fa)


def test_every_fault_kind_is_injected_and_labelled(day, tmp_path):
    _, faults = day
    assert {f.fault for f in faults} == set(fleetsim.scenario.FAULT_NAMES)
    assert len({f.device for f in faults}) == len(faults)  # one fault per device
    path = tmp_path / "labels.csv"
    rows = fleetsim.write_labels(path, faults)
    with open(path) as f:
        table = list(csv.reader(f))
    assert table[0] == ["device", "metric", "fault", "start_ms", "end_ms"]
    assert len(table) == rows + 1
    for _device, metric, fault, start, end in table[1:]:
        assert START_MS <= int(start) < int(end) <= START_MS + 86_400_000
        assert (metric == "") == (fault in ("silent", "clock_skew", "malformed"))
        assert metric == "" or metric in contract.METRICS


def _spells(rows, fault):
    inside = [(t, v) for t, v, _, _ in rows if fault.start_ms <= t < fault.end_ms]
    before = [(t, v) for t, v, _, _ in rows if t < fault.start_ms]
    return inside, before


def test_labels_match_what_the_readings_show(day):
    by_device, faults = day
    checked = set()
    for fault in faults:
        rows = by_device.get(fault.device, [])
        inside, before = _spells(rows, fault)
        name = fault.fault
        if name == "silent" or name == "malformed":
            assert inside == [], name  # nothing usable arrives while it lasts
            assert len(rows) < 288
        elif name == "clock_skew":
            times = [t for t, _, _, _ in rows]
            assert len(times) == 288 and times != sorted(times)  # readings jump back in time
        elif name == "stuck" and len(inside) > 2:
            metric = fault.metrics[0]
            assert len({v[metric] for _, v in inside}) == 1
        elif name in ("burst", "outage", "voltage_sag", "voltage_swell", "incident") and inside and before:
            metric = fault.metrics[0]
            normal = statistics.median(v[metric] for _, v in before)
            during = statistics.median(v[metric] for _, v in inside)
            expected = {"burst": during > normal * 1.5, "outage": during == 0.0, "voltage_sag": during < normal * 0.92,
                        "voltage_swell": during > normal * 1.07, "incident": during < normal * 0.6}
            assert expected[name], (fault, normal, during)
        elif name == "co2_buildup" and len(inside) > 4:
            assert max(v["co2_ppm"] for _, v in inside) > 1200
        else:
            continue
        checked.add(name)
    assert {"silent", "malformed", "clock_skew"} <= checked


def test_leak_raises_the_minimum_night_flow(scenario):
    # Three days, so a leak spans at least one night; compare its night flow with the night before.
    readings, faults = fleetsim.generate(scenario, 120, 2, START_MS, 72, 600)
    flows = defaultdict(list)
    for device, _, _, t_ms, values in readings:
        if "flow_lps" in values:
            flows[device].append((t_ms, values["flow_lps"]))
    leaks = [f for f in faults if f.fault == "leak"]
    assert leaks
    for leak in leaks:
        night_min = {}
        for t_ms, flow in flows[leak.device]:
            if 1 <= local_hour(scenario, t_ms) < 5:
                day_index = (t_ms - START_MS) // 86_400_000
                night_min[day_index] = min(flow, night_min.get(day_index, flow))
        leak_nights = [d for d in night_min if leak.start_ms + 3_600_000 < START_MS + d * 86_400_000 + 5 * 3_600_000
                       < leak.end_ms]
        clean_nights = [d for d in night_min if START_MS + (d + 1) * 86_400_000 <= leak.start_ms]
        if leak_nights and clean_nights:
            assert night_min[leak_nights[0]] > night_min[clean_nights[-1]] + 1.0


@pytest.mark.parametrize("broken, key", [
    ({"interval_s": 0}, "interval_s"),
    ({"interval_s": "10"}, "interval_s"),
    ({"districts": []}, "districts"),
    ({"kinds": {"water": 1, "spaceship": 1}}, "kinds.spaceship"),
    ({"curves": {"water_demand": [1] * 23}}, "curves.water_demand"),
    ({"faults": {"meteor": {"kinds": ["water"], "share": 0.1, "minutes": [1, 2]}}}, "faults.meteor"),
    ({"faults": {"leak": {"kinds": ["water"], "share": 2, "minutes": [1, 2]}}}, "faults.leak.share"),
    ({"faults": {"leak": {"kinds": ["water"], "share": 0.1, "minutes": [5, 1]}}}, "faults.leak.minutes"),
])
def test_bad_scenarios_are_refused_by_key(scenario, broken, key):
    bad = json.loads(json.dumps(scenario)) | broken
    with pytest.raises(fleetsim.ScenarioError, match=key.replace(".", r"\.")):
        fleetsim.validate_scenario(bad)


def test_bad_scenario_files_and_arguments(tmp_path, scenario):
    for content, message in ((b"{not json", "not valid JSON"), (b'{"interval_s": NaN}', "not valid JSON"),
                             (b"[1, 2]", "must be an object"), (b" " * 1_000_001, "more than")):
        path = tmp_path / "s.json"
        path.write_bytes(content)
        with pytest.raises(fleetsim.ScenarioError, match=message):
            fleetsim.load_scenario(path)
    with pytest.raises(fleetsim.ScenarioError, match="cannot read"):
        fleetsim.load_scenario(tmp_path / "missing.json")
    for devices in (0, -5, 10**9, "12", 2.5):
        with pytest.raises(fleetsim.ScenarioError, match="devices"):
            fleetsim.plan_fleet(scenario, devices, 1)
    with pytest.raises(fleetsim.ScenarioError, match="hours"):
        fleetsim.generate(scenario, 10, 1, START_MS, 0, 60)
