"""`city grafana generate|sync`: write the dashboards' JSON, push them to a Grafana."""

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grafana.boards import all_dashboards
from grafana.datasource import datasource_body
from grafana.generate import DASHBOARD_DIR, stale_files, write_all
from grafana.sync import SyncError, connect, sync
from telemetry_cli.common import EXIT_AUTH, EXIT_CONFLICT, EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE, say
from telemetry_shared.settings import get_settings

app = typer.Typer(help=say("grafana.help1"),
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SYNC_EXIT = {"invalid": EXIT_INVALID, "auth": EXIT_AUTH, "conflict": EXIT_CONFLICT,
             "unavailable": EXIT_UNAVAILABLE, "failed": EXIT_FAILED}
JsonFlag = Annotated[bool, typer.Option("--json", help=say("grafana.help2"))]


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(say(f"grafana.col.{column}"))
    for row in rows:
        table.add_row(*row)
    return table


@app.command(help=say("grafana.generate.help"))
def generate(
    out: Annotated[Path, typer.Option(help=say("grafana.help3"), file_okay=False)] = DASHBOARD_DIR,
    check: Annotated[bool, typer.Option("--check", help=say("grafana.help4"))] = False,
    as_json: JsonFlag = False,
) -> None:
    """Render every dashboard from grafana/boards.py to JSON files."""
    if check:
        stale = stale_files(out)
        if as_json:
            print(json.dumps({"stale": stale}))
        elif stale:
            err.print(f"[red]{escape(say('grafana.stale', path=out, files=', '.join(stale)))}[/red]")
        else:
            console.print(escape(say("grafana.current", path=out)))
        raise typer.Exit(1 if stale else 0)
    try:
        outcome = write_all(out)
    except OSError as exc:
        err.print(f"[red]{escape(say('cli.cannot_write', path=out))}[/red] {escape(str(exc.strerror or exc))}")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(outcome, sort_keys=True))
        return
    console.print(_table(say("grafana.dashboards_in", path=out), ("file", "result"),
                         sorted((name, say(f"grafana.result.{result}")) for name, result in outcome.items())))


@app.command("sync", help=say("grafana.sync_command.help"))
def sync_command(
    url: Annotated[str | None, typer.Option(help=say("grafana.help5"))] = None,
    folder: Annotated[str, typer.Option(help=say("grafana.help6"))] = "city",
    influx_url: Annotated[str | None, typer.Option(
        help=say("grafana.help7"))] = None,
    reset_secrets: Annotated[bool, typer.Option(
        "--reset-secrets", help=say("grafana.help8"))] = False,
    as_json: JsonFlag = False,
) -> None:
    """Push the InfluxDB datasource and every dashboard to Grafana; says what changed."""
    settings = get_settings()
    datasource = datasource_body(influx_url or settings.influx_url, settings.influx_db, settings.influx_user,
                                 settings.influx_password, settings.influx_token)
    boards = [board.to_json() for board in all_dashboards()]
    try:
        api = connect(url or settings.grafana_url, settings.grafana_token, settings.grafana_user,
                      settings.grafana_password, timeout_s=10)
        try:
            with console.status(say("grafana.syncing"), spinner="dots") if not as_json else nullcontext():
                changes = sync(api, datasource, boards, folder_uid=folder, reset_secrets=reset_secrets)
        finally:
            api.close()
    except SyncError as exc:
        err.print(f"[red]{say('grafana.sync_failed')}[/red] {escape(str(exc))}")
        raise typer.Exit(SYNC_EXIT[exc.kind]) from exc
    if as_json:
        print(json.dumps([{"what": c.what, "name": c.name, "action": c.action} for c in changes]))
        return
    console.print(_table(say("grafana.sync_title"), ("what", "name", "result"),
                         [(say(f"grafana.what.{c.what}"), c.name, say(f"grafana.result.{c.action}")) for c in changes]))
    changed = sum(c.action != "unchanged" for c in changes)
    console.print(say("grafana.changed", changed=changed, unchanged=len(changes) - changed))

