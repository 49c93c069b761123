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
from datetime import UTC, datetime
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
    err,
    fail,
    out,
    say,
)
from telemetry_cli.device_api import ApiError, DeviceApi
from telemetry_cli.flash import RING_SAMPLES, SPOOL_SAMPLES, ca_to_der, plan_flash
from telemetry_shared.registry import STATES
from telemetry_shared.settings import Settings

app = typer.Typer(help=say("device.help1"), no_args_is_help=True)
config_app = typer.Typer(help=say("device.help2"),
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


DeviceId = Annotated[str, typer.Argument(help=say("device.help3"))]
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help=say("device.help4"))]


# ---------------------------------------------------------------- plumbing


def _check_id(device_id: str) -> str:
    if not contract.valid_device_id(device_id):
        fail(f"bad device id {device_id[:40]!r}: 3 to 32 of a-z, 0-9 and '-', not starting with '-'", EXIT_INVALID)
    return device_id


def _api_call(call: Callable[[DeviceApi], Any]) -> Any:
    """Run one API call with the configured URL and token; API errors become exit codes."""
    try:
        api = DeviceApi.from_settings(Settings())
    except ApiError as exc:
        fail(str(exc), exc.exit_code)
    except ValueError as exc:  # the settings themselves are wrong
        fail(f"configuration: {exc}", EXIT_INVALID)
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
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        "id": device["id"], "kind": device["kind"], "district": device["district"], "state": device["state"],
        "MQTT user": answer["mqtt_user"], "MQTT password": answer["password"],
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
        fail(f"unknown kind {kind[:40]!r}; one of {', '.join(contract.KINDS)}", EXIT_INVALID)
    if device_id is not None:
        _check_id(device_id)
    if len(note) > 500:
        fail(f"the note is {len(note)} characters; at most 500", EXIT_INVALID)
    fields = {"id": device_id, "kind": kind, "district": district, "lat": lat, "lon": lon, "note": note,
              "interval_ms": interval_ms, "batch_size": batch_size}
    answer = _api_call(lambda api: api.add(fields))
    if as_json:
        _print_json(answer)
    else:
        _show_credentials(answer, "Device registered")


@app.command("list", help=say("device.list_devices.help"))
def list_devices(kind: Annotated[str | None, typer.Option(help=say("device.help8"))] = None,
                 district: Annotated[str | None, typer.Option(help=say("device.help9"))] = None,
                 state: Annotated[str | None, typer.Option(help=say("cli.one_of", choices=", ".join(STATES)))] = None,
                 limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
                 offset: Annotated[int, typer.Option(min=0)] = 0,
                 as_json: JsonFlag = False) -> None:
    """Devices with their state and when they were last heard."""
    if kind is not None and kind not in contract.KINDS:
        fail(f"unknown kind {kind[:40]!r}; one of {', '.join(contract.KINDS)}", EXIT_INVALID)
    if state is not None and state not in STATES:
        fail(f"unknown state {state[:40]!r}; one of {', '.join(STATES)}", EXIT_INVALID)
    page = _api_call(lambda api: api.list(kind=kind, district=district, state=state, limit=limit, offset=offset))
    if as_json:
        _print_json(page)
        return
    table = Table(title=say("cli.devices_shown", shown=len(page["data"]), total=page["count"]), title_justify="left")
    for column in ("id", "kind", "district", "state", "last seen", "firmware"):
        table.add_column(column)
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
    out.print(_kv_table(f"Device {device['id']}", {
        "kind": device["kind"], "district": device["district"], "position": _position(device),
        "note": device["note"], "state": device["state"], "last seen": _when(device["last_seen_ms"]),
        "firmware": device["firmware"] or status.get("fw") or "-",
        "connection": status.get("state", status.get("error", "no status yet")),
        "battery": f"{status['battery_v']} V" if "battery_v" in status else "-",
        "RSSI": f"{status['rssi_dbm']} dBm" if "rssi_dbm" in status else "-",
        "config": ", ".join(f"{k}={v}" for k, v in config.items() if k != "v") or "-",
    }))


def _position(device: dict) -> str:
    return "-" if device["lat"] is None else f"{device['lat']}, {device['lon']}"


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
        out.print(f"config published to {device_id}: "
                  + escape(", ".join(f"{k}={v}" for k, v in answer.items() if k != "v")))


def _parse_thresholds(items: list[str]) -> dict[str, list[float]]:
    thresholds = {}
    for item in items[: contract.MAX_METRICS_PER_SAMPLE + 1]:
        metric, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        try:
            pair = [float(low), float(high)]
            if not all(map(math.isfinite, pair)):
                raise ValueError("not finite")
        except ValueError:
            fail(f"bad threshold {item[:60]!r}: write metric=low:high, e.g. pressure_bar=1.5:6", EXIT_INVALID)
        if metric not in contract.METRICS:
            fail(f"unknown metric {metric[:40]!r} in --threshold", EXIT_INVALID)
        if pair[0] > pair[1]:  # the API would put them in order; a person typing them high first meant something
            fail(f"bad threshold {item[:60]!r}: low must be <= high", EXIT_INVALID)
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
        fail(f"{device_id} is retired: add a new device instead", EXIT_CONFLICT)
    broker_port = mqtt_port or (settings.mqtt_port if plain_mqtt else settings.mqtt_tls_port)
    plan = plan_flash(device, port, mqtt_host or settings.mqtt_host, broker_port, device.get("config"), source,
                      ca_der, server_hostname, ring_samples, spool_samples)
    if spool_samples == 0:
        plan.config.pop("spool_path")
    if dry_run:
        _show_plan(plan, as_json)
        return
    if not shutil.which("mpremote"):
        fail("mpremote is not installed: pip install mpremote", EXIT_UNAVAILABLE)
    _confirm(f"Flash {device_id} on {port}? This issues new credentials; the old ones stop working.", yes)
    answer = _api_call(lambda api: api.rotate(device_id))
    with tempfile.TemporaryDirectory(prefix="city-flash-") as folder:
        plan.stage(Path(folder), answer["password"])
        with err.status(f"writing {len(plan.files())} files to {port}..."):
            done = subprocess.run(plan.command(Path(folder)), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        fail(f"mpremote failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}\n"
              f"The device now has new credentials; flash again to write them.", EXIT_FAILED)
    out.print(f"{device_id} flashed on {port}; run `city device commission {device_id}` once it is installed")


def _device_ca(path: Path) -> bytes:
    """The CA certificate to pin on the board, as DER; exit 2 with the way out when there is none."""
    try:
        return ca_to_der(path.read_bytes())
    except OSError:
        fail(f"no CA certificate at {path}: pass --ca-file (the CA that signed the broker's certificate), "
             "or --plain-mqtt for a board too small for TLS", EXIT_INVALID)
    except ValueError as exc:
        fail(f"{path} is not a CA certificate: {exc}", EXIT_INVALID)


def _show_plan(plan, as_json: bool) -> None:
    files = plan.files()
    if as_json:
        _print_json({"port": plan.port, "files": files, "config": plan.config | {"password": "<issued when flashing>"},
                     "command": plan.command(Path("<staging>"))})
        return
    table = Table(title=f"Would write {len(files)} files to {plan.port}", title_justify="left")
    for column in ("on the board", "from", "bytes"):
        table.add_column(column)
    for row in files:
        table.add_row(escape(row["board_path"]), escape(row["source"]), str(row["bytes"]))
    out.print(table)
    shown = plan.config | {"password": "<issued when flashing>"}
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
        err.print(f"nothing from {device_id} in {timeout:.0f} s")
        raise typer.Exit(EXIT_FAILED)


def _watch_line(event: str, data: dict) -> str:
    """One event as console markup; everything the device sent is escaped."""
    at = datetime.fromtimestamp(data["received_ms"] / 1000, UTC).strftime("%H:%M:%S")
    if event == "status":
        extras = [f"{k}={data[k]}" for k in ("fw", "uptime_s", "battery_v", "rssi_dbm") if k in data]
        return escape(f"{at} status {data['state']}{' (retained)' if data['retained'] else ''} {' '.join(extras)}")
    if event == "invalid":
        return f"{at} [red]refused {escape(str(data['leaf']))}: {escape(str(data['reason']))}[/]"
    lines = []
    for t_ms, values, *_ in data["samples"]:
        readings = " ".join(f"{m}={v:g}{contract.METRICS[m][1] and ' ' + contract.METRICS[m][1]}"
                            for m, v in sorted(values.items()))
        sampled = datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%H:%M:%S")
        lines.append(escape(f"{sampled} seq {data['seq']}{' hist' if data['hist'] else ''} {readings}"))
    lines += [f"{at} [red]refused {escape(f'{metric}={value!r}: {reason}')}[/]"
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

    def run(api: DeviceApi) -> Commissioning:
        device = api.get(device_id)
        if device["state"] == "retired":
            fail(f"{device_id} is retired", EXIT_CONFLICT)
        judge = Commissioning(device["kind"], readings)
        started = time.monotonic()
        with err.status(f"waiting for {device_id}: birth message and {readings} readings...") as status:
            for event, data in api.live(device_id, timeout):
                judge.feed(event, data)
                status.update(f"waiting for {device_id}: birth {'ok' if judge.birth else 'pending'}, "
                              f"{judge.readings}/{readings} readings ({time.monotonic() - started:.0f} s)")
                if judge.done():
                    break
        return judge

    judge = _api_call(run)
    checks = judge.checks()
    if as_json:
        _print_json({"device": device_id, "passed": judge.passed(),
                     "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]})
    else:
        table = Table(title=f"Commissioning {device_id}", title_justify="left")
        for column in ("check", "result", "detail"):
            table.add_column(column)
        for c in checks:
            table.add_row(escape(c.name), "[green]pass[/]" if c.ok else "[red]FAIL[/]", escape(c.detail))
        out.print(table)
        verdict = f"[green]{say('cli.commissioned')}[/]" if judge.passed() else f"[red]{say('cli.not_commissioned')}[/]"
        out.print(verdict)
    if not judge.passed():
        raise typer.Exit(EXIT_FAILED)
