"""The engine applies engineers' approved tuning (telemetry_shared/detector_tuning.py) where a score would
open an alert: a held series opens nothing, an undone change lets the same fault alarm again, and a change
for one device leaves the others alone."""

import pytest

from analytics.config import EngineParams
from analytics.engine import AnalyticsEngine
from telemetry_shared.detector_tuning import (
    DetectorChange,
    DetectorTuningStore,
    TuningCache,
    TuningParamsError,
    check_params,
)
from telemetry_shared.registry import DeviceNew
from tests.analytics.test_engine import START, STEP, feed, voltage_batches

# START is 2026-01-01 00:00 UTC: a Thursday, 07:00 in the city (UTC+7); the sag below starts at 07:13.
SAG = range(80, 90)


@pytest.fixture
def engine(registry):
    registry.add(DeviceNew(id="pwr-0001", kind="power", district="tanjungpinang-kota"))
    registry.add(DeviceNew(id="pwr-0002", kind="power", district="bukit-bestari"))
    engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=64))
    engine.tuning.check_s = 0  # read the registry's tuning on every question (the service: every 2 s)
    return engine


def approve(registry, tuning_id: int, device: str, change: str, params: dict) -> DetectorTuningStore:
    """What the API writes when an engineer approves (api/alarms/tuning.py), into the same registry file."""
    store = DetectorTuningStore(registry.path)
    store.put(DetectorChange(tuning_id, device, "voltage_v", "", change, params), "Dewi (engineer)", START)
    return store


def sag(engine, device: str, start_ms: int = START, seq0: int = 0) -> list[dict]:
    """The alerts a voltage sag opened (their first message each)."""
    opened: dict[str, dict] = {}
    for m in feed(engine, device, voltage_batches(120, start_ms, SAG, seq0=seq0)):
        opened.setdefault(m["id"], m)
    return list(opened.values())


def test_a_calendar_exception_holds_planned_work_and_undo_lets_it_alarm_again(engine, registry):
    store = approve(registry, 7, "pwr-0001", "calendar", {"weekdays": [3], "from_h": 7, "to_h": 8})
    assert sag(engine, "pwr-0001") == []  # Thursday 07:13: the planned work's slot
    assert engine.counters["tuning_held"] > 0
    assert [m["device"] for m in sag(engine, "pwr-0002")] == ["pwr-0002"]  # only that device is tuned
    assert store.remove(7)  # undone
    later = START + 200 * STEP
    assert [m["rule"] for m in sag(engine, "pwr-0001", later, seq0=200)] == ["voltage_out_of_range"]
    store.close()


def test_planned_work_ending_in_its_slot_is_held_to_its_end_not_alarmed_after_the_slot(engine, registry):
    # the slot ends at 07:14, the sag (07:13:20-07:15) and the hysteresis that holds it go on after it
    approve(registry, 12, "pwr-0001", "calendar", {"weekdays": [3], "from_h": 7, "to_h": 7 + 14 / 60}).close()
    assert sag(engine, "pwr-0001") == []
    assert len(sag(engine, "pwr-0001", START + 200 * STEP, seq0=200)) == 1  # 07:46: after the slot, it alarms


def test_a_calendar_exception_outside_its_slot_holds_nothing(engine, registry):
    approve(registry, 8, "pwr-0001", "calendar", {"weekdays": [3], "from_h": 9, "to_h": 11}).close()
    assert len(sag(engine, "pwr-0001")) == 1


def test_a_per_device_threshold_holds_a_sag_above_it_and_a_cutoff_never_holds_a_limit_breach(engine, registry):
    approve(registry, 9, "pwr-0001", "threshold", {"below": 180}).close()  # this feeder runs low by design
    assert sag(engine, "pwr-0001") == []  # 190 V: not below 180
    approve(registry, 10, "pwr-0002", "score_cutoff", {"min_score": 1.0}).close()
    assert len(sag(engine, "pwr-0002")) == 1  # a limit breach scores 1.0: a cut-off lets it through


def test_an_incident_already_open_when_a_change_arrives_goes_on_and_clears(engine, registry):
    batches = voltage_batches(120, START, SAG)
    opened = feed(engine, "pwr-0001", batches[:85])
    assert [m["state"] for m in opened][:1] == ["active"]
    approve(registry, 11, "pwr-0001", "calendar", {"weekdays": [3], "from_h": 0, "to_h": 24}).close()
    rest = feed(engine, "pwr-0001", batches[85:])
    assert rest[-1]["state"] == "cleared" and rest[-1]["id"] == opened[0]["id"]  # not left open on the board


def test_a_change_holds_only_its_own_device_and_metric_below_its_cutoff():
    cache = TuningCache.of([DetectorChange(1, "pwr-0001", "voltage_v", "", "score_cutoff", {"min_score": 0.9})])
    assert cache.holds("pwr-0001", "voltage_v", "unusual_value", 0.85, None, START) == 1
    assert cache.holds("pwr-0001", "voltage_v", "unusual_value", 0.95, None, START) is None
    assert cache.holds("pwr-0001", "current_a", "unusual_value", 0.85, None, START) is None
    assert cache.holds("pwr-0002", "voltage_v", "unusual_value", 0.85, None, START) is None


@pytest.mark.parametrize(("change", "params", "named"), [
    ("score_cutoff", {"min_score": 1.5}, "min_score"), ("score_cutoff", {"min_score": "high"}, "min_score"),
    ("score_cutoff", {}, "min_score"), ("threshold", {"below": 1, "above": 2}, "exactly one"),
    ("threshold", {"below": "x"}, "exactly one"), ("calendar", {"weekdays": [7], "from_h": 1, "to_h": 2}, "weekdays"),
    ("calendar", {"weekdays": [], "from_h": 1, "to_h": 2}, "weekdays"),
    ("calendar", {"weekdays": [1], "from_h": 5, "to_h": 3}, "from_h"),
    ("calendar", {"weekdays": [1], "from_h": 5, "to_h": 25}, "from_h"), ("mute", {}, "unknown change"),
])
def test_bad_parameters_are_refused_naming_them_and_nothing_is_written(registry, change, params, named):
    with pytest.raises(TuningParamsError, match=named):
        check_params(change, params)
    store = DetectorTuningStore(registry.path)
    with pytest.raises(TuningParamsError):
        store.put(DetectorChange(1, "pwr-0001", "voltage_v", "", change, params), "x", START)
    assert store.changes() == []
    store.close()
