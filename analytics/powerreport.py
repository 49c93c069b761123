"""The electricity report over a date range, read from InfluxDB: EN 50160 verdicts per meter and week,
losses per feeder and day, tampering suspects. What `city power-quality` prints and the weekly report's
electricity section holds.

Reads (InfluxQL, each one query for every meter; the arrays are filled without a loop per meter):
- 10-minute means of voltage_v, power_kw and frequency_hz per meter (GROUP BY time(10m), "device");
- frequency_hz readings counted per meter and 10 minutes (all, inside the band, outside the always-limits;
  EN 50160 §4.2.1 judges 10-s means: each reading stands for one, see _frequency_counts);
- energy_kwh at the end of each local day (last, GROUP BY time(1d, offset)) from the day before the range:
  the daily energy is the difference (a counter that went back, i.e. a reset or replaced meter, is no value);
- the feeders (telemetry_shared/network.py Topology: transformer and customer meters).
Local days use the city's standard UTC offset (as Grafana's day buckets; see cities/README.md).
"""

from dataclasses import dataclass, field

import numpy as np

from analytics import en50160
from analytics.feederloss import Suspects, feeder_losses, tampering_suspects
from telemetry_shared.influx import InfluxQL

DAY_MS = 86_400_000
SLOT_MS = en50160.SLOT_S * 1000
MAX_DAYS = 366  # one report covers at most a year
REPORT_TIMEOUT_S = 300.0  # a report reads weeks of every meter in a few queries: each may take minutes


@dataclass
class PowerReport:
    start_ms: int
    days: int
    limits: en50160.Limits
    meters: list[str]  # every power meter with readings, sorted
    weeks: int
    verdicts: en50160.WeekVerdicts | None  # (meters, weeks); None for a range shorter than a week
    feeder_ids: list[str] = field(default_factory=list)
    feeder_rows: list[dict] = field(default_factory=list)
    suspect_rows: list[dict] = field(default_factory=list)
    daily_rows: list[dict] = field(default_factory=list)

    def meter_rows(self) -> list[dict]:
        """One row per meter and week: the verdicts and the figures behind them (JSON-ready)."""
        if self.verdicts is None:
            return []
        v = self.verdicts
        rows = []
        for m, w in zip(*np.indices(v.voltage.shape).reshape(2, -1), strict=True):  # output rows, one each
            rows.append({
                "device": self.meters[m], "week_start_ms": self.start_ms + int(w) * 7 * DAY_MS,
                "verdict": str(v.overall[m, w]), "voltage": str(v.voltage[m, w]),
                "voltage_share_in_band": _num(v.voltage_share_in_band[m, w]),
                "voltage_min_v": _num(v.voltage_min_v[m, w]), "voltage_max_v": _num(v.voltage_max_v[m, w]),
                "voltage_outside_always": int(v.voltage_outside_always[m, w]),
                "voltage_coverage": _num(v.voltage_coverage[m, w]),
                "frequency": str(v.frequency[m, w]), "frequency_share_in_band": _num(v.frequency_share_in_band[m, w]),
                "frequency_min_hz": _num(v.frequency_min_hz[m, w]), "frequency_max_hz": _num(v.frequency_max_hz[m, w]),
                "frequency_outside_always": int(v.frequency_outside_always[m, w]),
            })
        return rows

    def summary(self) -> dict:
        counts = {"pass": 0, "fail": 0, "no_data": 0}
        if self.verdicts is not None:
            values, n = np.unique(self.verdicts.overall, return_counts=True)
            counts |= {str(k): int(c) for k, c in zip(values, n, strict=True)}
        return {"meters": len(self.meters), "weeks": self.weeks, "meter_weeks": counts,
                "feeders": len(self.feeder_ids), "suspects": len(self.suspect_rows)}


def _num(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _grid(series: list[dict], columns: list[str], meters: dict[str, int], start_ms: int, n_slots: int,
          step_ms: int) -> dict[str, np.ndarray]:
    """InfluxQL series (one per device) -> (meters, slots) arrays per column, NaN where no value."""
    out = {c: np.full((len(meters), n_slots), np.nan) for c in columns}
    chunks = [(meters[s["tags"]["device"]], s["values"]) for s in series
              if s.get("values") and s.get("tags", {}).get("device") in meters]
    if not chunks:
        return out
    rows = np.concatenate([np.full(len(values), row) for row, values in chunks])
    table = np.array([v for _, values in chunks for v in values], dtype=np.float64)  # None -> NaN
    slot = (table[:, 0].astype(np.int64) - start_ms) // step_ms
    keep = (slot >= 0) & (slot < n_slots)
    for i, column in enumerate(columns, start=1):
        out[column][rows[keep], slot[keep]] = table[keep, i]
    return out


def _frequency_counts(influx: InfluxQL, where: str, limits: en50160.Limits, meters: dict[str, int], start_ms: int,
                      n_slots: int) -> dict[str, np.ndarray]:
    """Per meter and 10 minutes: frequency readings inside the band and outside the always-limits."""
    # Each reading is counted as one 10-s mean: exact at the platform's 10 s sampling, a sample of the
    # windows when slower, stricter than the standard when faster. (A 10-s GROUP BY subquery would say
    # the standard's words exactly, but influxd 1.6 walks every empty 10-s bucket: minutes a week.)
    lo, hi = limits.frequency_band_hz
    alo, ahi = limits.frequency_always_hz
    grids = {}
    for name, condition in (("inside", f'"frequency_hz" >= {lo!r} AND "frequency_hz" <= {hi!r}'),
                            ("outside", f'("frequency_hz" < {alo!r} OR "frequency_hz" > {ahi!r})')):
        series = influx.series(f'SELECT count("frequency_hz") AS c FROM "power" WHERE {where} AND {condition} '
                               'GROUP BY time(10m), "device" fill(none)')
        grids[name] = _grid(series, ["c"], meters, start_ms, n_slots, SLOT_MS)["c"]
    return grids


def _weekly(grid: np.ndarray, weeks: int, how: str) -> np.ndarray:
    per_week = grid[:, : weeks * en50160.SLOTS_PER_WEEK].reshape(grid.shape[0], weeks, en50160.SLOTS_PER_WEEK)
    if how == "sum":
        return np.nansum(per_week, axis=2)
    with np.errstate(invalid="ignore"):
        filled = np.where(np.isfinite(per_week), per_week, np.inf if how == "min" else -np.inf)
        value = filled.min(axis=2) if how == "min" else filled.max(axis=2)
    return np.where(np.isfinite(value), value, np.nan)


def build_report(influx: InfluxQL, topology: object | None, limits: en50160.Limits, start_ms: int, days: int,
                 utc_offset_h: int, quality: bool = True) -> PowerReport:
    """Everything over [start_ms, start_ms + days): start_ms a local midnight; quality=False skips the EN 50160
    verdicts (their frequency queries). Raises ValueError on a bad range and InfluxError when InfluxDB does not
    answer."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a report covers 1 to {MAX_DAYS} days, not {days}")
    end_ms = start_ms + days * DAY_MS
    where = f"time >= {start_ms}ms AND time < {end_ms}ms"
    series = influx.series(f'SELECT mean("voltage_v") AS v, mean("power_kw") AS p, count("frequency_hz") AS c, '
                           f'min("frequency_hz") AS lo, max("frequency_hz") AS hi FROM "power" WHERE {where} '
                           'GROUP BY time(10m), "device" fill(none)')
    meters = sorted({s["tags"]["device"] for s in series if s.get("tags", {}).get("device")})
    index = {m: i for i, m in enumerate(meters)}
    n_slots = days * DAY_MS // SLOT_MS
    weeks = days // 7
    means = _grid(series, ["v", "p", "c", "lo", "hi"], index, start_ms, n_slots, SLOT_MS)
    verdicts = None
    if weeks and meters and quality:
        volts = means["v"][:, : weeks * en50160.SLOTS_PER_WEEK]
        v = en50160._judge(volts.reshape(len(meters), weeks, en50160.SLOTS_PER_WEEK), limits.voltage_band_v,
                           limits.voltage_always_v, en50160.VOLTAGE_SHARE)
        f = _frequency_counts(influx, where, limits, index, start_ms, n_slots)
        coverage = v[4]  # the same readings carry voltage and frequency: the voltage's slots present
        fv = en50160.judge_counts(_weekly(means["c"], weeks, "sum"), _weekly(f["inside"], weeks, "sum"),
                                  _weekly(f["outside"], weeks, "sum"), coverage, _weekly(means["lo"], weeks, "min"),
                                  _weekly(means["hi"], weeks, "max"), en50160.FREQ_SHARE)
        verdicts = en50160.WeekVerdicts(*v, *fv)
    report = PowerReport(start_ms, days, limits, meters, weeks, verdicts)
    if topology is not None and len(topology.ids):
        _feeders(report, influx, topology, means["p"], start_ms, days, utc_offset_h)
    return report


def _daily_energy(influx: InfluxQL, devices: list[str], start_ms: int, days: int, utc_offset_h: int) -> np.ndarray:
    offset_h = (-utc_offset_h) % 24
    series = influx.series(f'SELECT last("energy_kwh") AS e FROM "power" WHERE time >= {start_ms - DAY_MS}ms AND '
                           f'time < {start_ms + days * DAY_MS}ms GROUP BY time(1d, {offset_h}h), "device" fill(none)')
    index = {d: i for i, d in enumerate(devices)}
    counters = _grid(series, ["e"], index, start_ms - DAY_MS, days + 1, DAY_MS)["e"]
    daily = np.diff(counters, axis=1)
    return np.where(daily >= 0, daily, np.nan)  # a counter that went back: a reset or a new meter


def _feeders(report: PowerReport, influx: InfluxQL, topology: object, power_kw: np.ndarray, start_ms: int,
             days: int, utc_offset_h: int) -> None:
    transformers = list(topology.transformer)
    customer = topology.role == "customer"
    customers = list(topology.meters[customer])
    feeder_of = topology.network_of[customer].astype(np.int64)
    energy = _daily_energy(influx, transformers + customers, start_ms, days, utc_offset_h)
    t_energy, c_energy = energy[: len(transformers)], energy[len(transformers):]
    losses = feeder_losses(t_energy, c_energy, feeder_of)
    report.feeder_ids = [str(f) for f in topology.ids]
    index = {m: i for i, m in enumerate(report.meters)}
    rows = np.array([index.get(t, -1) for t in transformers])
    p = np.where(rows[:, None] >= 0, power_kw[np.maximum(rows, 0)], np.nan)
    load_squared = np.nansum((p**2).reshape(len(transformers), days, -1), axis=2)
    suspects = tampering_suspects(t_energy, c_energy, feeder_of, load_squared) if days >= 6 else None
    counts = np.bincount(feeder_of, minlength=len(transformers))
    failing = _failing_meters(report, transformers, customers, feeder_of)
    for f, feeder in enumerate(report.feeder_ids):
        report.feeder_rows.append({
            "feeder": feeder, "transformer": transformers[f], "customers": int(counts[f]),
            "input_kwh": _num(losses.period_input_kwh[f]), "loss_kwh": _num(losses.period_loss_kwh[f]),
            "loss_pct": _num(losses.period_loss_pct[f]), "complete_days": int(losses.complete_days[f]),
            "days": days, "en50160_failing_meters": int(failing[f])})
        for d in range(days):  # the daily table: one output row per feeder and day
            report.daily_rows.append({
                "feeder": feeder, "day_start_ms": start_ms + d * DAY_MS, "input_kwh": _num(losses.input_kwh[f, d]),
                "billed_kwh": _num(losses.billed_kwh[f, d]), "loss_kwh": _num(losses.loss_kwh[f, d]),
                "loss_pct": _num(losses.loss_pct[f, d]), "missing_meters": int(losses.missing_meters[f, d])})
    if suspects is not None:
        report.suspect_rows = _suspect_rows(suspects, customers, feeder_of, report.feeder_ids, start_ms)


def _failing_meters(report: PowerReport, transformers: list[str], customers: list[str],
                    feeder_of: np.ndarray) -> np.ndarray:
    """Per feeder: how many of its meters fail EN 50160 in some week of the range."""
    out = np.zeros(len(transformers), dtype=np.int64)
    if report.verdicts is None:
        return out
    failing = set(np.array(report.meters)[(report.verdicts.overall == en50160.FAIL).any(axis=1)].tolist())
    members = np.array(transformers + customers)
    feeder = np.concatenate([np.arange(len(transformers)), feeder_of])
    hit = np.isin(members, list(failing))
    np.add.at(out, feeder[hit], 1)
    return out


def _suspect_rows(s: Suspects, customers: list[str], feeder_of: np.ndarray, feeder_ids: list[str],
                  start_ms: int) -> list[dict]:
    order = np.argsort(np.where(s.rank >= 0, s.rank, np.iinfo(np.int64).max))[: int(s.suspect.sum())]
    return [{"rank": int(s.rank[c]) + 1, "device": customers[c], "feeder": feeder_ids[feeder_of[c]],
             "since_ms": start_ms + int(s.step_day[c]) * DAY_MS, "share_before": _num(s.share_before[c]),
             "share_after": _num(s.share_after[c]), "drop_pct": _num(100 * s.drop[c]), "p": float(s.p[c]),
             "meter_drop_kwh_day": _num(s.meter_drop_kwh_day[c]),
             "feeder_loss_rise_kwh_day": _num(s.feeder_loss_rise_kwh_day[c]),
             "unrecorded_kwh": _num(s.unrecorded_kwh[c])} for c in order]


# What `city power-quality --write` stores for Grafana (grafana/power_board.py): floats only, a field never
# changes type; times are local midnights (a feeder's day, a meter's week, a suspect's first day).
FEEDER_MEASUREMENT, METER_MEASUREMENT, SUSPECT_MEASUREMENT = "feeder_losses", "power_quality", "tampering_suspects"


def write_lines(report: PowerReport, district_of: dict[str, str]) -> list[str]:
    """The report as line protocol: feeder_losses (tags feeder, district: the transformer's) per complete day,
    power_quality (tags device, district) per meter-week with a verdict, tampering_suspects (tags device,
    feeder, district) at the day their step began. district_of: device id -> district (the registry's)."""
    from telemetry_shared.lineproto import line

    out = []
    transformer = {r["feeder"]: r["transformer"] for r in report.feeder_rows}
    for r in report.daily_rows:
        if r["loss_kwh"] is None:
            continue  # a day with a meter missing has no balance
        tags = {"feeder": r["feeder"], "district": district_of.get(transformer[r["feeder"]], "unknown")}
        out.append(line(FEEDER_MEASUREMENT, tags, {k: float(r[k]) for k in ("input_kwh", "billed_kwh", "loss_kwh",
                                                                              "loss_pct") if r[k] is not None},
                        r["day_start_ms"]))
    for r in report.meter_rows():
        if r["verdict"] == en50160.NO_DATA:
            continue
        fields = {"pass": 1.0 if r["verdict"] == en50160.PASS else 0.0,
                  "voltage_pass": 1.0 if r["voltage"] == en50160.PASS else 0.0,
                  "frequency_pass": 1.0 if r["frequency"] == en50160.PASS else 0.0}
        fields |= {k: float(r[k]) for k in ("voltage_share_in_band", "voltage_min_v", "voltage_max_v",
                                            "frequency_share_in_band", "frequency_min_hz", "frequency_max_hz")
                   if r[k] is not None}
        out.append(line(METER_MEASUREMENT, {"device": r["device"], "district": district_of.get(r["device"], "unknown")},
                        fields, r["week_start_ms"]))
    for r in report.suspect_rows:
        tags = {"device": r["device"], "feeder": r["feeder"], "district": district_of.get(r["device"], "unknown")}
        out.append(line(SUSPECT_MEASUREMENT, tags, {"rank": float(r["rank"]), "drop_pct": float(r["drop_pct"] or 0),
                                                    "unrecorded_kwh": float(r["unrecorded_kwh"] or 0)},
                        r["since_ms"]))
    return out


SUSPECT_LOOKBACK_DAYS = 28  # Pettitt needs weeks: a week alone never reaches p < 0.01 (README, "power of the test")


def feeder_section(influx: InfluxQL, topology: object | None, limits: en50160.Limits, start_ms: int,
                   utc_offset_h: int) -> dict:
    """The weekly report's losses per feeder for the week from start_ms (a local midnight), highest loss % first:
    {"rows": [...], "notes": [i18n keys]}."""
    week = build_report(influx, topology, limits, start_ms, 7, utc_offset_h, quality=False)
    rows = sorted(week.feeder_rows, key=lambda r: -(r["loss_pct"] or 0))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return {"rows": rows, "notes": ["report.power.note"] if rows else ["report.power.no_feeders"]}


def quality_section(influx: InfluxQL, limits: en50160.Limits, start_ms: int, utc_offset_h: int) -> dict:
    """The weekly report's meter-weeks failing EN 50160 (every power meter, no topology needed)."""
    week = build_report(influx, None, limits, start_ms, 7, utc_offset_h)
    rows = [r | {"voltage_share_in_band_pct": _pct(r["voltage_share_in_band"]),
                 "frequency_share_in_band_pct": _pct(r["frequency_share_in_band"])}
            for r in week.meter_rows() if r["verdict"] == en50160.FAIL]
    return {"rows": rows, "notes": ["report.power_quality.note"]}


def tampering_section(influx: InfluxQL, topology: object | None, limits: en50160.Limits, start_ms: int,
                      utc_offset_h: int) -> dict:
    """The tampering suspects of the SUSPECT_LOOKBACK_DAYS up to the end of the week from start_ms."""
    if topology is None or not len(topology.ids):
        return {"rows": [], "notes": ["report.power.no_feeders"]}
    lookback = start_ms + 7 * DAY_MS - SUSPECT_LOOKBACK_DAYS * DAY_MS
    month = build_report(influx, topology, limits, lookback, SUSPECT_LOOKBACK_DAYS, utc_offset_h, quality=False)
    return {"rows": month.suspect_rows, "notes": ["report.tampering.note"]}


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 2)
