"""`city deadletter list|counts|replay`: what ingest refused, and why; replay
it once the cause is fixed. Works on the dead-letter file of this machine
(CITY_DATA_DIR/deadletter.sqlite3) and writes to CITY_INFLUX_URL.

Exit codes: 0 done, 1 some entries still refused, 2 bad input, 6 InfluxDB unavailable.
"""

import base64
import json
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from ingest.deadletter import DeadLetters
from ingest.replay import Replayer
from telemetry_cli.common import (
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    JsonFlag,
    err,
    fail,
    load_settings,
    local_time,
    number,
    out,
    say,
)
from telemetry_shared.influx import InfluxUnavailable, make_writer
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

EXIT_STILL_REFUSED = 1
MAX_LIMIT = 100_000
TEXT_PREVIEW = 120

app = typer.Typer(help=say("deadletter.help1"), no_args_is_help=True)

Reason = Annotated[str | None, typer.Option(help=say("deadletter.help2"))]
Device = Annotated[str | None, typer.Option(help=say("deadletter.help3"))]
Limit = Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help=say("deadletter.help4"))]


def _store(settings: Settings) -> DeadLetters:
    return DeadLetters(settings.deadletter_file)


def _check_filter(text: str | None, what: str) -> str | None:
    if text is not None and (not text or len(text) > 64 or not text.isprintable()):
        fail(say("deadletter.bad_filter", what=what, text=repr(text[:40])), EXIT_INVALID)
    return text


def _local_time(ms: int | None) -> str:
    return "" if ms is None else local_time(ms)


def _public(entry: dict) -> dict:
    """An entry for JSON: the payload as base64, and as text when it is text."""
    payload = bytes(entry["payload"])
    row = {k: v for k, v in entry.items() if k != "payload"}
    row["payload_b64"] = base64.b64encode(payload).decode()
    try:
        row["payload_text"] = payload.decode()
    except UnicodeDecodeError:
        row["payload_text"] = None
    return row


def _preview(payload: bytes) -> str:
    text = payload[:TEXT_PREVIEW].decode(errors="replace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text + ("…" if len(payload) > TEXT_PREVIEW else "")


@app.command("list", help=say("deadletter.list_entries.help"))
def list_entries(reason: Reason = None, device: Device = None, limit: Limit = 50,
                 offset: Annotated[int, typer.Option(min=0, help=say("deadletter.help5"))] = 0,
                 pending: Annotated[bool, typer.Option("--pending", help=say("deadletter.help6"))] = False,
                 as_json: JsonFlag = False) -> None:
    """Entries oldest first: when, why, which device, and the payload."""
    settings = load_settings()
    entries = _store(settings).list(_check_filter(reason, "reason"), limit, offset, _check_filter(device, "device"),
                                    pending_only=pending)
    if as_json:
        print(json.dumps({"data": [_public(e) for e in entries], "count": len(entries)}))
        return
    table = Table(title=say("deadletter.title", n=len(entries)))
    for column in ("id", "received", "reason", "device", "detail", "payload", "replayed"):
        table.add_column(say(f"deadletter.col.{column}"), overflow="fold")
    for e in entries:
        table.add_row(str(e["id"]), _local_time(e["received_ms"]), e["reason"],
                      e["device"], e["detail"][:80], _preview(bytes(e["payload"])), _local_time(e["replayed_ms"]))
    out.print(table)


@app.command("counts", help=say("deadletter.counts.help"))
def counts(as_json: JsonFlag = False) -> None:
    """Entries per reason: all of them, and those still waiting for a replay."""
    store = _store(load_settings())
    everything, pending = store.counts(), store.counts(pending_only=True)
    rows = [{"reason": r, "total": n, "pending": pending.get(r, 0)} for r, n in sorted(everything.items())]
    if as_json:
        print(json.dumps({"data": rows, "count": len(rows)}))
        return
    table = Table(title=say("deadletter.per_reason"))
    for column in ("reason", "total", "pending"):
        table.add_column(say(f"deadletter.col.{column}"), justify="left" if column == "reason" else "right")
    for row in rows:
        table.add_row(row["reason"], number(row["total"], 0), number(row["pending"], 0))
    table.add_row(f"[bold]{say('deadletter.all')}[/]", number(sum(everything.values()), 0),
                  number(sum(pending.values()), 0))
    out.print(table)


@app.command("replay", help=say("deadletter.replay.help"))
def replay(ids: Annotated[list[int] | None, typer.Argument(help=say("deadletter.help7"))] = None,
           reason: Reason = None, device: Device = None, limit: Limit = 10_000, as_json: JsonFlag = False) -> None:
    """Decode pending entries again with today's registry and write what is now accepted."""
    settings = load_settings()
    store = _store(settings)
    if ids and any(i < 1 for i in ids):
        fail(say("deadletter.bad_ids"), EXIT_INVALID)
    entries = store.list(_check_filter(reason, "reason"), limit, 0, _check_filter(device, "device"),
                         pending_only=True, ids=list(ids) if ids else None)
    unknown = sorted(set(ids or []) - {e["id"] for e in entries})
    replayer = Replayer(store, Registry(settings.registry_file), make_writer(settings))
    try:
        with Progress(console=err, transient=True, disable=as_json) as progress:
            task = progress.add_task(say("deadletter.replaying"), total=len(entries))
            result = replayer.replay(entries, lambda n: progress.advance(task, n))
    except InfluxUnavailable as exc:
        fail(say("deadletter.influx_down", error=exc), EXIT_UNAVAILABLE)
    summary = {"replayed": result.replayed, "still_rejected": result.still_rejected,
               "not_replayable": result.not_replayable, "not_found_or_done": unknown,
               "points_written": result.points_written}
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(say("deadletter.replayed", n=len(result.replayed), points=result.points_written,
                      refused=len(result.still_rejected), unreplayable=len(result.not_replayable),
                      unknown=len(unknown)))
        for entry_id, why in sorted(result.still_rejected.items()):
            out.print(f"  {entry_id}: {why}", highlight=False)
    if result.still_rejected:
        raise typer.Exit(EXIT_STILL_REFUSED)
