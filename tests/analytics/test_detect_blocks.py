"""Detection in blocks of series (analytics.evaluate.detect's block_rows, which bounds its memory on a 2,000-device
week) raises the same alerts, in the same order, as detection of the whole fleet at once: every rule scores a series
on its own but the peer check, which must see a district's meters together."""

import numpy as np

from analytics.config import DEFAULT_PARAMS
from analytics.evaluate import build_grid, detect

START = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MINUTE = 60_000
HOURS = 36
DISTRICTS = {"north": 7, "harbour": 6, "hill": 5}  # meters each


def city() -> list[tuple[str, str, str, int, dict[str, float]]]:
    """Power meters in three districts over a day and a half, by the minute: each district's shared household
    curve; in two districts one meter leaves it from hour 28 (a bypass being fitted), one meter's voltage sags for
    10 minutes, one meter is silent for half an hour, one meter's clock jumps back 10 minutes for an hour."""
    rng = np.random.default_rng(11)
    n = HOURS * 60
    local_hour = (np.arange(n) / 60 + 7) % 24
    curve = 6 + 4 * np.exp(-((local_hour - 19) ** 2) / 8) + 2 * np.exp(-((local_hour - 8) ** 2) / 4)
    ramp = np.clip((np.arange(n) - 28 * 60) / (4 * 60), 0, 1)
    meters = []
    for d, (district, count) in enumerate(DISTRICTS.items()):
        kw = curve[None] * rng.uniform(0.8, 1.2, (count, 1)) * (1 + rng.normal(0, 0.04, (count, n)))
        if district != "hill":
            kw[0] *= 1 - 0.4 * ramp
        volts = 230 + rng.normal(0, 0.5, (count, n))
        meters += [(f"pwr-{d}-{i}", district, kw[i], volts[i]) for i in range(count)]
    meters[3][3][20 * 60:20 * 60 + 10] = 180.0  # a sag
    readings = []
    for step in range(n):
        for m, (name, district, kw, volts) in enumerate(meters):
            if m == 9 and 22 * 60 <= step < 22 * 60 + 30:
                continue  # silent
            skew = 10 * MINUTE if m == 15 and 25 * 60 <= step < 26 * 60 else 0
            readings.append((name, "power", district, START + step * MINUTE - skew,
                             {"power_kw": float(kw[step]), "voltage_v": float(volts[step])}))
    return readings


def test_detection_in_blocks_raises_the_same_alerts_as_all_at_once():
    grid = build_grid(city(), START, MINUTE, HOURS * 60)
    whole = detect(grid, DEFAULT_PARAMS, block_rows=0)
    rules = {a.rule for a in whole}
    # Every kind of rule is in what is compared: per-series, per-device and the peer check in two districts.
    assert {"voltage_out_of_range", "silent", "clock_offset", "peer_departure"} <= rules, rules
    assert len({a.device[:5] for a in whole if a.rule == "peer_departure"}) == 2
    # 4: every district larger than a block (scored alone); 13: two districts together; 1: one series at a time.
    for block_rows in (4, 13, 1):
        assert detect(grid, DEFAULT_PARAMS, block_rows=block_rows) == whole, block_rows


def test_the_peer_check_in_blocks_keeps_districts_whole_and_its_order():
    from analytics.evaluate import peer_alerts

    grid = build_grid(city(), START, MINUTE, HOURS * 60)
    whole = peer_alerts(grid, DEFAULT_PARAMS)
    assert [a.device for a in whole] == ["pwr-0-0", "pwr-1-0"]
    for block_rows in (4, 13):
        assert peer_alerts(grid, DEFAULT_PARAMS, block_rows) == whole, block_rows
