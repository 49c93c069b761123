"""Alarm priority by consequence and time to respond (ISA-18.2 section 6, EEMUA 191 section 4),
not by detector.

A detector's severity says how sure or how far off a reading is; an operator needs to know what
happens if nobody acts and how soon. The table maps (utility kind, rule) to one of three
priorities:

- high: people lose a service now, act within minutes (a district without water or power, a
  hospital ward full);
- medium: harm follows within the shift if nobody acts (a leak, water quality, a failed cooling);
- low: a maintenance matter for the next working day (a stuck or drifting sensor, a silent
  device, a clock off, a reading that is only unusual);
- advisory: not an alarm at all (ISA-18.2 "alert"): advice nobody must act on within a shift,
  such as CO2 over 1,000 ppm (ventilate). Kept, listed and counted, never on the alarm board: in
  a simulated week it was 85 % of everything raised, the noise that buries the alarms.

The most specific entry wins: "<kind>.<metric>:<rule>", then "<kind>:<rule>", then "*:<rule>";
an unlisted rule is low (a new detector earns a higher priority by an entry here, not by
default). CITY_API_ALARM_PRIORITIES overrides entries.
The mix this table gives on a simulated week: api/README.md (`bench/bench_alarm_priority.py`).
"""

from collections.abc import Mapping

from edge import contract

PRIORITIES = ("low", "medium", "high")  # low to high: the alarms
ADVISORY = "advisory"  # not an alarm: off the alarm board

DEFAULT_TABLE: dict[str, str] = {
    # high: a service lost now
    "water:pressure_low": "high",  # no water at the taps (a main burst drops pressure)
    "power:supply_lost": "high",  # no power: the voltage under 10 % of the nominal (analytics/config.py)
    "building:ward_full": "high",  # a hospital ward with no free bed
    "*:district_outage": "high",  # the district root alarm (api/alarms/policy.py)
    # medium: harm within the shift
    "power:voltage_out_of_range": "medium",  # a sag or swell: appliances at risk, a tap or feeder to fix
    "power:frequency_out_of_range": "medium",
    "water:night_flow_rise": "medium",  # a leak growing night after night
    "water:dma_burst": "medium",  # a burst of 1 L/s or more in a DMA: a crew to send (analytics/waterwatch.py)
    "water:level_shift": "medium",  # flow stepping up and staying: a leak or a burst main
    "water:unusual_value": "medium",
    "traffic:unusual_value": "medium",  # speed collapsing on one road: an incident blocking it
    "water:chlorine_out_of_range": "medium",
    "water:turbidity_high": "medium",
    "building:temperature_high": "medium",  # failed cooling
    "building.temperature_c:level_shift": "medium",  # the same, seen before the 32 degC limit
    "building.temperature_c:unusual_value": "medium",
    "building:co2_unacceptable": "medium",
    # low: maintenance (stated so the table reads as a decision, not an omission)
    "*:stuck_sensor": "low",
    "*:drift": "low",
    "*:silent": "low",
    "*:clock_offset": "low",
    "*:sensor_fault": "low",
    "*:unusual_value": "low",
    "*:level_shift": "low",
    "*:off_daily_profile": "low",
    "*:peer_departure": "low",
    "*:co2_high": ADVISORY,  # ventilate: advice, not an alarm
    "*:power_factor_low": "low",
}
DEFAULT_PRIORITY = "low"


class PriorityTable:
    """(kind, rule) -> priority, from the default table and the configured overrides."""

    def __init__(self, overrides: Mapping[str, str] | None = None):
        self.table = dict(DEFAULT_TABLE)
        for key, priority in (overrides or {}).items():
            check_entry(key, priority)
            self.table[key] = priority

    def __call__(self, kind: str, rule: str, metric: str = "") -> str:
        return (self.table.get(f"{kind}.{metric}:{rule}") or self.table.get(f"{kind}:{rule}")
                or self.table.get(f"*:{rule}") or DEFAULT_PRIORITY)


def check_entry(key: str, priority: str) -> None:
    """Refuse an override that would not mean anything, naming it (CITY_API_ALARM_PRIORITIES)."""
    where, sep, rule = key.partition(":")
    kind, dot, metric = where.partition(".")
    bad_metric = dot and (kind not in contract.KINDS or metric not in contract.KINDS[kind])
    if not sep or not rule or (kind != "*" and kind not in contract.KINDS) or bad_metric:
        raise ValueError(f"CITY_API_ALARM_PRIORITIES: bad key {key[:60]!r}: '<kind or *>:<rule>' or "
                         f"'<kind>.<metric>:<rule>', kind one of {', '.join(contract.KINDS)}")
    if priority not in (*PRIORITIES, ADVISORY):
        raise ValueError(f"CITY_API_ALARM_PRIORITIES[{key[:60]!r}]: {str(priority)[:20]!r} is not one of "
                         f"{', '.join((*PRIORITIES, ADVISORY))}")


def rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else -1
