"""`city device maintenance start|stop|list`: a device out of service while a technician works
on it. Its alarms are suppressed until the maintenance is stopped or its time is up (it ends by
itself). Goes through the API (POST/DELETE /devices/{id}/maintenance, technician role), like
every `city device` command.

Exit codes: 2 bad input (a time that cannot be read, in the past, too far ahead), 3 no such
device, 4 conflict (retired, already or not under maintenance), 5 token refused, 6 API away.
"""

import datetime as dt
import re
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from telemetry_cli.common import EXIT_INVALID, JsonFlag, fail, local_time, out, say
from telemetry_shared.settings import Settings

app = typer.Typer(help=say("maintenance.help"), no_args_is_help=True)

DURATION = re.compile(r"^(\d{1,4})\s*([mhd])$")
UNIT_S = {"m": 60, "h": 3600, "d": 86_400}


def parse_until(text: str, now: dt.datetime, zone: dt.tzinfo) -> int:
    """`--until`: a duration from now (90m, 4h, 2d) or a time (ISO 8601; without a zone: the city's
    local time). Returns ms since the epoch; raises ValueError saying what it accepts."""
    text = text.strip()
    match = DURATION.match(text)
    if match:
        return int((now + dt.timedelta(seconds=int(match[1]) * UNIT_S[match[2]])).timestamp() * 1000)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(say("maintenance.bad_until", text=repr(text[:40]))) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return int(when.timestamp() * 1000)


def _call(call: Any) -> Any:
    from telemetry_cli.device import _api_call  # one place turns API errors into exit codes

    return _api_call(call)


def _when(ms: int | None, zone: dt.tzinfo) -> str:
    return "-" if ms is None else local_time(ms)


def _zone() -> dt.tzinfo:
    try:
        return Settings().city.zone
    except ValueError as exc:
        fail(say("cli.configuration", error=exc), EXIT_INVALID)
        raise  # unreachable


def _show(answer: dict, title: str, as_json: bool, zone: dt.tzinfo) -> None:
    if as_json:
        out.print_json(data=answer)
        return
    m = answer["maintenance"]
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in (("device", m["device"]), ("until", _when(m["until_ms"], zone)), ("note", m["note"]),
                       ("by", m["started_by"]), ("ended", _when(m["ended_ms"], zone)),
                       ("alarms", ", ".join(answer["alerts"]) or "-")):
        table.add_row(say(f"maintenance.col.{key}"), escape(str(value)))
    out.print(table)


@app.command("start", help=say("maintenance.start.help"))
def start(device_id: Annotated[str, typer.Argument(help=say("maintenance.help_device_id"))],
          until: Annotated[str, typer.Option(help=say("maintenance.help_until"))],
          note: Annotated[str, typer.Option(help=say("maintenance.help_note"))],
          as_json: JsonFlag = False) -> None:
    """Put a device under maintenance until a time: its alarms are suppressed, then return by themselves."""
    from telemetry_cli.device import _check_id

    _check_id(device_id)
    zone = _zone()
    try:
        until_ms = parse_until(until, dt.datetime.now(dt.UTC), zone)
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)
    if not note.strip() or len(note) > 500:
        fail(say("maintenance.bad_note"), EXIT_INVALID)
    minutes = (until_ms - time.time() * 1000) / 60_000
    if minutes <= 0:
        fail(say("maintenance.in_past", until=repr(until[:40])), EXIT_INVALID)
    answer = _call(lambda api: api._call("POST", f"/devices/{device_id}/maintenance",
                                         json={"minutes": round(minutes, 3), "note": note}))
    _show(answer, say("cli.maintenance_started", device=device_id), as_json, zone)


@app.command("stop", help=say("maintenance.stop.help"))
def stop(device_id: Annotated[str, typer.Argument(help=say("maintenance.help_device_id"))],
         as_json: JsonFlag = False) -> None:
    """End a device's maintenance now: its open alarms are back on the board."""
    from telemetry_cli.device import _check_id

    _check_id(device_id)
    answer = _call(lambda api: api._call("DELETE", f"/devices/{device_id}/maintenance"))
    _show(answer, say("cli.maintenance_stopped", device=device_id), as_json, _zone())


@app.command("list", help=say("maintenance.list.help"))
def list_maintenance(device: Annotated[str | None, typer.Option(help=say("maintenance.help_device"))] = None,
                     as_json: JsonFlag = False) -> None:
    """Maintenance periods, newest first (in force, stopped, expired)."""
    params = {"limit": 1000} | ({"device": device} if device else {})
    page = _call(lambda api: api._call("GET", "/maintenance", params=params))
    if as_json:
        out.print_json(data=page)
        return
    zone = _zone()
    table = Table(title=say("cli.maintenance_listed", n=page["count"]), title_justify="left")
    for column in ("device", "from", "until", "ended", "how", "by", "note"):
        table.add_column(say(f"maintenance.col.{column}"))
    for m in page["data"]:
        table.add_row(*(escape(str(v)) for v in (m["device"], _when(m["started_ms"], zone), _when(m["until_ms"], zone),
                                                  _when(m["ended_ms"], zone),
                                                  say(f"maintenance.end.{m['end_reason'] or 'in_force'}"),
                                                  m["started_by"], m["note"])))
    out.print(table)
