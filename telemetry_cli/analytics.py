"""`city score`, `city evaluate`, `city rescore`: the analytics from the command line."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analytics.csvscore import CsvError, score_file

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error message stays on one line, for grep

JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON result for scripts.")]


def score(
    source: Annotated[Path, typer.Argument(help="CSV of timestamp,value rows (header optional).", dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the rows with anomaly_score.",
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


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the `city` app (one line in telemetry_cli/main.py)."""
    app.command("score", help="Score a timestamp,value CSV: adds an anomaly_score column in [0, 1].")(score)
