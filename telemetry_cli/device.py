"""`city device ...`: the field technician's commands. Every command talks to
the API (CITY_API_URL with CITY_API_TOKEN), so it works from a laptop in the
field as well as on the server.

Exit codes: 0 done, 1 the check failed or was not confirmed, 2 bad input,
3 no such device, 4 conflict (exists, retired), 5 token refused,
6 API or broker unavailable.
"""

import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.markup import escape
from rich.table import Table

from edge import contract
from telemetry_cli.commission import Commissioning
from telemetry_cli.common import (
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_UNAVAILABLE,
    JsonFlag,
    decimal,
    err,
    fail,
    local_time,
    neutral,
    number,
    out,
    say,
)
from telemetry_cli.device_api import ApiError, DeviceApi
from telemetry_cli.flash import CA_SOURCE, MAX_CA_BYTES, RING_SAMPLES, SPOOL_SAMPLES, ca_to_der, plan_flash
from telemetry_shared.files import FileTooLarge, read_bounded
from telemetry_shared.registry import STATES
from telemetry_shared.settings import Settings

app = typer.Typer(help=say("device.help1"), no_args_is_help=True)
config_app = typer.Typer(help=say("device.help2"),
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


DeviceId = Annotated[str, typer.Argument(help=say("device.help3"))]
ISSUED_LATER = "<issued when flashing>"  # not for people: the placeholder in --json, for scripts
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help=say("device.help4"))]


# ---------------------------------------------------------------- plumbing


def _check_id(device_id: str) -> str:
    if not contract.valid_device_id(device_id):
        fail(say("device.bad_id", id=repr(device_id[:40])), EXIT_INVALID)
    return device_id


def _api_call(call: Callable[[DeviceApi], Any]) -> Any:
    """Run one API call with the configured URL and token; API errors become exit codes."""
    try:
        api = DeviceApi.from_settings(Settings())
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    except ValueError as exc:  # the settings themselves are wrong
        fail(say("cli.configuration", error=exc), EXIT_INVALID)
    try:
        return call(api)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        api.close()


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    try:
        if typer.confirm(question, default=False):
            return
    except click.exceptions.Abort:
        pass
    err.print(say("cli.not_confirmed"))
    raise typer.Exit(EXIT_FAILED)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=1, sort_keys=True))


def _when(ms: int | None) -> str:
    if ms is None:
        return say("device.never")
    return local_time(ms)


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, "" if value is None else escape(str(value)))
    return table


def _show_credentials(answer: dict, title: str) -> None:
    device = answer["device"]
    out.print(_kv_table(title, {
        say("device.col.id"): device["id"], say("device.col.kind"): device["kind"],
        say("device.col.district"): device["district"], say("device.col.state"): device["state"],
        say("device.col.mqtt_user"): answer["mqtt_user"], say("device.col.mqtt_password"): answer["password"],
    }))
    out.print(f"[yellow]{say('cli.password_once')}[/]")


# ---------------------------------------------------------------- commands


@app.command("add", help=say("device.add.help"))
def add(kind: Annotated[str, typer.Option(help=say("cli.one_of", choices=", ".join(contract.KINDS)))],
        district: Annotated[str, typer.Option(help=say("device.help5"))],
        device_id: Annotated[str | None, typer.Option("--id", help=say("device.help6"))] = None,
        lat: Annotated[float | None, typer.Option(min=-90, max=90)] = None,
        lon: Annotated[float | None, typer.Option(min=-180, max=180)] = None,
        note: Annotated[str, typer.Option(help=say("device.help7"))] = "",
        interval_ms: Annotated[int, typer.Option(min=contract.MIN_INTERVAL_MS, max=contract.MAX_INTERVAL_MS)] = 10000,
        batch_size: Annotated[int, typer.Option(min=1, max=contract.MAX_SAMPLES)] = 1,
        as_json: JsonFlag = False) -> None:
    """Register a device: an id, a password shown once, and its first config."""
    if kind not in contract.KINDS:
        fail(say("device.unknown_kind", kind=repr(kind[:40]), choices=", ".join(contract.KINDS)), EXIT_INVALID)
    if device_id is not None:
        _check_id(device_id)
    if len(note) > 500:
        fail(say("device.note_too_long", n=len(note)), EXIT_INVALID)
    fields = {"id": device_id, "kind": kind, "district": district, "lat": lat, "lon": lon, "note": note,
              "interval_ms": interval_ms, "batch_size": batch_size}
    answer = _api_call(lambda api: api.add(fields))
    if as_json:
        _print_json(answer)
    else:
        _show_credentials(answer, say("device.registered"))


@app.command("list", help=say("device.list_devices.help"))
def list_devices(kind: Annotated[str | None, typer.Option(help=say("device.help8"))] = None,
                 district: Annotated[str | None, typer.Option(help=say("device.help9"))] = None,
                 state: Annotated[str | None, typer.Option(help=say("cli.one_of", choices=", ".join(STATES)))] = None,
                 limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
                 offset: Annotated[int, typer.Option(min=0)] = 0,
                 as_json: JsonFlag = False) -> None:
    """Devices with their state and when they were last heard."""
    if kind is not None and kind not in contract.KINDS:
        fail(say("device.unknown_kind", kind=repr(kind[:40]), choices=", ".join(contract.KINDS)), EXIT_INVALID)
    if state is not None and state not in STATES:
        fail(say("device.unknown_state", state=repr(state[:40]), choices=", ".join(STATES)), EXIT_INVALID)
    page = _api_call(lambda api: api.list(kind=kind, district=district, state=state, limit=limit, offset=offset))
    if as_json:
        _print_json(page)
        return
    table = Table(title=say("cli.devices_shown", shown=len(page["data"]), total=page["count"]), title_justify="left")
    for column in ("id", "kind", "district", "state", "last_seen", "firmware"):
        table.add_column(say(f"device.col.{column}"))
    for d in page["data"]:
        table.add_row(*(escape(str(v)) for v in (d["id"], d["kind"], d["district"], d["state"],
                                                  _when(d["last_seen_ms"]), d["firmware"] or "-")))
    out.print(table)


@app.command("show", help=say("device.show.help"))
def show(device_id: DeviceId, as_json: JsonFlag = False) -> None:
    """One device: state, last seen, firmware, battery or RSSI, and its config."""
    _check_id(device_id)
    device = _api_call(lambda api: api.get(device_id))
    if as_json:
        _print_json(device)
        return
    status = device.get("status") or {}
    config = device.get("config") or {}
    rows = {
        "kind": device["kind"], "district": device["district"], "position": _position(device),
        "note": device["note"], "state": device["state"], "last_seen": _when(device["last_seen_ms"]),
        "firmware": device["firmware"] or status.get("fw") or "-",
        "connection": status.get("state", status.get("error", say("device.no_status"))),
        "battery": f"{decimal(status['battery_v'])} V" if "battery_v" in status else "-",
        "rssi": f"{status['rssi_dbm']} dBm" if "rssi_dbm" in status else "-",
        "config": ", ".join(f"{k}={v}" for k, v in config.items() if k != "v") or "-",
    }
    out.print(_kv_table(say("device.title", device=device["id"]),
                        {say(f"device.col.{name}"): value for name, value in rows.items()}))


def _position(device: dict) -> str:
    return "-" if device["lat"] is None else f"{number(device['lat'], 5)}; {number(device['lon'], 5)}"


@app.command("rotate", help=say("device.rotate.help"))
def rotate(device_id: DeviceId, yes: YesFlag = False, as_json: JsonFlag = False) -> None:
    """New credentials; the old password is refused and its live session cut at once."""
    _check_id(device_id)
    _confirm(say("cli.confirm_rotate", device=device_id), yes)
    answer = _api_call(lambda api: api.rotate(device_id))
    if as_json:
        _print_json(answer)
    else:
        _show_credentials(answer, say("cli.new_credentials", device=device_id))
        _say_cut(answer["cut_ms"], say("cli.old_session"))


def _say_cut(cut_ms: float | None, what: str) -> None:
    if cut_ms is None:
        err.print(f"[yellow]{say('cli.cut_unconfirmed', what=what)}[/]")
    else:
        out.print(say("cli.cut_in", what=what, ms=f"{cut_ms:.0f}"))


@app.command("retire", help=say("device.retire.help"))
def retire(device_id: DeviceId, yes: YesFlag = False, as_json: JsonFlag = False) -> None:
    """Refuse the device from now on (its data stays) and cut its live session."""
    _check_id(device_id)
    _confirm(say("cli.confirm_retire", device=device_id), yes)
    answer = _api_call(lambda api: api.retire(device_id))
    if as_json:
        _print_json(answer)
    else:
        out.print(say("cli.retired", device=device_id))
        _say_cut(answer["cut_ms"], say("cli.live_session"))


@config_app.command("set", help=say("device.config_set.help"))
def config_set(device_id: DeviceId,
               interval_ms: Annotated[int, typer.Option(min=contract.MIN_INTERVAL_MS, max=contract.MAX_INTERVAL_MS,
                                                        help=say("device.help10"))],
               batch_size: Annotated[int, typer.Option(min=1, max=contract.MAX_SAMPLES,
                                                       help=say("device.help11"))] = 1,
               threshold: Annotated[list[str] | None, typer.Option(
                   help=say("device.help12"))] = None,
               as_json: JsonFlag = False) -> None:
    """Publish a retained config; the device applies it without a reboot."""
    _check_id(device_id)
    body = {"interval_ms": interval_ms, "batch_size": batch_size}
    if threshold:
        body["thresholds"] = _parse_thresholds(threshold)
    answer = _api_call(lambda api: api.set_config(device_id, body))
    if as_json:
        _print_json(answer)
    else:
        out.print(say("device.config_published", device=device_id,
                      config=escape(", ".join(f"{k}={v}" for k, v in answer.items() if k != "v"))))


def _parse_thresholds(items: list[str]) -> dict[str, list[float]]:
    thresholds = {}
    for item in items[: contract.MAX_METRICS_PER_SAMPLE + 1]:
        metric, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        try:
            pair = [float(low), float(high)]
            if not all(map(math.isfinite, pair)):
                raise ValueError(metric)  # inf or nan
        except ValueError:
            fail(say("device.bad_threshold", item=repr(item[:60])), EXIT_INVALID)
        if metric not in contract.METRICS:
            fail(say("device.unknown_metric", metric=repr(metric[:40])), EXIT_INVALID)
        if pair[0] > pair[1]:  # the API would put them in order; a person typing them high first meant something
            fail(say("device.threshold_order", item=repr(item[:60])), EXIT_INVALID)
        thresholds[metric] = pair
    return thresholds


@app.command("flash", help=say("device.flash.help"))
def flash(device_id: DeviceId,
          port: Annotated[str, typer.Option(help=say("device.help13"))] = "/dev/ttyACM0",
          mqtt_host: Annotated[str | None, typer.Option(help=say("device.help14"))] = None,
          mqtt_port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
          source: Annotated[str, typer.Option(help=say("device.help15"))] = "synthetic",
          ca_file: Annotated[Path | None, typer.Option(help=say("device.help16"))]
          = None,
          server_hostname: Annotated[str | None, typer.Option(help=say("device.help17"))] = None,
          plain_mqtt: Annotated[bool, typer.Option("--plain-mqtt", help=say("device.help18"))] = False,
          ring_samples: Annotated[int, typer.Option(min=4, max=5000, help=say("device.help19"))] = RING_SAMPLES,
          spool_samples: Annotated[int, typer.Option(min=0, max=1_000_000, help=say("device.help20"))]
          = SPOOL_SAMPLES,
          dry_run: Annotated[bool, typer.Option("--dry-run", help=say("device.help21"))] = False,
          yes: YesFlag = False, as_json: JsonFlag = False) -> None:
    """Write the firmware, the city's CA and the device's config (with fresh credentials) to a board with mpremote."""
    _check_id(device_id)
    settings = Settings()
    ca_der = None if plain_mqtt else _device_ca(ca_file or settings.device_ca_path)
    device = _api_call(lambda api: api.get(device_id))
    if device["state"] == "retired":
        fail(say("device.retired_add_new", device=device_id), EXIT_CONFLICT)
    broker_port = mqtt_port or (settings.mqtt_port if plain_mqtt else settings.mqtt_tls_port)
    plan = plan_flash(device, port, mqtt_host or settings.mqtt_host, broker_port, device.get("config"), source,
                      ca_der, server_hostname, ring_samples, spool_samples)
    if spool_samples == 0:
        plan.config.pop("spool_path")
    if dry_run:
        _show_plan(plan, as_json)
        return
    if not shutil.which("mpremote"):
        fail(say("device.no_mpremote"), EXIT_UNAVAILABLE)
    _confirm(say("device.confirm_flash", device=device_id, port=port), yes)
    answer = _api_call(lambda api: api.rotate(device_id))
    with tempfile.TemporaryDirectory(prefix="city-flash-") as folder:
        plan.stage(Path(folder), answer["password"])
        with err.status(say("device.writing", n=len(plan.files()), port=port)):
            done = subprocess.run(plan.command(Path(folder)), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        fail(say("device.mpremote_failed", code=done.returncode, output=(done.stderr or done.stdout).strip()[-500:]),
             EXIT_FAILED)
    out.print(say("device.flashed", device=device_id, port=port))


def _device_ca(path: Path) -> bytes:
    """The CA certificate to pin on the board, as DER; exit 2 with the way out when there is none."""
    try:  # bounded: --ca-file /dev/zero or a pipe never ends
        return ca_to_der(read_bounded(path, MAX_CA_BYTES))
    except FileTooLarge:
        fail(say("device.ca_too_large", path=path, kb=MAX_CA_BYTES // 1024), EXIT_INVALID)
    except OSError:
        fail(say("device.no_ca", path=path), EXIT_INVALID)
    except ValueError as exc:
        fail(say("device.not_ca", path=path, error=exc), EXIT_INVALID)


def _show_plan(plan, as_json: bool) -> None:
    files = plan.files()
    if as_json:
        _print_json({"port": plan.port, "files": files, "config": plan.config | {"password": ISSUED_LATER},
                     "command": plan.command(Path("<staging>"))})
        return
    table = Table(title=say("device.would_write", n=len(files), port=plan.port), title_justify="left")
    for column in ("board_path", "source", "bytes"):
        table.add_column(say(f"device.col.{column}"))
    for row in files:
        source = {CA_SOURCE: say("device.source_ca"), "(generated)": say("device.source_generated")}.get(
            row["source"], row["source"])
        table.add_row(escape(row["board_path"]), escape(source), number(row["bytes"], 0))
    out.print(table)
    shown = plan.config | {"password": say("device.issued_later")}
    out.print("config.json: " + escape(json.dumps(shown, sort_keys=True)))


@app.command("watch", help=say("device.watch.help"))
def watch(device_id: DeviceId,
          timeout: Annotated[float, typer.Option(min=1, max=3600, help=say("device.help22"))] = 60,
          count: Annotated[int, typer.Option(min=0, max=100_000, help=say("device.help23"))]
          = 0,
          as_json: JsonFlag = False) -> None:
    """Live readings and status of one device, as they arrive."""
    _check_id(device_id)

    def stream(api: DeviceApi) -> int:
        shown = 0
        for event, data in api.live(device_id, timeout, count):
            if event in ("telemetry", "status", "invalid"):
                shown += 1
                if as_json:
                    typer.echo(json.dumps({"event": event} | data, sort_keys=True))
                else:
                    out.print(_watch_line(event, data), highlight=False)
        return shown

    shown = _api_call(stream)
    if not shown:
        err.print(say("device.nothing_from", device=device_id, s=f"{timeout:.0f}"))
        raise typer.Exit(EXIT_FAILED)


def _watch_line(event: str, data: dict) -> str:
    """One event as console markup; everything the device sent is escaped."""
    at = local_time(data["received_ms"], clock_only=True)
    if event == "status":
        extras = " ".join(f"{k}={data[k]}" for k in ("fw", "uptime_s", "battery_v", "rssi_dbm") if k in data)
        key = "device.watch_status_retained" if data["retained"] else "device.watch_status"
        return escape(say(key, at=at, state=data["state"], extras=extras))
    if event == "invalid":
        return f"[red]{escape(say('device.watch_refused', at=at, what=data['leaf'], reason=data['reason']))}[/]"
    lines = []
    for t_ms, values, *_ in data["samples"]:
        readings = " ".join(f"{m}={v:g}{contract.METRICS[m][1] and ' ' + contract.METRICS[m][1]}"
                            for m, v in sorted(values.items()))
        sampled = local_time(t_ms, clock_only=True)
        key = "device.watch_sample_hist" if data["hist"] else "device.watch_sample"
        lines.append(escape(say(key, at=sampled, seq=data["seq"], readings=readings)))
    lines += [f"[red]{escape(say('device.watch_refused', at=at, what=f'{metric}={value!r}', reason=reason))}[/]"
              for _, metric, value, reason in data["rejects"]]
    return "\n".join(lines)


@app.command("commission", help=say("device.commission.help"))
def commission(device_id: DeviceId,
               timeout: Annotated[float, typer.Option(min=1, max=3600, help=say("device.help24"))]
               = 120,
               readings: Annotated[int, typer.Option(min=1, max=1000, help=say("device.help25"))] = 3,
               as_json: JsonFlag = False) -> None:
    """Wait for the birth message and first readings, check them against the kind's bounds."""
    _check_id(device_id)
    neutral(as_json)

    def run(api: DeviceApi) -> Commissioning:
        device = api.get(device_id)
        if device["state"] == "retired":
            fail(say("device.is_retired", device=device_id), EXIT_CONFLICT)
        judge = Commissioning(device["kind"], readings)
        started = time.monotonic()
        with err.status(say("device.waiting", device=device_id, n=readings)) as status:
            for event, data in api.live(device_id, timeout):
                judge.feed(event, data)
                status.update(say("device.waiting_birth_ok" if judge.birth else "device.waiting_birth_pending",
                                  device=device_id, got=judge.readings, n=readings,
                                  s=f"{time.monotonic() - started:.0f}"))
                if judge.done():
                    break
        return judge

    judge = _api_call(run)
    checks = judge.checks()
    if as_json:
        _print_json({"device": device_id, "passed": judge.passed(),
                     "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]})
    else:
        table = Table(title=say("device.commissioning", device=device_id), title_justify="left")
        for column in ("check", "result", "detail"):
            table.add_column(say(f"device.col.{column}"))
        for c in checks:
            result = f"[green]{say('device.pass')}[/]" if c.ok else f"[red]{say('device.fail')}[/]"
            name = say("commission.metrics", kind=say(f"kind.{judge.kind}")) if c.name.endswith(" metrics") \
                else say(f"commission.{c.name.replace(' ', '_')}")
            table.add_row(escape(name), result,
                          escape(c.detail))
        out.print(table)
        verdict = f"[green]{say('cli.commissioned')}[/]" if judge.passed() else f"[red]{say('cli.not_commissioned')}[/]"
        out.print(verdict)
    if not judge.passed():
        raise typer.Exit(EXIT_FAILED)


from telemetry_cli import maintenance  # noqa: E402 - it borrows this module's plumbing

app.add_typer(maintenance.app, name="maintenance")
