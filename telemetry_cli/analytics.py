"""`city score`, `city evaluate`, `city rescore`: the analytics from the command line."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analytics import alloc
from analytics.config import DEFAULT_PARAMS
from analytics.csvscore import CsvError, score_file
from telemetry_cli.common import EXIT_INVALID, EXIT_UNAVAILABLE, local_time, number, say, zone_abbreviation

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error message stays on one line, for grep

JsonFlag = Annotated[bool, typer.Option("--json", help=say("analytics.help1"))]


def score(
    sources: Annotated[list[Path], typer.Argument(help=say("analytics.help5"), dir_okay=False,
                                                   metavar="CSV")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help=say("analytics.help6"),
                                             dir_okay=False)] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help=say("analytics.help_out_dir"),
                                                 file_okay=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score CSVs causally: each row's anomaly_score in [0, 1] uses only the rows before it."""
    targets = _targets(sources, out, out_dir)
    # Scoring and exit: freed arrays are reused, not faulted in again (analytics.alloc.keep_freed_memory), and
    # first touched as small pages (alloc.small_pages).
    alloc.keep_freed_memory()
    alloc.small_pages()
    if out is not None:
        summaries = [_score_one(*targets[0])]
    else:
        summaries = []
        with err.status("") as status:  # on stderr: --json's stdout stays one document
            for done, (source, target) in enumerate(targets):
                status.update(say("analytics.scoring_file", done=done, total=len(targets), path=source.name))
                summaries.append(_score_one(source, target))
    failed = any("error" in summary for summary in summaries)
    if out is None or not failed:  # one file that failed: its error alone, as always
        if as_json:
            print(json.dumps(summaries if out is None else summaries[0]))
        else:
            _print_scored(summaries, sources[0] if out is not None else out_dir)
    if failed:
        raise typer.Exit(2)


def _targets(sources: list[Path], out: Path | None, out_dir: Path | None) -> list[tuple[Path, Path]]:
    """(source, where its scored rows go) for each source: `--out` for one file, `--out-dir` (same file names)
    for any number. Refused before anything is scored: neither or both given, several sources to one --out, two
    sources of one name, or a source that would be written over."""
    if (out is None) == (out_dir is None) or (out is not None and len(sources) > 1):
        _refuse(say("analytics.out_or_out_dir"))
    if out is not None:
        return [(sources[0], out)]
    names = [source.name for source in sources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        _refuse(say("analytics.same_name", names=", ".join(twice)))
    targets = [(source, out_dir / source.name) for source in sources]
    for source, target in targets:
        if target.resolve() == source.resolve():
            _refuse(say("analytics.would_overwrite", path=source))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _refuse(f"{say('cli.cannot_write', path=out_dir)} {exc.strerror or exc}")
    return targets


def _refuse(message: str) -> NoReturn:
    err.print(f"[red]{escape(message)}[/red]", highlight=False)
    raise typer.Exit(2)


def _score_one(source: Path, target: Path) -> dict:
    """One file scored into target: its summary, or its error (printed; the other files go on)."""
    try:
        scores = score_file(source, target)
    except CsvError as exc:
        err.print(f"[red]{escape(say('analytics.cannot_score', path=source))}[/red] {escape(str(exc))}",
                  highlight=False)
        return {"source": str(source), "error": str(exc)}
    except OSError as exc:
        err.print(f"[red]{escape(say('cli.cannot_write', path=target))}[/red] {escape(str(exc.strerror or exc))}")
        return {"source": str(source), "error": str(exc.strerror or exc)}
    return {
        "source": str(source),
        "rows": int(scores.size),
        "out": str(target),
        "max_score": round(float(scores.max()), 6) if scores.size else 0.0,
        "rows_above_0.8": int((scores > 0.8).sum()),
    }


def _print_scored(summaries: list[dict], title: Path) -> None:
    """A table of the scored files (a failed one shows its error)."""
    table = Table(title=say("analytics.scored", path=title))
    columns = ("rows", "rows_above", "max_score", "written_to")
    if len(summaries) > 1:
        table.add_column(say("analytics.col.file"))
    for column in columns:
        table.add_column(say(f"analytics.col.{column}"))
    for summary in summaries:
        first = [Path(summary["source"]).name] if len(summaries) > 1 else []
        if "error" in summary:
            table.add_row(*first, "-", "-", "-", escape(say("analytics.not_scored")))
            continue
        table.add_row(*first, number(summary["rows"], 0), number(summary["rows_above_0.8"], 0),
                      number(summary["max_score"], 3), escape(summary["out"]))
    console.print(table)


def evaluate(
    devices: Annotated[int, typer.Option(min=4, max=5000, help=say("analytics.help7"))] = 200,
    hours: Annotated[float, typer.Option(min=1, max=24 * 35, help=say("analytics.help8"))] = 192.0,
    interval_s: Annotated[float, typer.Option(min=1, max=3600, help=say("analytics.help9"))] = 60.0,
    warmup_hours: Annotated[float, typer.Option(min=0, help=say("analytics.help10"))] = 120.0,
    seed: Annotated[int, typer.Option(help=say("analytics.help11"))] = 7,
    labels_out: Annotated[Path | None, typer.Option(help=say("analytics.help12"),
                                                    dir_okay=False)] = None,
    pass_samples: Annotated[int, typer.Option(min=0, max=100_000, help=say("analytics.help_passes"))] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Detection quality against the simulator's labels: precision, recall, F1 and delay per fault type."""
    if warmup_hours >= hours:
        err.print(f"[red]{say('analytics.warmup_too_long')}[/red]")
        raise typer.Exit(2)
    from analytics.evaluate import evaluate_fleet  # here, not on top: `city score` need not import it (main.py)

    with console.status(say("analytics.evaluating")) as status:
        def stage(name: str) -> None:  # "simulating", "scoring": the evaluation's steps, worded here
            status.update(say(f"analytics.stage.{name}", devices=devices, hours=f"{hours:g}",
                              interval=f"{interval_s:g}"))

        result = evaluate_fleet(devices, hours, interval_s, seed, warmup_hours, on_stage=stage,
                                pass_samples=pass_samples)
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
    table = Table(title=say("analytics.evaluate_title", devices=result.devices, hours=f"{hours:g}",
                            interval=f"{interval_s:g}", warmup=f"{warmup_hours:g}"))
    table.add_column(say("analytics.col.fault"), no_wrap=True)
    for column in ("faults", "found", "per_fault", "false", "p", "r", "f1", "delay"):
        table.add_column(say(f"analytics.col.{column}"), justify="right", no_wrap=True)
    for row in result.rows:
        delay = "-" if row.median_delay_steps is None else number(row.median_delay_steps * interval_s / 60, 1)
        per_fault = number(row.alerts / row.detected, 1) if row.detected else "-"
        table.add_row(row.fault, str(row.labelled), str(row.detected), per_fault, str(row.false_alarms),
                      number(row.precision, 2), number(row.recall, 2), number(row.f1, 2), delay,
                      style="bold" if row.fault == "all" else None)
    Console(width=max(console.width, 100)).print(table)  # a table of numbers is not squeezed into 80 columns
    console.print(say("analytics.evaluate_legend"))


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
    # here, not on top: `city score` need not import InfluxDB's client (main.py)
    from analytics.rescore import RescoreError, parse_overrides, rescore
    from telemetry_shared.influx import InfluxError, InfluxQL, InfluxUnavailable
    from telemetry_shared.settings import get_settings  # here too: `city score` reads no settings

    settings = get_settings()
    try:
        params = parse_overrides(set_ or [], replace(DEFAULT_PARAMS, utc_offset_h=settings.utc_offset_hours,
                                                              time_zone=settings.local_zone))
        client = InfluxQL.from_settings(settings)
        try:
            with console.status(say("analytics.reading", kind=kind, url=settings.influx_url)):
                alerts = rescore(client, kind, since, device, metric, params, include_hist)
        finally:
            client.close()
    except RescoreError as exc:
        err.print(f"[red]{say('analytics.cannot_rescore')}[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    except InfluxError as exc:
        err.print(f"[red]{escape(say('cli.influx_at', url=settings.influx_url))}[/red] {escape(str(exc))}",
                  highlight=False)
        raise typer.Exit(EXIT_UNAVAILABLE if isinstance(exc, InfluxUnavailable) else EXIT_INVALID) from exc
    if as_json:
        print(json.dumps([vars(a) for a in alerts]))
        return
    table = Table(title=say("analytics.rescore_title", n=len(alerts), kind=kind, since=since,
                            zone=zone_abbreviation()))
    extra = ("opened_on",) if include_hist else ()  # without --include-hist every alert opened live
    for column in ("device", "metric", "rule", "severity", "from", "to", "peak", *extra):
        table.add_column(say(f"analytics.col.{column}"), no_wrap=True)
    for a in alerts:
        opened = (say("analytics.backfill") if a.hist else say("analytics.live"),) if include_hist else ()
        table.add_row(a.device, a.metric, a.rule, a.severity, local_time(a.start_ms, short=True),
                      local_time(a.end_ms, short=True), number(a.peak, 2), *opened)
    Console(width=max(console.width, 100)).print(table)
    if not include_hist:
        console.print(say("analytics.hist_note"))


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the `city` app (one line in telemetry_cli/main.py)."""
    app.command("score", help=say("analytics.help2"))(score)
    app.command("evaluate", help=say("analytics.help3"))(evaluate)
    app.command("rescore", help=say("analytics.help4"))(
        rescore_command)
