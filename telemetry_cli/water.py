"""`city water-balance`: the water balance of every district meter area (DMA) over a range of local days, in
the International Water Association's terms, ranked for the leak crews, with the bursts found. Reads the
topology from the registry and the readings from InfluxDB (run it where the platform runs, as `city rescore`).

Exit codes: 0 done, 2 bad dates or no DMA, 6 InfluxDB unavailable.
"""

import datetime as dt
import json
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analytics.water import WaterParams
from analytics.waterdata import (
    WaterDataError,
    burst_rows,
    daily_rows,
    dma_districts,
    report,
    summary_rows,
    to_csv,
    write_lines,
)
from telemetry_cli.common import (
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    JsonFlag,
    city_zone,
    err,
    fail,
    local_time,
    neutral,
    number,
    out,
    say,
)
from telemetry_shared.influx import InfluxError, InfluxQL, InfluxUnavailable, make_writer
from telemetry_shared.registry import Registry
from telemetry_shared.settings import get_settings

COLUMNS = ("rank", "dma", "connections", "system_input_m3", "billed_m3", "real_losses_m3", "apparent_losses_m3",
           "nrw_m3", "nrw_pct", "leakage_m3_per_day", "leakage_l_per_connection_day", "bursts")


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(say("water.bad_day", option=option, value=repr(text[:40])), EXIT_INVALID)


def _range_ms(first: str, last: str) -> tuple[int, int]:
    """Local midnight of the first day to local midnight after the last, as Unix ms."""
    zone = ZoneInfo(city_zone())
    start, end = _day(first, "--from"), _day(last, "--to")
    if end < start:
        fail(say("water.bad_range"), EXIT_INVALID)
    begin = dt.datetime.combine(start, dt.time(), zone)
    finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
    return int(begin.timestamp() * 1000), int(finish.timestamp() * 1000)


def water_balance(first: Annotated[str, typer.Option("--from", help=say("water.help_from"))],
                  last: Annotated[str, typer.Option("--to", help=say("water.help_to"))],
                  csv_file: Annotated[Path | None, typer.Option("--csv", help=say("water.help_csv"),
                                                                dir_okay=False)] = None,
                  write: Annotated[bool, typer.Option("--write", help=say("water.help_write"))] = False,
                  as_json: JsonFlag = False) -> None:
    """The IWA water balance per DMA over the days --from to --to (local dates, both included)."""
    neutral(as_json)
    settings = get_settings()
    start_ms, end_ms = _range_ms(first, last)
    params = WaterParams(night_window_h=settings.city.water.night_window_h)
    registry = Registry(settings.registry_file)
    client = InfluxQL.from_settings(settings)
    try:
        with Console(stderr=True).status(say("water.reading", url=settings.influx_url)):
            rep = report(client, registry.topology("water"), start_ms, end_ms, params, settings.local_zone,
                         settings.utc_offset_hours or 0)
        if write:
            inlets = rep.topology.meters[rep.topology.role == "inlet"]
            district_of = {d.id: d.district for d in registry.list(kind="water", limit=10_000_000)[0]
                           if d.id in set(inlets)}
            writer = make_writer(settings)
            try:
                writer.write(write_lines(rep, dma_districts(rep.topology, district_of)))
            finally:
                writer.close()
    except WaterDataError as exc:
        fail(str(exc), EXIT_INVALID)
    except InfluxError as exc:
        err.print(f"[red]{escape(say('cli.influx_at', url=settings.influx_url))}[/red] {escape(str(exc))}",
                  highlight=False)
        raise typer.Exit(EXIT_UNAVAILABLE if isinstance(exc, InfluxUnavailable) else EXIT_INVALID) from exc
    finally:
        client.close()
        registry.close()
    summary, bursts = summary_rows(rep), burst_rows(rep)
    if csv_file is not None:
        csv_file.write_text(to_csv(daily_rows(rep)), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps({"from_ms": start_ms, "to_ms": end_ms, "night_window_h": list(params.night_window_h),
                               "dmas": summary, "bursts": bursts}, indent=1))
        return
    _print(summary, bursts, first, last)


def _print(summary: list[dict], bursts: list[dict], first: str, last: str) -> None:
    table = Table(title=say("water.title", first=first, last=last), title_justify="left")
    for column in COLUMNS:
        table.add_column(say(f"water.col.{column}"), justify="left" if column == "dma" else "right")
    for row in summary:
        table.add_row(*(escape(str(row[c])) if c in ("rank", "dma", "connections", "bursts")
                        else number(row[c], 1 if c != "leakage_m3_per_day" else 2) if row[c] is not None else "-"
                        for c in COLUMNS))
    Console(width=max(out.width, 160)).print(table)
    out.print(say("water.legend"))
    if bursts:
        found = Table(title=say("water.bursts_title", n=len(bursts)), title_justify="left")
        for column in ("dma", "when", "rise"):
            found.add_column(say(f"water.col.{column}"))
        for b in bursts:
            found.add_row(escape(b["dma"]), local_time(b["t_ms"]), number(b["rise_lps"], 2))
        out.print(found)
