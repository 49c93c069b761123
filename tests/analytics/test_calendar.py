"""The city's calendar in the daily profile: a public holiday is a day off like a Sunday, so a shop
closed on a Thursday holiday is expected, not an alarm (and is, when the calendar is left out)."""

import datetime
from dataclasses import replace

import numpy as np

from analytics.config import DEFAULT_PARAMS
from analytics.detectors.seasonal import _is_day_off
from analytics.rules import score_metric
from telemetry_shared.city import load_profile
from tests.city.test_profile import TANJUNGPINANG

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
OFFSET_H = 7


def local_day(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days


def test_days_off_are_weekly_rest_days_and_the_calendar():
    nyepi = datetime.date(2026, 3, 19)  # a Thursday
    params = replace(DEFAULT_PARAMS, utc_offset_h=OFFSET_H, days_off=(local_day(nyepi),))
    noon = np.array([local_day(d) * DAY_MS + 12 * HOUR_MS - OFFSET_H * HOUR_MS
                     for d in (datetime.date(2026, 3, 18), nyepi, datetime.date(2026, 3, 21))])
    assert _is_day_off(noon, params).tolist() == [False, True, True]
    assert _is_day_off(noon, replace(params, days_off=())).tolist() == [False, False, True]
    # a city resting on Friday and Saturday
    friday_rest = replace(params, rest_weekdays=(4, 5), days_off=())
    assert _is_day_off(noon + DAY_MS, friday_rest).tolist() == [False, True, False]


def test_the_profile_gives_indonesian_holidays_and_its_own_days():
    city = load_profile(TANJUNGPINANG)
    off = city.days_off(datetime.date(2026, 3, 16), datetime.date(2026, 3, 25))
    assert datetime.date(2026, 3, 19) in off  # Nyepi, from the holidays library
    assert datetime.date(2026, 3, 21) in off  # Idul Fitri
    assert off[datetime.date(2026, 3, 24)].startswith("Cuti bersama")  # the profile's own
    calendar = city.calendar_params(datetime.date(2026, 3, 16), datetime.date(2026, 3, 25))
    assert calendar["rest_weekdays"] == (5, 6) and local_day(datetime.date(2026, 3, 19)) in calendar["days_off"]


def _shop(days: int, holidays: set[int], step_ms: int, start_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """A shop's load: open 08-20 on working days, closed on weekends and holidays; a little noise."""
    rng = np.random.default_rng(3)
    t = start_ms + step_ms * np.arange(days * DAY_MS // step_ms, dtype=np.int64)
    local = t + OFFSET_H * HOUR_MS
    day, hour = local // DAY_MS, (local % DAY_MS) / HOUR_MS
    closed = ((day + 3) % 7 >= 5) | np.isin(day, list(holidays))
    load = np.where(~closed & (hour >= 8) & (hour < 20), 40.0, 6.0) + rng.normal(0, 0.8, t.shape)
    return load[None, :], t


def test_a_holiday_is_no_alarm_with_the_calendar_and_alarms_without():
    first = datetime.date(2026, 3, 2)  # Monday; Nyepi is the Thursday of the third week
    nyepi = local_day(datetime.date(2026, 3, 19))
    start_ms = local_day(first) * DAY_MS - OFFSET_H * HOUR_MS
    step_ms = 10 * 60_000
    values, times = _shop(19, {nyepi}, step_ms, start_ms)
    on_holiday = (times + OFFSET_H * HOUR_MS) // DAY_MS == nyepi
    alarms = {}
    for name, days_off in (("mon-fri", ()), ("calendar", (nyepi,))):
        params = replace(DEFAULT_PARAMS, utc_offset_h=OFFSET_H, days_off=days_off)
        scores = score_metric("power_kw", values, times, params).score[0]
        alarms[name] = int((scores[on_holiday] >= params.open_score).sum())
    assert alarms["mon-fri"] >= 10, alarms  # the closed shop looks like a fault all day
    assert alarms["calendar"] * 2 <= alarms["mon-fri"], alarms


def test_the_2026_cuti_bersama_of_the_skb_are_days_off():
    """SKB 3 Menteri 1497/2/5 of 2025: eight days of cuti bersama in 2026 (cited in the profile)."""
    city = load_profile(TANJUNGPINANG)
    off = city.days_off(datetime.date(2026, 1, 1), datetime.date(2026, 12, 31))
    skb = {datetime.date(2026, m, d) for m, d in ((2, 16), (3, 18), (3, 20), (3, 23), (3, 24), (5, 15), (5, 28),
                                                   (12, 24))}
    assert {day for day, name in off.items() if name.startswith("Cuti bersama")} == skb
