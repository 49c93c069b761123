"""`python -m fleetsim --fleet FILE [--scenario S] [--seed N] [--speed X] [--duration S] [--labels OUT.csv]
[--hours H] [--interval S]`: run the fleet until SIGTERM/SIGINT or the duration, then stop cleanly."""

import argparse
import asyncio
import json
import math
import signal
import sys
from pathlib import Path

from fleetsim.fleetfile import FleetError, load_fleet
from fleetsim.runner import FleetRunner, RunOptions, raise_fd_limit
from fleetsim.scenario import DEFAULT_SCENARIO, ScenarioError, load_scenario


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleetsim", description=__doc__.split(":")[1].strip())
    parser.add_argument("--fleet", required=True, type=Path, help="fleet file (devices, passwords, broker)")
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO, help="scenario JSON")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same city")
    parser.add_argument("--speed", type=_non_negative, default=3600.0,
                        help="history replay speed, simulated seconds per wall second (0: as fast as possible)")
    parser.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    parser.add_argument("--labels", type=Path, default=None, help="write the injected faults here (CSV)")
    parser.add_argument("--hours", type=_non_negative, default=0.0, help="replay this much history first")
    parser.add_argument("--interval", type=_positive, default=None, help="live sampling interval, seconds")
    parser.add_argument("--history-interval", type=_positive, default=None, help="history sampling interval, s")
    parser.add_argument("--micropython", type=int, default=0, metavar="N",
                        help="run N of the devices as real MicroPython processes (the unix port)")
    parser.add_argument("--duty-cycle", action="store_true",
                        help="each device wakes every interval: connect, publish what it holds, disconnect "
                             "(a fleet larger than the broker's file-descriptor limit)")
    parser.add_argument("--readings-per-wake", type=int, default=1, metavar="K",
                        help="with --duty-cycle: wake every K readings, sending the K in one message")
    args = parser.parse_args(argv)
    if not 1 <= args.readings_per_wake <= 60:
        parser.error("--readings-per-wake: 1..60")
    if not 0 <= args.micropython <= 32:
        parser.error("--micropython: 0..32 processes")
    if args.hours > 24 * 35:
        parser.error("--hours: at most 840 (the ingest refuses readings older than 35 days)")
    return args


async def _run(runner: FleetRunner) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    await runner.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fleet = load_fleet(args.fleet)
        scenario = load_scenario(args.scenario)
    except (FleetError, ScenarioError) as exc:
        print(f"fleetsim: error: {exc}", file=sys.stderr)
        return 2
    options = RunOptions(seed=args.seed, speed=args.speed, duration_s=args.duration, history_hours=args.hours,
                         history_interval_s=args.history_interval, interval_s=args.interval,
                         labels_path=args.labels, micropython=args.micropython,
                         duty_cycle=args.duty_cycle, readings_per_wake=args.readings_per_wake)
    raise_fd_limit(len(fleet.devices) + 1024)  # one socket per device, and a margin
    runner = FleetRunner(fleet, scenario, options)
    print(f"fleetsim: {len(fleet.devices)} devices -> {fleet.host}:{fleet.port}, {len(runner.faults)} faults, "
          f"{args.hours} h of history", flush=True)
    try:
        asyncio.run(_run(runner))
    except RuntimeError as exc:  # e.g. --micropython without the binary
        print(f"fleetsim: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(runner.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
