"""The rebuild cap (EngineParams.rebuilds_per_pass): series without a detector state are built at most K a pass
while the others keep being scored every pass; the waiting ones lose nothing (same alerts, same state as an
engine without the cap)."""

import numpy as np

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from edge import contract
from telemetry_shared.registry import DeviceNew
from tests.analytics.test_engine import START, STEP, voltage_batches

OLD, NEW, CAP = 3, 10, 3
BACKLOG = 40  # samples each new device sends as history before its live readings


def devices(registry) -> list[str]:
    names = [f"pwr-{i:04d}" for i in range(OLD + NEW)]
    for name in names:
        registry.add(DeviceNew(id=name, kind="power", district="bukit-bestari"))
    return names


def run(registry, names: list[str], cap: int) -> tuple[AnalyticsEngine, list[dict], list[dict]]:
    """OLD devices stream for BACKLOG samples (built), then NEW devices arrive with a BACKLOG of history each
    (state-less) and everyone streams live: one sample a device a pass. The last new device sags while it waits.
    Returns the engine, the alert messages and per live pass the scored-sample counts and the rebuilds."""
    engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=64, rebuilds_per_pass=cap))
    for i in range(BACKLOG):
        for name in names[:OLD]:
            t, raw = voltage_batches(1, START + i * STEP, seq0=i, seed=int(name[-4:]))[0]
            engine.ingest(name, raw, t + 200)
        engine.process(now_ms=START + i * STEP + 200)
    for name in names[OLD:]:
        for t, raw in voltage_batches(BACKLOG, hist=True, seed=int(name[-4:])):
            engine.ingest(name, raw, t + 200)
    sent, passes = [], []
    for i in range(BACKLOG, BACKLOG + 8):
        t = START + i * STEP
        for name in names:
            sag = range(BACKLOG, BACKLOG + 3) if name == names[-1] else range(0)
            volts = 190.0 if i in sag else 229.0 + 0.3 * (i % 3)
            raw = contract.encode_telemetry(i, [(t, {"voltage_v": volts, "frequency_hz": 50.0})], "1.0")
            engine.ingest(name, raw, t + 200)
        before = engine.counters["rebuilds"]
        sent += engine.process(now_ms=t + 200)
        scored = engine.learnt.streams["voltage_v"].arrays["scored"]
        rows = [engine.learnt.blocks["voltage_v"].row((name,)) for name in names]
        passes.append({"scored": np.array([scored[r] if r < scored.size else 0 for r in rows]),
                       "rebuilds": engine.counters["rebuilds"] - before})
    return engine, sent, passes


def test_rebuilds_are_capped_per_pass_and_nothing_waiting_is_lost(registry):
    names = devices(registry)
    engine, sent, passes = run(registry, names, CAP)
    # The series with a state are scored every pass, one new sample each, while the rebuilds proceed.
    for before, after in zip(passes, passes[1:], strict=False):
        assert (after["scored"][:OLD] - before["scored"][:OLD] == 1).all()
    # At most CAP rebuilds a pass over both metrics (voltage, frequency: 2 * NEW series), all built in the end.
    assert [p["rebuilds"] for p in passes] == [CAP] * 6 + [2, 0]
    assert (passes[-1]["scored"] > 0).all() and engine.counters["rebuilds_waiting"] == 0
    # The last new device sagged while it waited: its alert opens once it is built, with the sag's start.
    uncapped, sent_free, passes_free = run(registry, names, 10_000)
    assert passes_free[0]["rebuilds"] == NEW * 2
    opened = [m for m in sent if m["state"] == "active"]
    assert {(m["device"], m["rule"], m["started_ms"]) for m in opened} \
        == {(m["device"], m["rule"], m["started_ms"]) for m in sent_free if m["state"] == "active"}
    assert (names[-1], "voltage_out_of_range", START + BACKLOG * STEP) in \
        {(m["device"], m["rule"], m["started_ms"]) for m in opened}
    # Waiting scored nothing twice and skipped nothing: the same detector state as without the cap.
    assert (passes[-1]["scored"] == passes_free[-1]["scored"]).all()
    for name, array in engine.learnt.streams["voltage_v"].arrays.items():
        np.testing.assert_allclose(array, uncapped.learnt.streams["voltage_v"].arrays[name], err_msg=name)
