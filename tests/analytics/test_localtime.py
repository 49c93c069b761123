"""Local days in a zone with daylight saving: the zone's real offset at each moment (zoneinfo), not
its standard offset. New York springs forward on 2026-03-08 (02:00 EST -> 03:00 EDT, 07:00 UTC)
and falls back on 2026-11-01 (02:00 EDT -> 01:00 EST, 06:00 UTC)."""

import datetime as dt
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.config import DEFAULT_PARAMS
from analytics.detectors import night_minimum
from analytics.detectors.seasonal import _is_day_off
from analytics.localtime import DAY_MS, offsets_ms, to_local, to_utc
from api.routes.public import day_start_ms
from telemetry_shared.settings import Settings

ZONE = "America/New_York"
ROOT = Path(__file__).resolve().parents[2]
SPRING = int(dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC).timestamp() * 1000)
AUTUMN = int(dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC).timestamp() * 1000)
MINUTE = 60_000


def _utc_ms(year, month, day, hour, minute=0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize("moment", [SPRING, AUTUMN])
def test_offsets_follow_the_zone_to_the_second_around_each_transition(moment):
    t = moment + np.arange(-3 * 60, 3 * 60) * MINUTE
    t = np.concatenate([t, [moment - 1000, moment, moment + 1000]])
    zone = ZoneInfo(ZONE)
    reference = [int(dt.datetime.fromtimestamp(v / 1000, zone).utcoffset().total_seconds() * 1000) for v in t]
    assert offsets_ms(t, ZONE).tolist() == reference
    assert offsets_ms(np.array([moment - 1000]), ZONE)[0] != offsets_ms(np.array([moment]), ZONE)[0]


def test_a_zone_without_daylight_saving_keeps_its_offset_and_an_empty_zone_the_fixed_one():
    t = np.array([SPRING, AUTUMN, _utc_ms(2026, 7, 1, 0)])
    assert set(offsets_ms(t, "Asia/Jakarta").tolist()) == {7 * 3_600_000}
    assert (to_local(t, "", -5) - t).tolist() == [-5 * 3_600_000] * 3
    assert offsets_ms(np.array([], dtype=np.int64), ZONE).shape == (0,)


def test_a_summer_monday_just_after_local_midnight_is_a_working_day():
    # 2026-03-09 00:30 EDT is Monday; at the standard offset (-5) it would still be Sunday 23:30.
    monday_early = np.array([_utc_ms(2026, 3, 9, 4, 30)])
    fixed = replace(DEFAULT_PARAMS, utc_offset_h=-5)
    zoned = replace(fixed, time_zone=ZONE)
    assert _is_day_off(monday_early, fixed).tolist() == [True]  # the bug this fixes
    assert _is_day_off(monday_early, zoned).tolist() == [False]
    # and the local day number itself
    assert to_local(monday_early, ZONE)[0] // DAY_MS == (dt.date(2026, 3, 9) - dt.date(1970, 1, 1)).days


def test_the_night_window_is_local_02_to_04_on_both_sides_of_the_spring_transition():
    # a meter with one low reading at 02:30 local each night, 2026-03-06 .. 03-11 (EST then EDT)
    days = [dt.date(2026, 3, d) for d in range(6, 12)]
    zone = ZoneInfo(ZONE)
    dips = [int(dt.datetime(d.year, d.month, d.day, 2, 30, tzinfo=zone).timestamp() * 1000) for d in days
            if d != dt.date(2026, 3, 8)]  # 02:30 does not exist on the 8th
    start = dips[0] - 6 * 3_600_000
    times = start + np.arange(0, 7 * 24 * 60, 10) * MINUTE
    times = np.unique(np.concatenate([times, dips]))
    values = np.where(np.isin(times, dips), 1.0, 5.0)[None, :]
    params = replace(DEFAULT_PARAMS, utc_offset_h=-5, time_zone=ZONE)
    nights, minima, ready = night_minimum(values, times, -5, params)
    dip_nights = [(d - dt.date(1970, 1, 1)).days for d in days if d != dt.date(2026, 3, 8)]
    assert all(minima[0][list(nights).index(n)] == 1.0 for n in dip_nights)
    # each window closes at 04:00 local: 09:00 UTC in winter, 08:00 UTC in summer
    closes = {dt.datetime.fromtimestamp(r / 1000, zone).strftime("%H:%M") for r in ready}
    assert closes == {"04:00"}
    fixed = replace(params, time_zone="")
    nights_fixed, minima_fixed, _ = night_minimum(values, times, -5, fixed)
    summer = [(dt.date(2026, 3, d) - dt.date(1970, 1, 1)).days for d in (9, 10, 11)]
    # at the standard offset the summer dip (02:30 EDT) is 01:30: outside the window, the leak check blind to it
    assert [minima_fixed[0][list(nights_fixed).index(n)] for n in summer] == [5.0, 5.0, 5.0]


def test_local_to_utc_round_trips_outside_the_gap():
    for moment in (_utc_ms(2026, 1, 15, 12), _utc_ms(2026, 7, 15, 12), SPRING + 3_600_000, AUTUMN + 3_600_000):
        assert to_utc(int(to_local(moment, ZONE)), ZONE) == moment


def _dst_settings(tmp_path: Path) -> Settings:
    profile = tmp_path / "dst-city.yaml"
    profile.write_text((ROOT / "cities" / "honolulu.yaml").read_text().replace("Pacific/Honolulu", ZONE))
    return Settings(profile=profile, data_dir=tmp_path)


def test_a_dst_city_profile_gives_the_public_figures_a_local_midnight_in_summer_and_winter(tmp_path):
    settings = _dst_settings(tmp_path)
    assert settings.local_zone == ZONE and settings.utc_offset_hours == -5  # the standard offset, kept for old callers
    services = SimpleNamespace(settings=settings)
    assert day_start_ms(services, _utc_ms(2026, 7, 1, 12)) == _utc_ms(2026, 7, 1, 4)  # EDT midnight
    assert day_start_ms(services, _utc_ms(2026, 1, 15, 12)) == _utc_ms(2026, 1, 15, 5)  # EST midnight
    # the day of the spring transition began at EST midnight, though it is EDT by noon
    assert day_start_ms(services, _utc_ms(2026, 3, 8, 16)) == _utc_ms(2026, 3, 8, 5)
    # CITY_UTC_OFFSET_HOURS still fixes the offset when someone sets it
    fixed = Settings(profile=settings.profile, data_dir=tmp_path, utc_offset_hours=-5)
    assert fixed.local_zone == "" and day_start_ms(SimpleNamespace(settings=fixed), _utc_ms(2026, 7, 1, 12)) == \
        _utc_ms(2026, 7, 1, 5)


def test_the_daily_profile_looks_back_to_the_same_local_time_across_a_transition():
    from analytics.detectors.seasonal import _same_local_time
    from analytics.localtime import fixed_offset_ms

    zoned = replace(DEFAULT_PARAMS, utc_offset_h=-5, time_zone=ZONE)
    nine_edt = np.array([_utc_ms(2026, 3, 9, 13)])  # 09:00 EDT, the day after the spring transition
    assert _same_local_time(nine_edt, DAY_MS, zoned).tolist() == [_utc_ms(2026, 3, 8, 13)]  # 09:00 EDT
    assert _same_local_time(nine_edt, 2 * DAY_MS, zoned).tolist() == [_utc_ms(2026, 3, 7, 14)]  # 09:00 EST
    assert _same_local_time(nine_edt, 3_600_000, zoned).tolist() == [_utc_ms(2026, 3, 9, 12)]  # not whole days
    fixed = replace(zoned, time_zone="")
    assert _same_local_time(nine_edt, 2 * DAY_MS, fixed).tolist() == [_utc_ms(2026, 3, 7, 13)]  # 08:00 EST
    # a zone that keeps one offset costs what a fixed offset costs
    assert fixed_offset_ms("Asia/Jakarta") == 7 * 3_600_000 and fixed_offset_ms(ZONE) is None
