"""`city score`, `city evaluate`, `city rescore`: the analytics from the command line."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analytics.config import DEFAULT_PARAMS
from analytics.csvscore import CsvError, score_file
from analytics.evaluate import evaluate_fleet
from analytics.rescore import RescoreError, parse_overrides, rescore
from telemetry_cli.common import EXIT_INVALID, EXIT_UNAVAILABLE, say
from telemetry_shared.influx import InfluxError, InfluxQL, InfluxUnavailable
from telemetry_shared.settings import get_settings

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error message stays on one line, for grep

JsonFlag = Annotated[bool, typer.Option("--json", help=say("analytics.help1"))]


def score(
    source: Annotated[Path, typer.Argument(help=say("analytics.help5"), dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help=say("analytics.help6"),
                                      dir_okay=False)],
    as_json: JsonFlag = False,
) -> None:
    """Score a CSV causally: each row's anomaly_score in [0, 1] uses only the rows before it."""
    try:
        scores = score_file(source, out)
    except CsvError as exc:
        err.print(f"[red]cannot score {source}:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(f"[red]cannot write {out}:[/red] {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    summary = {
        "rows": int(scores.size),
        "out": str(out),
        "max_score": round(float(scores.max()), 6) if scores.size else 0.0,
        "rows_above_0.8": int((scores > 0.8).sum()),
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title=f"Scored {source}")
    for column in ("rows", "rows above 0.8", "max score", "written to"):
        table.add_column(column)
    table.add_row(str(summary["rows"]), str(summary["rows_above_0.8"]), f"{summary['max_score']:.3f}", str(out))
    console.print(table)


def evaluate(
    devices: Annotated[int, typer.Option(min=4, max=5000, help=say("analytics.help7"))] = 200,
    hours: Annotated[float, typer.Option(min=1, max=24 * 35, help=say("analytics.help8"))] = 192.0,
    interval_s: Annotated[float, typer.Option(min=1, max=3600, help=say("analytics.help9"))] = 60.0,
    warmup_hours: Annotated[float, typer.Option(min=0, help=say("analytics.help10"))] = 120.0,
    seed: Annotated[int, typer.Option(help=say("analytics.help11"))] = 7,
    labels_out: Annotated[Path | None, typer.Option(help=say("analytics.help12"),
                                                    dir_okay=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Detection quality against the simulator's labels: precision, recall, F1 and delay per fault type."""
    if warmup_hours >= hours:
        err.print("[red]--warmup-hours must be shorter than --hours[/red]")
        raise typer.Exit(2)
    with console.status("evaluating") as status:
        result = evaluate_fleet(devices, hours, interval_s, seed, warmup_hours,
                                on_stage=lambda stage: status.update(stage))
    if labels_out is not None:
        import csv

        with labels_out.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(("device", "metric", "fault", "start_ms", "end_ms"))
            writer.writerows(result.labels)
    if as_json:
        print(json.dumps({"devices": result.devices, "steps": result.steps, "step_s": result.step_ms / 1000,
                          "faults": [vars(row) for row in result.rows]}))
        return
    table = Table(title=f"Detection against fleetsim labels: {result.devices} devices, {hours:g} h at "
                        f"{interval_s:g} s (first {warmup_hours:g} h not counted)")
    table.add_column("fault", no_wrap=True)
    for column in ("faults", "found", "alerts/fault", "false", "P", "R", "F1", "delay min"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in result.rows:
        delay = "-" if row.median_delay_steps is None else f"{row.median_delay_steps * interval_s / 60:.1f}"
        per_fault = f"{row.alerts / row.detected:.1f}" if row.detected else "-"
        table.add_row(row.fault, str(row.labelled), str(row.detected), per_fault, str(row.false_alarms),
                      f"{row.precision:.2f}", f"{row.recall:.2f}", f"{row.f1:.2f}", delay,
                      style="bold" if row.fault == "all" else None)
    Console(width=max(console.width, 100)).print(table)  # a table of numbers is not squeezed into 80 columns
    console.print("faults: labelled; found: detected; alerts/fault: alerts per detected fault; false: false alarms "
                  "on the kinds the fault hits; P = found / (found + false); R = found / faults; delay: median "
                  "from the fault's start to its first alert. Alerts on a fault that began in the warm-up are "
                  "left out.")


def rescore_command(
    kind: Annotated[str, typer.Argument(help=say("analytics.help13"))],
    since: Annotated[str, typer.Option(help=say("analytics.help14"))] = "24h",
    device: Annotated[str | None, typer.Option(help=say("analytics.help15"))] = None,
    metric: Annotated[str | None, typer.Option(help=say("analytics.help16"))] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=say("analytics.help17"))] = None,
    include_hist: Annotated[bool, typer.Option("--include-hist", help=say("analytics.help18"))] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the detectors over history in InfluxDB and list the alerts they would have raised (nothing is sent).

    Backfilled readings feed the baselines but open no alert, as in the live engine, unless --include-hist."""
    settings = get_settings()
    try:
        params = parse_overrides(set_ or [], replace(DEFAULT_PARAMS, utc_offset_h=settings.utc_offset_hours,
                                                              time_zone=settings.local_zone))
        client = InfluxQL.from_settings(settings)
        try:
            with console.status(f"reading {kind} from {settings.influx_url}"):
                alerts = rescore(client, kind, since, device, metric, params, include_hist)
        finally:
            client.close()
    except RescoreError as exc:
        err.print(f"[red]cannot rescore:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    except InfluxError as exc:
        err.print(f"[red]InfluxDB at {settings.influx_url}:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_UNAVAILABLE if isinstance(exc, InfluxUnavailable) else EXIT_INVALID) from exc
    if as_json:
        print(json.dumps([vars(a) for a in alerts]))
        return
    offset = timedelta(hours=settings.utc_offset_hours)

    def local(t_ms: int) -> str:
        return (datetime.fromtimestamp(t_ms / 1000, UTC) + offset).strftime("%m-%d %H:%M")

    table = Table(title=f"{len(alerts)} alerts the rules would have raised on {kind} over the last {since} "
                        f"(local time, UTC{settings.utc_offset_hours:+d})")
    extra = ("opened on",) if include_hist else ()  # without --include-hist every alert opened live
    for column in ("device", "metric", "rule", "severity", "from", "to", "peak", *extra):
        table.add_column(column, no_wrap=True)
    for a in alerts:
        opened = ("backfill" if a.hist else "live",) if include_hist else ()
        table.add_row(a.device, a.metric, a.rule, a.severity, local(a.start_ms), local(a.end_ms), f"{a.peak:.2f}",
                      *opened)
    Console(width=max(console.width, 100)).print(table)
    if not include_hist:
        console.print("Backfilled readings (hist) fed the baselines but opened no alert, as live; "
                      "--include-hist scores them too.")


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the `city` app (one line in telemetry_cli/main.py)."""
    app.command("score", help=say("analytics.help2"))(score)
    app.command("evaluate", help=say("analytics.help3"))(evaluate)
    app.command("rescore", help=say("analytics.help4"))(
        rescore_command)
