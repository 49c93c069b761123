"""`city simulate`: a simulated fleet of thousands of devices against the city
that `city up` runs on this machine. The devices are registered (ids tagged
`-s`, so they never clash with the city's own fleet), given broker passwords,
and run by the fleet simulator in this process; with --hours the past is
replayed first, faster than real time, with its original timestamps and
flagged as history. At the end it shows what reached InfluxDB per kind."""

import asyncio
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from edge import contract
from telemetry_cli.common import EXIT_INVALID, EXIT_UNAVAILABLE, number, say
from telemetry_shared.influx import InfluxError, InfluxQL
from telemetry_shared.localstack import LocalStack, StackNotRunning
from telemetry_shared.settings import get_settings

console = Console()
ID_TAG = "s"


def simulate(
    devices: Annotated[int, typer.Option(min=1, max=100_000, help=say("simulate.help1"))] = 2000,
    hours: Annotated[float, typer.Option(min=0, max=840, help=say("simulate.help2"))] = 0.0,
    speed: Annotated[float, typer.Option(min=0, max=1e7, help=say("simulate.help3"))]
    = 3600.0,
    duration: Annotated[float | None, typer.Option(min=1, help=say("simulate.help4"))]
    = None,
    interval: Annotated[float | None, typer.Option(min=1, max=86400, help=say("simulate.help5"))] = None,
    seed: Annotated[int, typer.Option(help=say("simulate.help6"))] = 1,
    scenario: Annotated[Path | None, typer.Option(help=say("simulate.help7"))] = None,
    labels: Annotated[Path | None, typer.Option(help=say("simulate.help8"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help=say("simulate.help9"))] = False,
    duty_cycle: Annotated[bool, typer.Option("--duty-cycle", help=say("simulate.help10"))] = False,
) -> None:
    """Run a simulated fleet against the local city started by `city up`."""
    import fleetsim
    from fleetsim.fleetfile import parse_fleet
    from fleetsim.runner import FleetRunner, RunOptions, raise_fd_limit

    for name, value in (("--hours", hours), ("--speed", speed), ("--duration", duration), ("--interval", interval)):
        if value is not None and not math.isfinite(value):
            console.print(f"[red]{say('simulate.not_finite', name=name)}[/]")
            raise typer.Exit(2)
    settings = get_settings()
    try:
        stack = LocalStack.load(settings)
        scenario_data = fleetsim.load_scenario(scenario or fleetsim.DEFAULT_SCENARIO)
    except (StackNotRunning, fleetsim.ScenarioError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_UNAVAILABLE if isinstance(exc, StackNotRunning) else EXIT_INVALID) from exc
    work = stack.root / "simulate"
    work.mkdir(parents=True, exist_ok=True)
    labels_path = labels or work / "labels.csv"
    specs = fleetsim.plan_fleet(scenario_data, devices, seed, tag=ID_TAG)
    with console.status(say("simulate.registering", n=len(specs))):
        passwords = stack.add_devices(specs)
        time.sleep(1.0)  # Mosquitto re-reads its password file on the SIGHUP add_devices sent
    fleet = {"devices": [s | {"password": passwords[s["id"]]} for s in specs],
             "broker": {"host": "127.0.0.1", "port": stack.mqtt_port}}
    _write_private(work / "fleet.json", json.dumps(fleet))
    options = RunOptions(seed=seed, speed=speed, duration_s=duration, history_hours=hours, interval_s=interval,
                         labels_path=labels_path, verbose=False, duty_cycle=duty_cycle)
    raise_fd_limit(len(specs) + 1024)  # one socket per device, and a margin
    runner = FleetRunner(parse_fleet(fleet), scenario_data, options)
    started_ms = runner.hist_start_ms
    asyncio.run(_run_with_progress(runner, quiet=as_json))
    stored = _stored_per_kind(stack, specs, started_ms, runner.stats.readings)
    _report(runner, stored, labels_path, as_json)


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o600)  # it holds device passwords


async def _run_with_progress(runner, quiet: bool) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    task = asyncio.create_task(runner.run())
    if quiet:
        await task
        return
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        while not task.done():
            live.update(_progress_line(runner))
            await asyncio.wait({task}, timeout=0.5)
    await task


def _progress_line(runner) -> str:
    stats, total = runner.stats, len(runner.sims)
    line = say("simulate.progress", connected=f"[bold]{stats.connected}[/]", total=total,
               messages=number(stats.messages, 0), readings=number(stats.readings, 0),
               malformed=number(stats.malformed, 0))
    if runner.hist_start_ms < runner.live_start_ms:
        span = runner.live_start_ms - runner.hist_start_ms
        done = min(1.0, (runner.virtual_now_ms() - runner.hist_start_ms) / span)
        line += say("simulate.history", pct=number(done * 100, 1), done=stats.history_done, total=total)
    return line + say("simulate.ctrl_c")


def _stored_per_kind(stack: LocalStack, specs: list[dict], since_ms: int, sent: int) -> dict[str, int]:
    """Points the ingest stored for our devices, waiting a little for it to catch up."""
    influx = InfluxQL(stack.influx_url, get_settings().influx_db)
    regex = f"/-[a-z0-9]+-{ID_TAG}[0-9]+$/"
    counts: dict[str, int] = {}
    deadline = time.monotonic() + 20
    try:
        while True:
            for kind in contract.KINDS:
                rows = influx.rows(f'SELECT count(seq) FROM "{kind}" WHERE device =~ {regex} '  # not for people
                                   f"AND time >= {(since_ms - 3_600_000) * 1_000_000}")
                counts[kind] = int(rows[0]["count"]) if rows else 0
            if sum(counts.values()) >= sent or time.monotonic() > deadline:
                return counts
            time.sleep(1.0)
    except InfluxError as exc:
        console.print(f"[yellow]{escape(say('simulate.influx_unreadable', error=exc))}[/]")
        return counts
    finally:
        influx.close()


def _report(runner, stored: dict[str, int], labels_path: Path, as_json: bool) -> None:
    summary = runner.summary() | {"stored_per_kind": stored, "labels": str(labels_path)}
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title="city simulate")  # not for people: the command's name
    table.add_column(say("simulate.col.kind"))
    table.add_column(say("simulate.col.devices"), justify="right")
    table.add_column(say("simulate.col.stored"), justify="right")
    for kind in contract.KINDS:
        table.add_row(kind, number(sum(1 for s in runner.sims if s.kind == kind), 0), number(stored.get(kind, 0), 0))
    console.print(table)
    console.print(say("simulate.summary", messages=number(summary["messages"], 0),
                      readings=number(summary["readings"], 0), history=number(summary["history_readings"], 0),
                      malformed=number(summary["malformed"], 0), faults=summary["faults"], labels=labels_path))
    if runner.hist_start_ms < runner.live_start_ms and summary["history_done"] < summary["devices"]:
        console.print(f"[yellow]{say('simulate.history_cut', done=summary['history_done'], n=summary['devices'])}[/]")
