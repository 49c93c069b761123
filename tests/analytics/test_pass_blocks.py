"""An engine pass scored in blocks of series (AnalyticsEngine.block_rows and the clock scorer's, which bound the
pass's temporaries: ~35 KB a series, 0.7 GB above the steady level at 20,000 series all at once) raises the same
alerts, in the same order, and leaves the same state as the whole pass at once: every series is scored on its own
(its own interval, its own detectors' state), and the clock scorer's one interval, the median of the pass's
devices, is found before any block is scored."""

import random

import numpy as np
import pytest

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from edge import contract
from telemetry_shared.registry import DeviceNew
from telemetry_shared.settings import get_settings

START = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MINUTE = 60_000
STEPS = 420
DEVICES = 11
PACE = {3: 5, 8: 10, 9: 10, 10: 10}  # minutes between messages (1: the others)


def messages() -> list[list[tuple[int, str, bytes]]]:
    """Per minute, the messages that arrive in it: [(received_ms, device, payload)]. Power meters with their power
    and power factor; meter 1's power jumps threefold from minute 250, meter 2's clock runs 10 minutes behind
    from minute 300 to 340, meter 3 sends 5 readings a message every 5 minutes (passes of several widths),
    meter 4 is stuck from minute 280, meter 0's power factor falls under its limit from minute 200 to 215,
    meters 5 and 6 start at minute 150 with a backfill of their last hour (history: scored, never alarming,
    rows whose detectors' state is built from their buffer, together in one pass), meter 7 sends nothing from
    minute 320 to 335, meters 8 to 10 send 10 readings every 10 minutes, and meter 9's clock runs 30 minutes
    behind from minute 350 to 400 (beyond the clock's tolerance of 3 intervals at the pass's median interval of
    a minute, within it at its own 10 minutes: blocks that found their own interval would miss it)."""
    rng = random.Random(5)
    out: list[list[tuple[int, str, bytes]]] = [[] for _ in range(STEPS)]
    for d in range(DEVICES):
        device = f"pwr-{d:02d}"
        level = 4 + d
        for step in range(STEPS):
            if d in (5, 6) and step < 150 or d == 7 and 320 <= step < 335:
                continue
            pace = PACE.get(d, 1)
            if step % pace != pace - 1:
                continue
            steps = range(step - pace + 1, step + 1)
            samples = []
            for s in steps:
                kw = level * (3 if d == 1 and s >= 250 else 1) + rng.gauss(0, 0.1)
                kw = level if d == 4 and s >= 280 else kw
                pf = 0.5 if d == 0 and 200 <= s < 215 else 0.95 + rng.gauss(0, 0.005)
                skew = 10 * MINUTE if d == 2 and 300 <= s < 340 else 30 * MINUTE if d == 9 and 350 <= s < 400 else 0
                samples.append((START + s * MINUTE - skew, {"power_kw": round(kw, 3), "power_factor": round(pf, 3)}))
            received = START + step * MINUTE + 700 + d * 13
            if d in (5, 6) and step == 150:
                past = [(START + (150 - k) * MINUTE, {"power_kw": level + rng.gauss(0, 0.1), "power_factor": 0.95})
                        for k in range(60, 0, -1)]
                out[step].append((received - 100, device, contract.encode_telemetry(0, past, "1.0", hist=True)))
            out[step].append((received, device, contract.encode_telemetry(step, samples, "1.0")))
    return out


@pytest.fixture
def engines(registry):
    district = get_settings().city.slugs[0]
    for d in range(DEVICES):
        registry.add(DeviceNew(id=f"pwr-{d:02d}", kind="power", district=district))

    def make(block_rows: int) -> AnalyticsEngine:
        engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=128, arrival_samples=64))
        engine.block_rows = engine.clock.block_rows = block_rows
        return engine

    return make


def run(engine: AnalyticsEngine, minutes: list) -> list[list[dict]]:
    outputs = []
    for step, arriving in enumerate(minutes):
        for received_ms, device, raw in arriving:
            engine.ingest(device, raw, received_ms)
        outputs.append(engine.process(now_ms=START + step * MINUTE + 59_000))
    return outputs


def test_a_pass_in_blocks_raises_the_same_alerts_and_keeps_the_same_state(engines):
    minutes = messages()
    whole_engine = engines(0)
    whole = run(whole_engine, minutes)
    rules = {message["rule"] for out in whole for message in out}
    # What is compared: statistical rules, a limit, the clock scorer, and passes of several widths and rebuilds.
    assert {"power_factor_low", "clock_offset", "stuck_sensor"} <= rules, rules
    assert rules & {"level_shift", "unusual_value", "off_daily_profile"}, rules
    assert {m["device"] for out in whole for m in out if m["rule"] == "clock_offset"} == {"pwr-02", "pwr-09"}
    # 1: one series at a time; 3 and 4: blocks that cut the pass's series and devices at different places.
    for block_rows in (1, 3, 4):
        engine = engines(block_rows)
        assert run(engine, minutes) == whole, block_rows
        for metric, stream in whole_engine.learnt.streams.items():
            other = engine.learnt.streams[metric]
            for name, array in stream.arrays.items():
                assert np.array_equal(array, other.arrays[name], equal_nan=True), (block_rows, metric, name)
            for errors, theirs in zip(stream.errors, other.errors, strict=True):
                assert (errors is None) == (theirs is None)
                if errors is not None:
                    assert np.array_equal(errors, theirs, equal_nan=True), (block_rows, metric)
        for metric, state in whole_engine.learnt.states.items():
            for name in vars(state):
                assert np.array_equal(getattr(state, name), getattr(engine.learnt.states[metric], name),
                                      equal_nan=True), (block_rows, metric, name)
        for name in vars(whole_engine.clock.hysteresis):
            assert np.array_equal(getattr(whole_engine.clock.hysteresis, name),
                                  getattr(engine.clock.hysteresis, name), equal_nan=True), (block_rows, name)
