"""The live city's daily profile: 10-second readings, a 4-hour buffer, and a week of per-minute means.

The engine keeps 1,440 samples (4 hours, as under `city up`): no previous
day. A building's cooling switches on every working day at 06:33:20 local
(not on a minute boundary): power goes from about 40 kW to about 120 kW.
With the coarse history the engine has seen that step on earlier days and
keeps quiet on day N; a real fault later that morning still opens an
alert. Without the history (profile_days=0) the same step is a false
alarm, which is what `city up` raised before.
"""

import random

import numpy as np
import pytest
from pydantic import ValidationError

from analytics.buffers import CoarseHistory
from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from analytics.service import EngineService
from edge import contract
from telemetry_shared.influx import V1Writer
from telemetry_shared.registry import DeviceNew
from telemetry_shared.settings import Settings
from tests.conftest import make_settings

STEP_MS = 10_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MONDAY = 1_767_546_000_000  # 2026-01-05 00:00 local (UTC+7), a Monday
COOLING_ON_MS = 6 * HOUR_MS + 33 * 60_000 + 20_000  # 06:33:20 local
DEVICE = "pwr-0042"


def power_kw(t_ms: int, rng: random.Random, fault_from_ms: int | None = None) -> float:
    local = (t_ms - MONDAY) % DAY_MS
    base = 120.0 if COOLING_ON_MS <= local < 18 * HOUR_MS else 40.0
    if fault_from_ms is not None and t_ms >= fault_from_ms:
        base += 60.0  # a chiller stuck at full load
    return round(base + rng.gauss(0, 1.5), 2)


def history_messages(days: int, rng: random.Random) -> list[tuple[int, bytes]]:
    """Whole days of 10-second readings as backfill, 256 samples a message: (received_ms, payload)."""
    times = [MONDAY + i * STEP_MS for i in range(days * DAY_MS // STEP_MS)]
    out = []
    for seq, first in enumerate(range(0, len(times), 256)):
        chunk = [(t, {"power_kw": power_kw(t, rng)}) for t in times[first:first + 256]]
        out.append((chunk[-1][0] + 500, contract.encode_telemetry(seq, chunk, "1.0", hist=True)))
    return out


def live_alerts(engine: AnalyticsEngine, day: int, start_h: float, end_h: float, rng: random.Random,
                fault_from_ms: int | None = None) -> list[dict]:
    """One reading every 10 s, each scored as it arrives (the engine's pace under `city up`)."""
    start = MONDAY + day * DAY_MS + int(start_h * HOUR_MS)
    messages = []
    for i in range(int((end_h - start_h) * HOUR_MS) // STEP_MS):
        t = start + i * STEP_MS
        raw = contract.encode_telemetry(10_000 + i, [(t, {"power_kw": power_kw(t, rng, fault_from_ms)})], "1.0")
        engine.ingest(DEVICE, raw, t + 300)
        messages += engine.process(now_ms=t + 300)
    return messages


@pytest.fixture
def make_engine(registry, influx_db):
    registry.add(DeviceNew(id=DEVICE, kind="power", district="tanjungpinang-timur"))
    writers = []

    def make(profile_days: int) -> AnalyticsEngine:
        writers.append(V1Writer(str(influx_db.http.base_url), influx_db.db))
        engine = AnalyticsEngine(registry, writers[-1], None, EngineParams(buffer_samples=1440,
                                                                          profile_days=profile_days))
        for received_ms, raw in history_messages(3, random.Random(5)):  # Monday to Wednesday
            engine.ingest(DEVICE, raw, received_ms)
        assert engine.process(now_ms=MONDAY + 3 * DAY_MS) == []  # history never alarms
        return engine

    yield make
    for writer in writers:
        writer.close()


def test_a_daily_step_seen_on_earlier_days_raises_nothing_but_a_fault_does(make_engine, influx_db):
    engine = make_engine(profile_days=8)
    # Thursday 05:30-09:00: the cooling switches on at 06:33:20, as every working day;
    # at 08:00 a chiller sticks at full load (+60 kW).
    fault_ms = MONDAY + 3 * DAY_MS + 8 * HOUR_MS
    messages = live_alerts(engine, 3, 5.5, 9.0, random.Random(6), fault_from_ms=fault_ms)
    opened = [m for m in messages if m["state"] == "active"]
    assert opened, "the stuck chiller was not noticed"
    first = opened[0]
    assert fault_ms <= first["started_ms"] <= fault_ms + 3 * STEP_MS, \
        f"an alert at {(first['started_ms'] - MONDAY - 3 * DAY_MS) / HOUR_MS:.2f} h local, before the fault"
    assert first["metric"] == "power_kw" and first["rule"] == "off_daily_profile"
    assert first["expected"] is not None and 110 < first["expected"] < 130  # the cooling-on level, from the profile
    assert {m["id"] for m in opened} == {first["id"]}  # one fault, one incident
    rows = influx_db.rows('SELECT * FROM "alerts"')
    assert {r["id"] for r in rows} == {first["id"]}


def test_without_the_history_the_same_step_is_a_false_alarm(make_engine):
    """The control: the 4-hour buffer alone has no earlier day, so the step looks like a fault."""
    engine = make_engine(profile_days=0)
    messages = live_alerts(engine, 3, 5.5, 7.0, random.Random(6))
    opened = [m for m in messages if m["state"] == "active"]
    assert opened and opened[0]["started_ms"] >= MONDAY + 3 * DAY_MS + COOLING_ON_MS


def test_coarse_history_keeps_bucket_means_in_bounded_memory():
    history = CoarseHistory(bucket_ms=60_000, capacity=5)
    times = np.arange(0, 10 * 60_000, 10_000, dtype=np.int64)  # ten minutes of 10-second readings
    history.add(0, times, np.arange(times.size, dtype=np.float64))
    values, bucket_times, tolerance = history.window(np.array([0]))
    # Nine buckets closed (the tenth is still open), the last five kept, each at its middle.
    assert values.shape == (1, 5) and tolerance == 60_000
    assert values[0].tolist() == [26.5, 32.5, 38.5, 44.5, 50.5]
    assert bucket_times[0].tolist() == [4 * 60_000 + 30_000 + k * 60_000 for k in range(5)]
    # A late reading for a closed bucket changes nothing; a row never seen is all empty.
    history.add(0, np.array([0]), np.array([1e6]))
    assert history.window(np.array([0]))[0][0].tolist() == [26.5, 32.5, 38.5, 44.5, 50.5]
    assert np.isnan(history.window(np.array([3]))[0]).all()
    with pytest.raises(ValueError):
        CoarseHistory(bucket_ms=0, capacity=5)
    with pytest.raises(ValueError):
        CoarseHistory(bucket_ms=60_000, capacity=5, fine_capacity=2, coarse_ms=90_000)


def naive_tiers(minute_means: dict[int, float], newest: int, fine: int, capacity: int, per_coarse: int) -> list:
    """The history's closed entries, the slow way: (value, time, tolerance) of the fine minutes within `fine` of
    the newest, before them the mean of each coarse bucket's minutes that left the fine tier (the one being
    filled included), within `capacity` minutes in all."""
    fine_minutes = [m for m in sorted(minute_means) if m > newest - fine]
    left = [m for m in sorted(minute_means) if m <= newest - fine]
    coarse: dict[int, list] = {}
    for m in left:
        coarse.setdefault(m // per_coarse, []).append(m)
    entries = []
    coarse_slots = -(-(capacity - fine) // per_coarse)
    filling = max(coarse) if coarse else None
    for c, minutes in sorted(coarse.items()):
        closed = [k for k in coarse if k != filling]
        if c != filling and c <= max(closed) - coarse_slots:
            continue  # older than the coarse ring
        mean = float(np.float32(sum(float(np.float32(minute_means[m])) for m in minutes) / len(minutes)))
        t = (c * per_coarse * 60_000 + round(np.mean([(m - c * per_coarse) * 60_000 for m in minutes])) + 30_000
             if c == filling else c * per_coarse * 60_000 + per_coarse * 30_000)
        entries.append((mean, t, per_coarse * 60_000))
    entries += [(float(np.float32(minute_means[m])), m * 60_000 + 30_000, 60_000) for m in fine_minutes]
    return entries


def test_two_tiers_keep_the_recent_minutes_and_coarse_means_before_them():
    """Fine minutes for the newest 6, 3-minute means of the older ones, 20 minutes in all, against a slow
    reference; a gap leaves no stale entry; a history rebuilt from the closed means (an older state file's
    migration) lays out the same."""
    rng = np.random.default_rng(3)
    history = CoarseHistory(60_000, capacity=20, fine_capacity=6, coarse_ms=180_000)
    minutes = [m for m in range(40) if m not in (11, 12, 25, 26, 27, 28, 29, 30, 31, 32)]  # two silent spells
    means = {}
    for m in minutes:
        values = rng.normal(100, 5, 6)
        history.add(0, m * 60_000 + np.arange(6) * 10_000, values)
        means[m] = float(values.mean())
    history.add(0, np.array([40 * 60_000]), np.array([1.0]))  # closes minute 39
    values, times, tolerance = history.window(np.array([0]))
    found = [(float(v), int(t), float(tol)) for v, t, tol in zip(values[0], times[0], tolerance[0], strict=True)
             if not np.isnan(v)]
    expected = naive_tiers(means, 39, 6, 20, 3)
    assert [(t, tol) for _, t, tol in found] == [(t, tol) for _, t, tol in expected]
    np.testing.assert_allclose([v for v, _, _ in found], [v for v, _, _ in expected], rtol=1e-6)
    assert (np.diff(times[0][times[0] > 0]) > 0).all()
    # Migration: the same means as (value, time) pairs of every minute, in one tier, give the same layout.
    rebuilt = CoarseHistory(60_000, capacity=20, fine_capacity=6, coarse_ms=180_000)
    old_times = np.array([[m * 60_000 + 25_000 for m in sorted(means)]])
    rebuilt.fill_closed(np.array([[means[m] for m in sorted(means)]]), old_times)
    again = rebuilt.window(np.array([0]))
    np.testing.assert_array_equal(again[1], times)
    np.testing.assert_allclose(again[0], values, rtol=1e-6)


def test_a_history_copy_is_not_changed_by_later_readings():
    history = CoarseHistory(60_000, capacity=20, fine_capacity=6, coarse_ms=180_000)
    history.add(0, np.arange(0, 30 * 60_000, 10_000), np.arange(180, dtype=np.float64))
    frozen = history.copy()
    before = frozen.window(np.array([0]))
    history.add(0, np.arange(30 * 60_000, 60 * 60_000, 10_000), np.zeros(180))
    after = frozen.window(np.array([0]))
    for one, two in zip(before, after, strict=True):
        np.testing.assert_array_equal(one, two)
    assert not np.array_equal(history.window(np.array([0]))[0], before[0], equal_nan=True)


def test_settings_size_the_history_and_refuse_nonsense(tmp_path, registry, monkeypatch):
    service = EngineService(make_settings(tmp_path, analytics_profile_bucket_s=300, analytics_profile_days=2),
                            registry, None)
    assert service.params.profile_bucket_ms == 300_000 and service.params.profile_days == 2
    registry.add(DeviceNew(id=DEVICE, kind="power", district="tanjungpinang-timur"))
    engine = AnalyticsEngine(registry, None, None, service.params)
    for received_ms, raw in history_messages(1, random.Random(1)):
        engine.ingest(DEVICE, raw, received_ms)
    history = engine.learnt.history["power_kw"]
    # two days of 5-minute buckets, whatever the reading interval (all fine: the fine days default to 2)
    assert history.capacity == history.fine_capacity == 2 * 288 and history.coarse_capacity == 0
    assert np.isfinite(history.window(np.array([0]))[0]).sum() == 287  # one day, the last bucket still open
    for name, bad in (("CITY_ANALYTICS_PROFILE_BUCKET_S", "0"), ("CITY_ANALYTICS_PROFILE_BUCKET_S", "5e9"),
                      ("CITY_ANALYTICS_PROFILE_DAYS", "-1"), ("CITY_ANALYTICS_PROFILE_DAYS", "a week")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(name)
