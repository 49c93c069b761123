"""Peer comparison within a district: a meter that slowly leaves its neighbours (tampering, a failing
meter) is one peer_departure incident, in the evaluation and in the live engine; its neighbours get none;
a district with too few meters is left alone."""

import threading

import numpy as np
import pytest

from analytics import peercheck
from analytics.config import DEFAULT_PARAMS, EngineParams
from analytics.detectors import calibrate, cusum_evidence, peer_z
from analytics.engine import AnalyticsEngine
from analytics.evaluate import build_grid, detect, peer_alerts
from analytics.peers import peer_scores, peer_scores_newest, warmup_samples
from analytics.rules import Hysteresis, incidents
from edge import contract
from telemetry_shared.registry import DeviceNew

START = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MINUTE = 60_000
HOURS = 36  # a day and a half of per-minute readings
DISTRICT = "tanjungpinang-kota"


def district_power(meters: int, seed: int = 3, depart_at_h: float = 28.0, depart_over_h: float = 4.0,
                   drop: float = 0.4) -> np.ndarray:
    """(meters, HOURS*60) kW: one shared household curve (evening peak), each meter its own size and 4 % noise;
    meter 0 loses `drop` of its reading over `depart_over_h` hours from `depart_at_h` (a bypass being fitted)."""
    rng = np.random.default_rng(seed)
    n = HOURS * 60
    local_hour = (np.arange(n) / 60 + 7) % 24
    curve = 6 + 4 * np.exp(-((local_hour - 19) ** 2) / 8) + 2 * np.exp(-((local_hour - 8) ** 2) / 4)
    kw = curve[None] * rng.uniform(0.8, 1.2, (meters, 1)) * (1 + rng.normal(0, 0.04, (meters, n)))
    ramp = np.clip((np.arange(n) - depart_at_h * 60) / (depart_over_h * 60), 0, 1)
    kw[0] *= 1 - drop * ramp
    return kw


def devices(count: int, district: str = DISTRICT) -> list[str]:
    return [f"pwr-{district[:2]}-{i:04d}" for i in range(count)]


# ---------------------------------------------------------------- evaluation


def grid_of(kw: np.ndarray, names: list[str], districts: list[str]):
    readings = [(name, "power", districts[i], START + step * MINUTE, {"power_kw": float(kw[i, step])})
                for step in range(kw.shape[1]) for i, name in enumerate(names)]
    return build_grid(readings, START, MINUTE, kw.shape[1])


def test_evaluation_finds_the_meter_leaving_its_district_and_not_its_neighbours():
    kw = district_power(7)
    names = devices(7)
    grid = grid_of(kw, names, [DISTRICT] * 7)
    assert grid.districts == [DISTRICT] * 7
    peer = [a for a in detect(grid, DEFAULT_PARAMS) if a.rule == "peer_departure"]
    assert [a.device for a in peer] == [names[0]]
    # Found while the bypass is being fitted (28 h to 32 h), not before it.
    assert 28 * 3_600_000 < peer[0].start_ms - START < 32 * 3_600_000
    assert peer[0].metric == "power_kw" and peer[0].severity == "warning"
    # And it stays open while the meter stays low (the usual departure learns the bypass within hours).
    assert peer[0].end_ms == START + HOURS * 3_600_000


def test_evaluation_leaves_a_district_with_too_few_meters_alone():
    few = DEFAULT_PARAMS.peer_min_peers - 1
    kw = district_power(few, drop=0.6)
    grid = grid_of(kw, devices(few), [DISTRICT] * few)
    assert [a for a in detect(grid, DEFAULT_PARAMS) if a.rule == "peer_departure"] == []


def test_a_meter_is_compared_with_its_own_district_only():
    # Six meters in each of two districts whose loads differ by a factor of three: no one departs.
    kw = np.vstack([district_power(6, seed=5, drop=0.0), 3 * district_power(6, seed=6, drop=0.0)])
    names = devices(6) + devices(6, "bukit-bestari")
    grid = grid_of(kw, names, [DISTRICT] * 6 + ["bukit-bestari"] * 6)
    assert [a for a in detect(grid, DEFAULT_PARAMS) if a.rule == "peer_departure"] == []


def test_a_district_whose_median_jumps_raises_nothing():
    # Five homes and four shops: with one home's meter silent for an hour the
    # median jumps from a home's load to halfway to a shop's. Every meter
    # "departs" at once: the reference moved, no meter did.
    kw = np.vstack([district_power(5, seed=8, drop=0.0), 8 * district_power(4, seed=9, drop=0.0)])
    kw[0, 30 * 60:31 * 60] = np.nan
    districts = np.array([DISTRICT] * 9, dtype=object)
    plain = calibrate(cusum_evidence(peer_z(kw, districts)))  # without the guard: most of the district alarms
    assert len(incidents(Hysteresis().step(np.where(np.isnan(kw), np.nan, plain)))) >= 5
    assert incidents(Hysteresis().step(peer_scores(kw, districts, warmup_samples(MINUTE)).score)) == []


@pytest.mark.parametrize(("keep", "block_rows"), [(1, 0), (7, 0), (600, 0), (1, 2), (7, 4), (600, 5), (3, 256)])
def test_the_engine_s_peer_scores_district_by_district_are_peer_scores_newest_columns(keep, block_rows):
    """peers.peer_scores_newest (the live check's: a district at a time, the newest columns returned) gives the
    very numbers of peer_scores over the whole grid: three districts (one too small to be compared), a fleet that
    came up late in the window (leading empty columns), a meter departing, gaps and a meter with no reading; the
    districts in blocks of meters (block_rows; 0: whole) and the grid as the history keeps it (float32)."""
    kw = district_power(14, depart_at_h=20.0)
    kw[:, :300] = np.nan  # the window's first five hours: before the fleet came up
    kw[3, 400:460] = np.nan  # a gap
    kw[5] = np.nan  # a meter never heard from
    kw[9:, :900] = np.nan  # the third district came up later still
    kw = kw.astype(np.float32).astype(np.float64)  # the history's float32 means, as the live grid holds them
    districts = np.array(["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["b"] * 3, dtype=object)
    warmup = warmup_samples(MINUTE) // 2
    whole = peer_scores(kw, districts, warmup)
    newest = peer_scores_newest(kw.astype(np.float32), districts, warmup, keep, block_rows=block_rows)
    assert np.nanmax(whole.score[:, -keep:]) > 0  # something is scored in the columns compared
    for name in ("score", "departure", "usual", "z", "scale"):
        np.testing.assert_array_equal(getattr(newest, name), getattr(whole, name)[:, -keep:], err_msg=name)


def test_simulated_city_over_a_weekend_alerts_only_on_faults():
    """fleetsim, a seed not used to choose the guards: Thursday to Monday noon, 35 power meters in four
    districts of homes and shops. Every peer alert after the first day lies on a labelled fault of its meter."""
    import fleetsim

    start = 1_767_200_400_000  # 2026-01-01 00:00 in Tanjungpinang, a Thursday
    readings, faults = fleetsim.generate(fleetsim.load_scenario(), 100, 3, start, 108.0, 60.0)
    grid = build_grid(readings, start, MINUTE, 108 * 60)
    faults_of: dict[str, list[tuple[int, int]]] = {}
    for device, _metric, _fault, begin, end in fleetsim.label_rows(faults):
        faults_of.setdefault(device, []).append((begin, end))
    found = [a for a in peer_alerts(grid, DEFAULT_PARAMS) if a.start_ms >= start + 24 * 3_600_000]
    assert found, "the simulated tampering of this seed is found"
    for alert in found:
        assert any(alert.start_ms < end + 5 * MINUTE and alert.end_ms > begin
                   for begin, end in faults_of.get(alert.device, [])), alert


# ---------------------------------------------------------------- live engine


@pytest.fixture
def district_engine(registry):
    def make(names: list[str], district: str = DISTRICT) -> AnalyticsEngine:
        for name in names:
            registry.add(DeviceNew(id=name, kind="power", district=district))
        return AnalyticsEngine(registry, None, None, EngineParams())
    return make


def run(engine: AnalyticsEngine, names: list[str], kw: np.ndarray) -> tuple[list[dict], list[dict]]:
    """An hour of readings per message, as a meter sending its backlog; process and check_peers after each
    hour. Returns (every alert message, those from check_peers)."""
    messages, from_peers = [], []
    for hour in range(kw.shape[1] // 60):
        steps = range(hour * 60, (hour + 1) * 60)
        for i, name in enumerate(names):
            samples = [(START + s * MINUTE, {"power_kw": round(float(kw[i, s]), 3)}) for s in steps]
            engine.ingest(name, contract.encode_telemetry(hour, samples, "1.0"), START + steps[-1] * MINUTE + 500)
        now = START + steps[-1] * MINUTE + 500
        messages += engine.process(now)
        found = engine.check_peers(now)
        from_peers += found
        messages += found
    return messages, from_peers


def test_engine_check_peers_alerts_the_departing_meter_once(district_engine):
    names = devices(6)
    engine = district_engine(names)
    messages, from_peers = run(engine, names, district_power(6))
    assert {m["device"] for m in messages} == {names[0]}
    opened = [m for m in from_peers if m["state"] == "active"][0]
    assert opened["rule"] == "peer_departure" and opened["severity"] == "warning"
    assert opened["metric"] == "power_kw" and opened["district"] == DISTRICT and opened["kind"] == "power"
    assert 28 * 3_600_000 < opened["started_ms"] - START < 32 * 3_600_000
    assert "below the median of its district's meters" in opened["explanation"]
    assert opened["expected"] > opened["observed"]  # the district's median, above the tampered meter
    assert len({m["id"] for m in messages}) == 1
    # A second check with no new minute scores nothing again.
    assert engine.check_peers(START + HOURS * 3_600_000) == []


def test_engine_peer_finding_and_the_ordinary_detector_share_one_incident(district_engine):
    names = devices(6)
    engine = district_engine(names)
    kw = district_power(6)
    kw[0, 30 * 60:] *= 0.5  # then the bypass is completed: a step the meter's own detectors see too
    messages, from_peers = run(engine, names, kw)
    mine = [m for m in messages if m["device"] == names[0]]
    assert {m["device"] for m in messages} == {names[0]}
    assert from_peers and {m["rule"] for m in from_peers} == {"peer_departure"}
    ordinary = [m for m in mine if m not in from_peers]
    assert ordinary, "the step must be seen by the meter's own detectors too"
    assert len({m["id"] for m in mine}) == 1  # one device, one incident
    members = [m["explanation"] for m in mine if "Affected:" in m["explanation"]]
    assert any("power against its district" in text and "power," in text for text in members)
    assert any("peer:power_kw" in m["message"]["params"].get("affected", []) for m in mine)
    # Neither finding clears the other: the incident is cleared at most once, by the last of them.
    assert [m["state"] for m in mine].count("cleared") <= 1
    if mine[-1]["state"] != "cleared":
        assert (names[0], "readings") in engine.learnt.incidents


def test_engine_district_with_too_few_meters_is_left_alone(district_engine):
    few = DEFAULT_PARAMS.peer_min_peers - 1
    names = devices(few)
    engine = district_engine(names)
    _, from_peers = run(engine, names, district_power(few, drop=0.6))
    assert from_peers == []


def test_engine_check_peers_with_nothing_to_compare(district_engine):
    engine = district_engine(devices(3))
    assert engine.check_peers(START) == []  # nothing ingested yet
    # Readings of devices unknown to the registry, or malformed, never reach the peers.
    engine.ingest("pwr-unknown", contract.encode_telemetry(0, [(START, {"power_kw": 5.0})], "1.0"), START)
    engine.ingest(devices(3)[0], b"\xff{not json", START)
    engine.process(START)
    assert engine.check_peers(START + MINUTE) == []


def run_beside(engine: AnalyticsEngine, names: list[str], kw: np.ndarray, before=None, during=None) -> list[dict]:
    """As run(), the comparison through check_peers_beside: laid out after each hour, finished on its thread,
    its findings handed over at the next call. before(hour), during(hour, now): called before that hour's
    comparison is laid out, and while it runs."""
    from_peers = []
    for hour in range(kw.shape[1] // 60):
        steps = range(hour * 60, (hour + 1) * 60)
        for i, name in enumerate(names):
            samples = [(START + s * MINUTE, {"power_kw": round(float(kw[i, s]), 3)}) for s in steps]
            engine.ingest(name, contract.encode_telemetry(hour, samples, "1.0"), START + steps[-1] * MINUTE + 500)
        now = START + steps[-1] * MINUTE + 500
        engine.process(now)
        if before is not None:
            before(hour)
        assert engine.check_peers_beside(now) == []  # laid out; nothing finished yet
        if engine.peer_running is not None:
            if during is not None:
                during(hour, now)
            engine.peer_running[1].result(timeout=60)
            from_peers += engine.check_peers_beside(now)
    return from_peers


def test_the_peer_comparison_runs_beside_the_stream_and_finds_the_same(district_engine, registry, monkeypatch):
    """While a comparison is held on its thread, another device's readings are scored and its voltage dip alerted at
    once; the comparison's findings, handed over later, are the ones check_peers finds in one go."""
    names = devices(6)
    kw = district_power(6)
    _, expected = run(district_engine(names), names, kw)
    assert expected
    spiky = "pwr-sp-0001"
    registry.add(DeviceNew(id=spiky, kind="power", district="bukit-bestari"))
    engine = AnalyticsEngine(registry, None, None, EngineParams())
    real_scores = peercheck.peers.peer_scores
    release = threading.Event()

    def held_scores(*args, **kwargs):
        assert release.wait(30), "the test never released the comparison"
        return real_scores(*args, **kwargs)

    seen_during = []
    held_hour = HOURS - 2

    def before(hour: int) -> None:
        if hour == held_hour:
            release.clear()

    def during(hour: int, now: int) -> None:
        if hour != held_hour:
            return
        # The comparison waits on its thread; the stream goes on: a meter's readings, then a voltage dip.
        for k in range(30):
            t = now - 29 * MINUTE + k * MINUTE
            value = 150.0 if k == 29 else 230.0 + 0.5 * (k % 3)
            engine.ingest(spiky, contract.encode_telemetry(k, [(t, {"voltage_v": value})], "1.0"), t + 500)
            seen_during.extend(m for m in engine.process(t + 500) if m["device"] == spiky)
        assert not engine.peer_running[1].done()  # still held: the spike was scored beside it
        assert engine.check_peers_beside(now) == []  # one comparison at a time
        release.set()

    monkeypatch.setattr(peercheck.peers, "peer_scores", held_scores)
    release.set()
    found = run_beside(engine, names, kw, before, during)
    assert [m for m in seen_during if m["state"] == "active"], "the dip was not alerted while the peers ran"
    mine = [m for m in found if m["device"] in names]
    assert [(m["id"], m["state"], m["score"], m["updated_ms"] - m["started_ms"]) for m in mine] == \
        [(m["id"], m["state"], m["score"], m["updated_ms"] - m["started_ms"]) for m in expected]
