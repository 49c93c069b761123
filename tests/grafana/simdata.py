"""Simulated city data in the storage schema, as line protocol, for the dashboard tests.

Two devices of each kind in two districts over the last 26 hours, with an
outage, a traffic jam, analytics alerts, ingest counters and device status,
so every panel has something real to show. Every device was offline for
five hours (from step 100, each device half an hour later than the one before):
those readings are stored as ingest stores backfill, hist=true, the rest
hist=false.
"""

import math

from edge import contract

STEP_MS = 10 * 60 * 1000
SPAN_MS = 26 * 3600 * 1000
DISTRICTS = ("tanjungpinang-kota", "bukit-bestari")
DEVICES = {  # device -> (kind, district)
    f"{kind[:3]}-{n:04d}": (kind, DISTRICTS[n % 2]) for kind in sorted(contract.KINDS) for n in (1, 2)
}
TYPICAL = {
    "flow_lps": 40.0, "pressure_bar": 3.2, "level_m": 6.0, "turbidity_ntu": 0.4, "chlorine_mgl": 0.6,
    "voltage_v": 229.0, "current_a": 120.0, "power_kw": 25.0, "energy_kwh": 1000.0, "power_factor": 0.93,
    "frequency_hz": 50.0, "temperature_c": 27.0, "humidity_pct": 75.0, "co2_ppm": 800.0, "occupancy": 40.0,
    "beds_free": 12.0, "vehicle_count": 60.0, "speed_kmh": 38.0, "occupancy_pct": 20.0,
}


BACKFILLED_STEPS = 30  # five hours at 10 minutes


def backfilled(device_index: int, step: int) -> bool:
    """Whether that reading was sent late from the device's buffer (hist=true)."""
    first = 100 + 3 * device_index
    return first <= step < first + BACKFILLED_STEPS


def _value(metric: str, step: int) -> float:
    base = TYPICAL[metric]
    daily = math.sin(2 * math.pi * step * STEP_MS / 86_400_000)
    value = base * (1 + 0.2 * daily) if metric not in ("power_factor", "frequency_hz") else base
    if metric == "voltage_v" and step % 50 == 7:
        value = 0.0  # an outage
    if metric == "speed_kmh" and step % 40 == 3:
        value = 8.0  # a jam
    lo, hi = contract.METRICS[metric][2], contract.METRICS[metric][3]
    return min(max(value, lo), hi)


WATER_BALANCE = {f"dma-{n:04d}": DISTRICTS[n % 2] for n in (1, 2, 3, 4)}  # DMA -> district of its inlet


def water_balance_lines(now_ms: int) -> list[str]:
    """The daily water balance per DMA as `city water-balance --write` stores it, for the last three days."""
    out = []
    for n, (dma, district) in enumerate(WATER_BALANCE.items()):
        for day in range(3):
            t = now_ms - now_ms % 86_400_000 - day * 86_400_000
            siv, billed, real = 500.0 + 50 * n, 380.0 + 20 * n, 80.0 + 25 * n + 5 * day
            out.append(f"water_balance,dma={dma},district={district} system_input_m3={siv},billed_m3={billed},"
                       f"real_losses_m3={real},apparent_losses_m3={siv - billed - real},nrw_m3={siv - billed},"
                       f"nrw_pct={100 * (siv - billed) / siv},leakage_lps={real / 86.4} {t}")
    return out


def lines(now_ms: int) -> list[str]:
    out = water_balance_lines(now_ms)
    start = now_ms - SPAN_MS
    steps = SPAN_MS // STEP_MS
    for index, (device, (kind, district)) in enumerate(DEVICES.items()):
        tags = f"device={device},district={district}"
        for step in range(steps):
            t = start + step * STEP_MS
            fields = ",".join(f"{m}={_value(m, step)}" for m in sorted(contract.KINDS[kind]))
            hist = "true" if backfilled(index, step) else "false"
            out.append(f"{kind},{tags} {fields},seq={step}i,hist={hist} {t}")
            if step % 6 == 0:
                out.append(f"device_status,{tags},kind={kind} rssi_dbm={-70 - step % 30},battery_v=3.{step % 9},"
                           f"mem_free={50000 + step},uptime_s={step * 600} {t}")
        for n, severity in enumerate(("warning", "critical")):
            metric = sorted(contract.KINDS[kind])[0]
            out.append(f"alerts,device={device},district={district},kind={kind},metric={metric},"
                       f"rule={metric}_zscore,severity={severity} state=\"active\",score=0.9{n},"
                       f"explanation=\"{metric} far from its usual value\",id=\"inc-{device}-{n}\" "
                       f"{now_ms - (n + 1) * 3_600_000}")
    for worker in ("ingest-0", "ingest-1"):
        for step in range(steps):
            t = start + step * STEP_MS
            counters = {"received": step * 100, "points_written": step * 500, "spooled": step // 2,
                        "replayed": step // 3, "rejected_malformed_json": step // 10,
                        "rejected_out_of_bounds": step // 5, "sequence_gaps": step // 20,
                        "rejected": step // 10 + step // 5, "writes": step * 5}
            fields = ",".join(f"{name}={value}i" for name, value in counters.items())
            out.append(f"ingest_stats,worker={worker} {fields},write_seconds_max=0.0{step % 9 + 1},"
                       f"write_seconds_sum={step * 0.04} {t}")
            for device in DEVICES:
                out.append(f"ingest_device_stats,device={device},worker={worker} sequence_gaps={step // 30}i {t}")
    for step in range(steps):  # the API's alarm KPIs (api/alarms/kpis.py influx_line, the real format)
        out.append(alarm_kpis_line(step, start + step * STEP_MS))
    for step in range(steps):  # the API's notification outbox (api/alerts/notify.py stats_line)
        out.append(f"notify_stats pending={step % 3}i,sent={step}i,failed={step // 50}i,oldest_pending_s=1.5 "
                   f"{start + step * STEP_MS}")
    return out + power_report_lines(now_ms)


def power_report_lines(now_ms: int) -> list[str]:
    """What `city power-quality --write` stores (analytics/powerreport.py write_lines, the real format): feeders'
    daily losses, the power meters' weekly verdicts (one failing), a tampering suspect in each district."""
    from analytics.powerreport import PowerReport, write_lines

    midnight = now_ms - now_ms % 86_400_000
    meters = {d: district for d, (kind, district) in DEVICES.items() if kind == "power"}
    report = PowerReport(midnight - 3 * 86_400_000, 3, None, sorted(meters), 0, None)  # type: ignore[arg-type]
    feeders = {f"fdr-{n}": (f"pow-000{n}", meters[f"pow-000{n}"]) for n in (1, 2)}
    report.feeder_rows = [{"feeder": f, "transformer": t} for f, (t, _) in feeders.items()]
    report.daily_rows = [{"feeder": f, "day_start_ms": midnight - d * 86_400_000, "input_kwh": 900.0 + 10 * d,
                          "billed_kwh": 840.0, "loss_kwh": 60.0 + 10 * d,
                          "loss_pct": 100 * (60 + 10 * d) / (900 + 10 * d)} for f in feeders for d in range(3)]
    report.suspect_rows = [{"rank": n, "device": t, "feeder": f, "since_ms": midnight - 86_400_000, "drop_pct": 45.0,
                            "unrecorded_kwh": 30.0 * n} for n, (f, (t, _)) in enumerate(feeders.items(), 1)]
    lines = write_lines(report, meters)
    for device in sorted(meters):  # two verdicts each inside the tests' 2-day range: one failing, one passing
        for n, hours_ago in enumerate((6, 12)):
            lines.append(f"power_quality,device={device},district={meters[device]} pass={float(n)},"
                         f"voltage_pass={float(n)},frequency_pass=1.0,voltage_share_in_band={0.93 + 0.06 * n},"
                         f"voltage_min_v=190.5,voltage_max_v=247.0,frequency_share_in_band=1.0 "
                         f"{now_ms - hours_ago * 3_600_000}")
    return lines


def alarm_kpis_line(step: int, t_ms: int) -> str:
    from api.alarms.kpis import AlarmKpis, Durations, influx_line

    timing = Durations(count=step, median_s=30.0 + step, p90_s=120.0 + step)
    kpis = AlarmKpis(since_ms=t_ms - 3_600_000, until_ms=t_ms, hours=1.0, operator_positions=1, raised=step + 2,
                     annunciated=step, advisories=step % 4, per_operator_hour=float(step), per_10min_mean=step / 6,
                     per_10min_max=step % 12, periods=6, periods_in_flood=int(step % 12 > 10),
                     flood_percent=100 / 6 * int(step % 12 > 10), flood_count=10, top_sources=[],
                     chattering_sources=step % 2, chattering_alarms=step % 2, stale_now=1, shelved_now=step % 3,
                     suppressed_now=2, false_alarms=step % 5, planned_work=1,
                     priority_mix={"high": 1, "medium": 2, "low": step},
                     priority_percent={}, time_to_ack=timing, time_to_resolve=timing)
    return influx_line(kpis, flood_now=step % 12 > 10)
