"""`city power-quality --from DATE --to DATE`: EN 50160 weekly verdicts per meter, losses per feeder,
tampering suspects, over local days [--from, --to) read from InfluxDB; the feeders from the registry
(`city network feeder ...`). --csv writes the weekly report's electricity tables.

Exit codes: 0 done, 2 bad input, 6 InfluxDB unavailable or refused.
"""

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from analytics.en50160 import Limits
from analytics.powerreport import MAX_DAYS, REPORT_TIMEOUT_S, PowerReport, build_report, write_lines
from telemetry_cli.common import (
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    JsonFlag,
    fail,
    load_settings,
    neutral,
    number,
    out,
    say,
)
from telemetry_shared.influx import InfluxError, InfluxQL, make_writer
from telemetry_shared.registry import Registry

DAY_MS = 86_400_000
SHOWN = 30  # rows per table on screen; --json and --csv have them all
SUSPECTS_FULL_DAYS = 28  # the tests' range: 85-88 % of tampered meters found (analytics/README.md)


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(say("power.bad_date", option=option, value=repr(text[:40])), EXIT_INVALID)


def _local_midnight_ms(day: dt.date, offset_h: int) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000) - offset_h * 3_600_000


def _date(t_ms: int, offset_h: int) -> str:
    return dt.datetime.fromtimestamp(t_ms / 1000 + offset_h * 3600, dt.UTC).date().isoformat()


def power_quality(
    start: Annotated[str, typer.Option("--from", help=say("power.help_from"))],
    end: Annotated[str, typer.Option("--to", help=say("power.help_to"))],
    csv_dir: Annotated[Path | None, typer.Option("--csv", help=say("power.help_csv"), file_okay=False)] = None,
    write: Annotated[bool, typer.Option("--write", help=say("power.help_write"))] = False,
    as_json: JsonFlag = False,
) -> None:
    """EN 50160 compliance, feeder losses and tampering suspects over a date range."""
    neutral(as_json)
    first, last = _day(start, "--from"), _day(end, "--to")
    days = (last - first).days
    if not 1 <= days <= MAX_DAYS:
        fail(say("power.bad_range", days=days, max=MAX_DAYS), EXIT_INVALID)
    if csv_dir is not None:  # before the report's minutes of queries, not after
        try:
            csv_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(say("power.cannot_write", path=str(csv_dir), error=exc.strerror), EXIT_INVALID)
    s = load_settings()
    offset_h = s.utc_offset_hours if s.utc_offset_hours is not None else s.city.utc_offset_hours
    limits = Limits.from_grid(s.city.grid)
    # A report reads weeks of every meter in a few queries: each can take far longer than one read of the API's.
    influx = InfluxQL(s.influx_url, s.influx_db, s.influx_user, s.influx_password, s.influx_token,
                      max(s.influx_timeout_s, REPORT_TIMEOUT_S))
    registry = Registry(s.registry_file)
    try:
        topology = registry.topology("power")
        report = build_report(influx, topology, limits, _local_midnight_ms(first, offset_h), days, offset_h)
        if write:
            districts = {d.id: d.district for d in registry.list(kind="power", limit=10**9)[0]}
            writer = make_writer(s)
            try:
                writer.write(write_lines(report, districts))
            finally:
                writer.close()
    except InfluxError as exc:
        fail(f"InfluxDB: {exc}", EXIT_UNAVAILABLE)
    finally:
        influx.close()
        registry.close()
    if csv_dir is not None:
        write_csv(report, csv_dir, offset_h)
    if as_json:
        print(json.dumps(as_dict(report, first, last)))
        return
    _print(report, first, last, offset_h)


def as_dict(report: PowerReport, first: dt.date, last: dt.date) -> dict:
    return {"from": first.isoformat(), "to": last.isoformat(), "start_ms": report.start_ms,
            "limits": report.limits.describe(), "summary": report.summary(), "feeders": report.feeder_rows,
            "suspects": report.suspect_rows, "meters": report.meter_rows()}


CSV_TABLES = {"power_feeders.csv": "feeder_rows", "power_feeder_days.csv": "daily_rows",
              "power_suspects.csv": "suspect_rows"}


def write_csv(report: PowerReport, folder: Path, offset_h: int) -> list[Path]:
    """The electricity tables of the weekly report: feeders, feeder days, suspects, meter weeks (UTF-8 CSV,
    times as local dates)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    tables = {name: getattr(report, attr) for name, attr in CSV_TABLES.items()} | {
        "power_en50160.csv": report.meter_rows()}
    for name, rows in tables.items():
        path = folder / name
        rows = [{(k.removesuffix("_ms") if k.endswith("_ms") else k): (_date(v, offset_h) if k.endswith("_ms") else v)
                 for k, v in row.items()} for row in rows]
        with path.open("w", newline="", encoding="utf-8") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        written.append(path)
    return written


def _pct(value: float | None) -> str:
    return "-" if value is None else number(value, 1)


def _print(report: PowerReport, first: dt.date, last: dt.date, offset_h: int) -> None:
    lim = report.limits
    summary = report.summary()
    grid = say("power.island") if not lim.interconnected else say("power.interconnected")
    out.print(say("power.title", start=first.isoformat(), end=(last - dt.timedelta(days=1)).isoformat(),
                  meters=summary["meters"], feeders=summary["feeders"]))
    out.print(say("power.limits", grid=grid, un=number(lim.nominal_v, 0), fn=number(lim.nominal_hz, 0),
                  flo=number(lim.frequency_band_hz[0], 2), fhi=number(lim.frequency_band_hz[1], 2),
                  alo=number(lim.frequency_always_hz[0], 2), ahi=number(lim.frequency_always_hz[1], 2)))
    if report.verdicts is None:
        out.print(say("power.no_weeks"))
    else:
        counts = summary["meter_weeks"]
        out.print(say("power.verdicts", weeks=report.weeks, passed=counts["pass"], failed=counts["fail"],
                      no_data=counts["no_data"]))
        failing = [r for r in report.meter_rows() if r["verdict"] == "fail"]
        if failing:
            table = Table(title=say("power.failing_title", n=len(failing)))
            for key in ("device", "week", "voltage", "in_band", "min_v", "max_v", "frequency"):
                table.add_column(say(f"power.col.{key}"))
            for r in failing[:SHOWN]:
                table.add_row(escape(r["device"]), _date(r["week_start_ms"], offset_h), say(f"power.{r['voltage']}"),
                              _pct(None if r["voltage_share_in_band"] is None else 100 * r["voltage_share_in_band"]),
                              _pct(r["voltage_min_v"]), _pct(r["voltage_max_v"]), say(f"power.{r['frequency']}"))
            out.print(table)
    if not report.feeder_rows:
        out.print(say("power.no_feeders"))
        return
    table = Table(title=say("power.losses_title"))
    for key in ("feeder", "customers", "input_kwh", "loss_kwh", "loss_pct", "complete_days", "failing"):
        table.add_column(say(f"power.col.{key}"), justify="left" if key == "feeder" else "right")
    for r in sorted(report.feeder_rows, key=lambda r: -(r["loss_pct"] or 0))[:SHOWN]:
        table.add_row(escape(r["feeder"]), str(r["customers"]), _pct(r["input_kwh"]), _pct(r["loss_kwh"]),
                      _pct(r["loss_pct"]), f"{r['complete_days']}/{r['days']}", str(r["en50160_failing_meters"]))
    out.print(table)
    if report.days < SUSPECTS_FULL_DAYS:  # Pettitt's test has little power over a short range
        out.print(say("power.short_for_suspects", days=report.days, full=SUSPECTS_FULL_DAYS))
    if not report.suspect_rows:
        out.print(say("power.no_suspects"))
        return
    table = Table(title=say("power.suspects_title", n=len(report.suspect_rows)))
    for key in ("rank", "device", "feeder", "since", "drop", "unrecorded_kwh"):
        table.add_column(say(f"power.col.{key}"))
    for r in report.suspect_rows[:SHOWN]:
        table.add_row(str(r["rank"]), escape(r["device"]), escape(r["feeder"]), _date(r["since_ms"], offset_h),
                      _pct(r["drop_pct"]), _pct(r["unrecorded_kwh"]))
    out.print(table)
    out.print(say("power.suspects_legend"))
