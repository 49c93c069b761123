"""False alarms over Idul Fitri: the city's calendar in the daily profile against Monday-to-Friday.

The simulator (fleetsim, with the city profile's calendar: a public holiday or a cuti bersama day
is a day off, offices empty and shops' load down as on a weekend) runs the city from Monday
2 March 2026 to Wednesday 25 March with no injected fault, so every alert is a false alarm. The
same detectors (analytics.evaluate.detect, the engine's) score it twice:
  mon-fri    the day-type profile knows only Saturday and Sunday as days off (before this change)
  calendar   it also knows the profile's days off: the holidays library's Indonesian calendar
             (Nyepi 19 March, Idul Fitri) and the profile's cuti bersama days
Counted: alerts that start in the holiday week (Thursday 19 to Tuesday 24 March, local time), and,
as the control, in the same six days a week earlier.

    python bench/bench_holidays.py [--devices 150] [--interval 300] [--seed 7]
"""

import argparse
import datetime
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware-sim"))

from analytics.config import DEFAULT_PARAMS  # noqa: E402
from analytics.evaluate import build_grid, detect, fleet_capacity, merge_by_device  # noqa: E402
from telemetry_shared.city import load_profile  # noqa: E402

DAY_MS = 86_400_000
FIRST_DAY = datetime.date(2026, 3, 2)  # a Monday, two and a half weeks before the holidays
HOLIDAY_WEEK = (datetime.date(2026, 3, 19), datetime.date(2026, 3, 25))  # [start, end)
CONTROL_WEEK = (datetime.date(2026, 3, 12), datetime.date(2026, 3, 18))
LAST_DAY = datetime.date(2026, 3, 25)


def local_ms(day: datetime.date, offset_h: int) -> int:
    midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(midnight.timestamp() * 1000) - offset_h * 3_600_000


def false_alarms(profile_path: Path, devices: int, interval_s: float, seed: int) -> dict:
    """Alerts per window for both calendars on the same simulated fortnights."""
    import fleetsim

    city = load_profile(profile_path)
    offset = city.utc_offset_hours
    scenario = fleetsim.scenario.with_city(fleetsim.load_scenario() | {"faults": {}}, city)
    start_ms = local_ms(FIRST_DAY, offset)
    hours = (LAST_DAY - FIRST_DAY).days * 24 + 24
    readings, _faults = fleetsim.generate(scenario, devices, seed, start_ms, hours, interval_s)
    step_ms = int(interval_s * 1000)
    grid = build_grid(readings, start_ms, step_ms, int(hours * 3600 // interval_s),
                      fleet_capacity(scenario, devices, seed))
    mon_fri = replace(DEFAULT_PARAMS, utc_offset_h=offset)
    calendar = replace(mon_fri, **city.calendar_params(FIRST_DAY - datetime.timedelta(days=10), LAST_DAY))
    out: dict = {}
    for name, params in (("mon-fri", mon_fri), ("calendar", calendar)):
        started = time.perf_counter()
        alerts = detect(grid, params)
        episodes = merge_by_device(alerts)
        for window_name, (first, end) in (("holiday", HOLIDAY_WEEK), ("control", CONTROL_WEEK)):
            low, high = local_ms(first, offset), local_ms(end, offset)
            out[(name, window_name, "alerts")] = sum(low <= a.start_ms < high for a in alerts)
            out[(name, window_name, "devices")] = sum(low <= a.start_ms < high for a in episodes)
        out[(name, "seconds")] = time.perf_counter() - started
    out["days_off"] = sorted(city.days_off(*HOLIDAY_WEEK).items())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=None, help="a city profile (default: CITY_PROFILE)")
    parser.add_argument("--devices", type=int, default=150)
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between readings")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.profile is None:
        from telemetry_shared.settings import get_settings

        args.profile = get_settings().city.path
    result = false_alarms(args.profile, args.devices, args.interval, args.seed)
    print(f"{args.devices} devices, one reading every {args.interval:g} s, {FIRST_DAY} to {LAST_DAY}, no faults")
    print("days off in the holiday week: " + ", ".join(f"{d:%a %d %b} {n}" for d, n in result["days_off"]))
    print(f"{'profile':<10}{'holiday week alerts':>21}{'(device episodes)':>19}{'control week':>14}"
          f"{'(episodes)':>12}{'scoring':>10}")
    for name in ("mon-fri", "calendar"):
        print(f"{name:<10}{result[(name, 'holiday', 'alerts')]:>21}{result[(name, 'holiday', 'devices')]:>19}"
              f"{result[(name, 'control', 'alerts')]:>14}{result[(name, 'control', 'devices')]:>12}"
              f"{result[(name, 'seconds')]:>9.1f}s")
    before, after = result[("mon-fri", "holiday", "alerts")], result[("calendar", "holiday", "alerts")]
    print(f"holiday-week false alarms: {before} -> {after} ({after / before:.2f}x)" if before else "no alarms")


if __name__ == "__main__":
    main()
