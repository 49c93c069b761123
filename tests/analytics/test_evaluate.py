"""The evaluation harness: matching is exact on hand-made cases, and against
the real fleet simulator the obvious faults are found quickly."""

import json
import tracemalloc
from collections import defaultdict
from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from analytics.config import DEFAULT_PARAMS
from analytics.evaluate import Alert, build_grid, detect, evaluate_fleet, fleet_capacity, match
from analytics.rules import Hysteresis, incidents
from telemetry_cli.main import app

STEP = 60_000
KINDS = {"voltage_sag": {"power"}, "stuck": {"power", "water"}}
DEVICES = {"pwr-1": "power", "pwr-2": "power", "wtr-1": "water"}


def alert(device: str, start_step: int, end_step: int, metric: str = "voltage_v", severity: str = "critical"):
    return Alert(device, metric, "rule", start_step * STEP, end_step * STEP, 0.9, severity)


def test_match_counts_detections_false_alarms_and_delay():
    labels = [("pwr-1", "voltage_v", "voltage_sag", 100 * STEP, 110 * STEP),
              ("pwr-2", "voltage_v", "voltage_sag", 200 * STEP, 210 * STEP),
              ("wtr-1", "flow_lps", "stuck", 300 * STEP, 400 * STEP),
              ("wtr-1", "pressure_bar", "stuck", 300 * STEP, 400 * STEP)]  # one fault, two metrics
    alerts = [alert("pwr-1", 103, 112),  # found after 3 steps
              alert("pwr-1", 113, 114),  # within the grace after the end: the same fault, not a false alarm
              alert("wtr-1", 290, 330, "flow_lps"),  # already open when the fault began: delay 0
              alert("pwr-2", 500, 510),  # false alarm (power)
              alert("wtr-1", 600, 610, "flow_lps"),  # false alarm (water)
              alert("pwr-2", 520, 530, severity="info")]  # advice, not counted
    rows = {r.fault: r for r in match(alerts, labels, KINDS, DEVICES, STEP)}
    sag, stuck, total = rows["voltage_sag"], rows["stuck"], rows["all"]
    assert (sag.labelled, sag.detected, sag.alerts, sag.false_alarms) == (2, 1, 2, 1)
    assert sag.precision == 1 / 2 and sag.recall == 0.5 and sag.median_delay_steps == 3.0
    assert (stuck.labelled, stuck.detected, stuck.alerts, stuck.false_alarms) == (1, 1, 1, 2)
    assert stuck.precision == 1 / 3
    assert stuck.median_delay_steps == 0.0
    assert (total.labelled, total.detected, total.alerts, total.false_alarms) == (3, 2, 3, 2)
    assert total.precision == 2 / 4  # two faults found, two false alarms: the second alert of a fault earns nothing
    assert abs(total.f1 - 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)) < 1e-12


def test_match_warmup_excludes_early_faults_and_alerts():
    labels = [("pwr-1", "voltage_v", "voltage_sag", 10 * STEP, 20 * STEP),
              ("pwr-1", "voltage_v", "voltage_sag", 100 * STEP, 110 * STEP)]
    alerts = [alert("pwr-1", 12, 15), alert("pwr-2", 30, 31), alert("pwr-1", 101, 104)]
    rows = {r.fault: r for r in match(alerts, labels, KINDS, DEVICES, STEP, count_from_ms=50 * STEP)}
    assert (rows["all"].labelled, rows["all"].detected, rows["all"].false_alarms) == (1, 1, 0)


def test_grid_places_skewed_readings_by_arrival_and_keeps_the_lag():
    readings = [("pwr-1", "power", "d", 0, {"voltage_v": 230.0}), ("pwr-2", "power", "d", 0, {"voltage_v": 231.0}),
                ("pwr-1", "power", "d", STEP, {"voltage_v": 229.0}),
                ("pwr-2", "power", "d", STEP - 600_000, {"voltage_v": 232.0})]  # its clock jumped back 10 min
    grid = build_grid(readings, 0, STEP, 3)
    rows, values = grid.metrics["voltage_v"]
    assert grid.devices == ["pwr-1", "pwr-2"] and rows.tolist() == [0, 1]
    np.testing.assert_array_equal(values[:, :2], [[230.0, 229.0], [231.0, 232.0]])
    assert grid.lag_ms[1, 1] == 600_000 and grid.lag_ms[0, 1] == 0
    assert grid.present[:, 2].tolist() == [False, False]


def _grid_of_rows(readings, start_ms, step_ms, n_steps):
    """build_grid as it was before it wrote readings into the arrays as they came (every reading kept as a row,
    the arrays laid out at the end): the reference the streaming grid must equal exactly."""
    rows, device_index, kinds, districts, arrival_ms = [], {}, [], [], start_ms
    for device, kind, district, t_ms, values in readings:
        arrival_ms = max(arrival_ms, t_ms)
        step = (arrival_ms - start_ms) // step_ms
        if not 0 <= step < n_steps:
            continue
        if device not in device_index:
            device_index[device] = len(kinds)
            kinds.append(kind)
            districts.append(district)
        rows.append((device_index[device], int(step), arrival_ms - t_ms, values))
    present = np.zeros((len(kinds), n_steps), dtype=bool)
    lag = np.full((len(kinds), n_steps), np.nan)
    per_metric = defaultdict(dict)
    for device, _, _, values in rows:
        for metric in values:
            per_metric[metric].setdefault(device, len(per_metric[metric]))
    arrays = {m: np.full((len(t), n_steps), np.nan) for m, t in per_metric.items()}
    for device, step, lag_ms, values in rows:
        present[device, step] = True
        lag[device, step] = lag_ms
        for metric, value in values.items():
            arrays[metric][per_metric[metric][device], step] = value
    return list(device_index), kinds, districts, present, lag, {m: (list(t), arrays[m]) for m, t in per_metric.items()}


def test_grid_written_as_readings_come_equals_the_grid_of_kept_readings():
    """`city evaluate` and bench_alarm_week see the same grid as before: devices, rows, values (NaN where none came),
    arrival lags, and metrics in the same order, with the fleet's capacity and without it (rows grown)."""
    import fleetsim

    scenario = fleetsim.load_scenario()
    start, hours, n_steps = 1_767_200_400_000, 30, 30 * 30
    readings, faults = fleetsim.generate(scenario, 25, 3, start, hours, 120)
    readings = list(readings)
    assert {f.fault for f in faults} & {"silent", "clock_skew"}  # the week's gaps and skewed clocks are in it
    devices, kinds, districts, present, lag, metrics = _grid_of_rows(readings, start, 120_000, n_steps)
    for capacity in (fleet_capacity(scenario, 25, 3), None, {"": 1, "voltage_v": 1}):
        grid = build_grid(iter(readings), start, 120_000, n_steps, capacity)
        assert (grid.devices, grid.kinds, grid.districts) == (devices, kinds, districts)
        np.testing.assert_array_equal(grid.present, present)
        np.testing.assert_array_equal(grid.lag_ms, lag)
        assert list(grid.metrics) == list(metrics)
        for metric, (rows, values) in metrics.items():
            assert grid.metrics[metric][0].tolist() == rows
            assert grid.metrics[metric][1].dtype == np.float64
            np.testing.assert_array_equal(grid.metrics[metric][1], values)


def test_grid_memory_is_the_grid_not_the_readings():
    """A 2,000-device week did not fit in memory: every reading was kept until the simulation ended. Readings
    from a generator now cost no more than the arrays they are written into."""
    devices, n_steps = 40, 3000

    def readings():
        for step in range(n_steps):
            for n in range(devices):
                yield f"pwr-{n}", "power", "d", step * STEP, {"voltage_v": 230.0 + n, "current_a": 1.0 * step,
                                                              "power_kw": 0.5}

    grid_bytes = devices * n_steps * (3 * 8 + 8 + 1)  # three metrics and the lags (float64), present (bool)
    tracemalloc.start()
    try:
        grid = build_grid(readings(), 0, STEP, n_steps, {"": devices, "voltage_v": devices, "current_a": devices,
                                                         "power_kw": devices})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grid.metrics["current_a"][1][7, 2999] == 2999.0
    assert peak < 1.2 * grid_bytes, (peak, grid_bytes)  # kept as rows: 120,000 tuples and dicts, ~6x the grid


def test_detect_finds_a_silent_device_and_a_sag_on_a_grid():
    rng = np.random.default_rng(0)
    readings = []
    for step in range(300):
        for device in ("pwr-1", "pwr-2"):
            if device == "pwr-2" and 200 <= step < 230:
                continue  # silent
            volts = 190.0 if device == "pwr-1" and 150 <= step < 160 else 229 + rng.normal(0, 0.5)
            readings.append((device, "power", "d", step * STEP, {"voltage_v": volts}))
    found = {(a.device, a.rule, a.start_ms // STEP) for a in detect(build_grid(readings, 0, STEP, 300))}
    assert ("pwr-1", "voltage_out_of_range", 150) in found
    assert any(d == "pwr-2" and r == "silent" and 200 < s < 210 for d, r, s in found)


def test_merge_by_device_mirrors_the_engine():
    from analytics.evaluate import merge_by_device

    alerts = [alert("pwr-1", 10, 20, "voltage_v", "warning"), alert("pwr-1", 15, 30, "frequency_hz", "critical"),
              alert("pwr-1", 40, 45), alert("pwr-2", 12, 18)]
    merged = merge_by_device(alerts)
    assert [(a.device, a.metric, a.start_ms // STEP, a.end_ms // STEP, a.severity) for a in merged] == [
        ("pwr-1", "voltage_v", 10, 30, "critical"), ("pwr-1", "voltage_v", 40, 45, "critical"),
        ("pwr-2", "voltage_v", 12, 18, "critical")]
    assert alerts[0].end_ms == 20 * STEP  # the input is left alone


def test_hysteresis_one_incident_per_fault():
    params = replace(DEFAULT_PARAMS, clear_samples=5, confirm_samples=1)
    score = np.array([[0, 0.9, 0.5, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0, 0.95, 0.1]])
    active = Hysteresis().step(score, params)
    assert incidents(active) == [(0, 1, 8), (0, 10, 12)]  # closed by the 5th calm sample
    assert incidents(Hysteresis().step(score, replace(params, clear_samples=15))) == [(0, 1, 12)]
    state = Hysteresis()
    first, second = state.step(score[:, :5], params), state.step(score[:, 5:], params)  # carried across batches
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), active)


def test_hysteresis_needs_two_high_samples_unless_certain():
    """One borderline sample (a noisy count) opens nothing; two in a row do; a near-certain score opens at once."""
    nan = np.nan
    score = np.array([[0, 0.9, 0.1, 0.9, 0.1, 0.85, 0.1],  # isolated borderline samples: no incident
                      [0, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1],  # two in a row: opens on the second
                      [0, 0.9, nan, 0.9, 0.1, 0.1, 0.1],  # a missing reading neither adds nor breaks
                      [0, 0.1, 0.99, 0.1, 0.1, 0.1, 0.1]])  # certain (>= critical_score): opens at once
    active = Hysteresis().step(score)
    assert incidents(active) == [(1, 2, 7), (2, 3, 7), (3, 2, 7)]
    state = Hysteresis()  # the evidence so far is carried from one batch to the next
    assert not state.step(score[1:2, :2]).any()
    assert state.step(score[1:2, 2:3]).all()


def test_alerts_on_a_fault_of_the_warm_up_are_left_out():
    labels = [("pwr-1", "voltage_v", "voltage_sag", 10 * STEP, 200 * STEP),  # began in the warm-up
              ("pwr-2", "voltage_v", "voltage_sag", 150 * STEP, 160 * STEP)]
    alerts = [alert("pwr-1", 120, 130),  # the warm-up fault, still going: not false, not counted
              alert("pwr-2", 151, 155), alert("pwr-1", 300, 310)]  # the last is a false alarm
    rows = {r.fault: r for r in match(alerts, labels, KINDS, DEVICES, STEP, count_from_ms=100 * STEP)}
    assert (rows["all"].labelled, rows["all"].detected, rows["all"].false_alarms) == (1, 1, 1)


def test_against_the_fleet_simulator():
    """A small city for eight days (the last three counted, once the daily profiles exist)."""
    result = evaluate_fleet(devices=40, hours=192, interval_s=120, warmup_hours=120)
    rows = {r.fault: r for r in result.rows}
    assert rows["all"].labelled >= 8
    assert rows["all"].recall >= 0.7
    assert rows["all"].false_alarms == 0
    assert rows["all"].alerts == rows["all"].detected  # one alert per fault found, no storm
    for fault in ("outage", "voltage_sag", "voltage_swell", "silent", "burst"):
        if fault in rows:
            assert rows[fault].recall == 1.0, fault
            assert rows[fault].median_delay_steps <= 6, fault
    if "stuck" in rows:  # a run of repeats must first become improbable for the series
        assert rows["stuck"].recall == 1.0
    assert {a.severity for a in result.alerts} <= {"info", "warning", "critical"}


def test_evaluate_cli(tmp_path):
    runner = CliRunner()
    labels = tmp_path / "labels.csv"
    result = runner.invoke(app, ["evaluate", "--devices", "20", "--hours", "8", "--warmup-hours", "1",
                                 "--interval-s", "300", "--labels-out", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["devices"] == 20 and body["faults"][-1]["fault"] == "all"
    assert labels.read_text().splitlines()[0] == "device,metric,fault,start_ms,end_ms"
    for bad in (["--hours", "2", "--warmup-hours", "3"], ["--hours", "0"], ["--devices", "1"],
                ["--interval-s", "-5"], ["--seed", "x"]):
        refused = runner.invoke(app, ["evaluate", *bad])
        assert refused.exit_code == 2, bad


def test_advice_does_not_hide_an_alarm():
    """CO2 over 1,000 ppm is advice (info); a sudden build-up over it is still an alarm."""
    from analytics.rules import score_metric

    rng = np.random.default_rng(1)
    co2 = 600 + rng.normal(0, 10, (1, 300))
    co2[0, 200:] += 900  # a sudden build-up to ~1,500 ppm
    scored = score_metric("co2_ppm", co2, None)
    assert scored.rule[0, 200] != "co2_high" and scored.score[0, 200] > 0.9
    assert scored.severity[0, 200] == ""  # graded by its score: critical, not info
    steady = np.full((1, 300), 1100.0) + rng.normal(0, 10, (1, 300))  # a crowded room, steadily over 1,000
    advice = score_metric("co2_ppm", steady, None)
    assert advice.rule[0, 250] == "co2_high" and advice.severity[0, 250] == "info"
