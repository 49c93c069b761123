"""`city score-eval`: how well `city score` finds the anomalies labelled in your own CSVs."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from analytics.config import CSV_PARAMS
from analytics.csvscore import CsvError, learning_least_rows
from analytics.labelled import LabelError, Metrics, Report, evaluate, load
from telemetry_cli.common import EXIT_INVALID, EXIT_NOT_FOUND, JsonFlag, err, fail, number, out, say


def score_eval(
    sources: Annotated[list[Path], typer.Argument(help=say("score_eval.help2"),
                                                  dir_okay=False)],
    label_column: Annotated[str, typer.Option(help=say("score_eval.help3"))] = "label",
    windows: Annotated[Path | None, typer.Option(help=say("score_eval.help4"), dir_okay=False)] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help=say("score_eval.help5"))] = 0.5,
    tolerance: Annotated[int, typer.Option(min=0, max=100_000, help=say("score_eval.help6"))] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Score each file as `city score` does and compare with the labelled anomaly windows."""
    for path in [*sources, *([windows] if windows is not None else [])]:
        if not path.exists():
            fail(say("cli.no_such_file", path=path), EXIT_NOT_FOUND)
        if not path.is_file():
            fail(f"{path}: not a file", EXIT_INVALID)
    try:
        files, unused = _load_with_progress(sources, label_column, windows, show=len(sources) > 1 and not as_json)
    except (CsvError, LabelError) as exc:
        fail(str(exc), EXIT_INVALID)
    report = evaluate(files, threshold, tolerance)
    report.unused_windows = unused
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    _print(report)


def _load_with_progress(sources: list[Path], label_column: str, windows: Path | None, show: bool):
    if not show:
        return load(sources, label_column, windows)
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=len(sources))
        return load(sources, label_column, windows,
                    on_file=lambda path: progress.update(task, advance=1, description=path.name))


def _cell(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else number(x, digits)


def _row(name: str, m: Metrics) -> list[str]:
    return [name, number(m.rows, 0), str(m.windows), str(m.found), str(m.false_episodes), _cell(m.precision),
            _cell(m.recall), _cell(m.f1), _cell(m.median_delay, 1)]


def _print(report: Report) -> None:
    table = Table(title=say("score_eval.title", threshold=f"{report.threshold:g}", tolerance=report.tolerance))
    table.add_column(say("score_eval.col.file"), overflow="fold")
    for column in ("rows", "windows", "found", "false", "p", "r", "f1", "delay"):
        table.add_column(say(f"score_eval.col.{column}"), justify="right", no_wrap=True)
    for name, metrics in report.files:
        table.add_row(*_row(Path(name).name, metrics))
    table.add_row(*_row(say("score_eval.total"), report.total), style="bold")
    console = Console(width=max(out.width, 100))  # a table of numbers is not squeezed into 80 columns
    console.print(table)
    console.print(say("score_eval.legend"))
    best = next((m for t, m in report.sweep if t == report.best_threshold), None)
    if best is None:
        console.print(say("score_eval.no_windows"))
    else:
        console.print(say("score_eval.best", best=f"[bold]{report.best_threshold:g}[/bold]", f1=_cell(best.f1),
                          p=_cell(best.precision), r=_cell(best.recall), false=best.false_episodes,
                          threshold=f"{report.threshold:g}", total_f1=_cell(report.total.f1)))
    ours, baseline = report.row_wise, report.baseline_row_wise
    if ours is not None:
        line = say("score_eval.row_wise", score=f"[bold]{number(ours.score, 1)}[/bold]",
                   threshold=f"{ours.threshold:.4g}", found=ours.found, windows=ours.windows, false=ours.false_rows)
        if baseline is not None:
            line += say("score_eval.baseline", score=number(baseline.score, 1), threshold=f"{baseline.threshold:.4g}")
        console.print(line + ".")
    if report.total.learning_windows:
        console.print(say("score_eval.learning", n=report.total.learning_windows,
                          rows=number(CSV_PARAMS.surprise_learning_rows, 0),
                          least=number(learning_least_rows(CSV_PARAMS), 0),
                          share=f"{CSV_PARAMS.surprise_learning_share:.0%}"))
    if report.unused_windows:
        console.print(say("score_eval.unused", n=report.unused_windows))


def register(app: typer.Typer) -> None:
    """Add `city score-eval` to the `city` app (one line in telemetry_cli/main.py)."""
    app.command("score-eval", help=say("score_eval.help1"))(score_eval)
