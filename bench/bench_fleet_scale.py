"""The fleet simulator at city scale: N devices at one reading a minute against a real Mosquitto.

Runs the fleet runner in this process (the real agent logic: buffering, sequence numbers, boot ids,
the payload contract; every device logs in with its own username, which the broker's ACL pins to
its own topics) for a bounded time and reports, over a steady window:
  messages/s achieved against the target (N / 60 s), the simulator's CPU share (of one core),
  Mosquitto's CPU share, both processes' resident memory, the broker's open file descriptors,
  the peak of connections open at once, and the publish lag (reading's tick -> broker's PUBACK)
  p50/p99. With --processes 2 the fleet is split between two processes (figures summed; sim CPU is
  then of up to two cores).

Modes: persistent (one MQTT connection per device for the whole run; bounded by the file-descriptor
limit of the broker and of this process) and --duty-cycle (each device wakes once a minute: connect,
publish, disconnect; only the devices awake at a moment hold a connection); --duty-cycle K wakes
every K minutes and sends the K readings in one message (the target messages/s is then N / 60 / K;
the readings/s target stays N / 60).

The bench devices share one password (hashing 100,000 PBKDF2 secrets would take a minute here); each
still logs in under its own username and the broker checks the password on every connect.

Usage: python3 bench/bench_fleet_scale.py --devices 10000 50000 100000 [--seconds 60] [--duty-cycle K]
       [--processes 2]
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from fleet_setup import (
    INTERVAL_S,
    open_fds,
    plan_bench_fleet,
    proc_cpu_s,
    proc_rss_mb,
    quantile,
    run_options,
    split_fleet,
)
from fleetsim.fleetfile import parse_fleet
from fleetsim.runner import FleetRunner, raise_fd_limit

from telemetry_shared.servers import Mosquitto

WARMUP_S = 5.0


async def run_fleet(fleet: dict, scenario: dict, seconds: float, duty_cycle: int, broker_pid: int) -> dict:
    """duty_cycle: 0 = persistent connections, K = wake every K readings (K readings a message)."""
    runner = FleetRunner(parse_fleet(fleet), scenario, run_options(duty_cycle))
    task = asyncio.create_task(runner.run())
    # Duty-cycled: the first wakes are spread over the minute, so the rate is steady almost at once.
    # Persistent: every device has connected (and ticks, spread over the minute) only after a minute.
    await asyncio.sleep(WARMUP_S if duty_cycle else INTERVAL_S + WARMUP_S)
    stats = runner.stats
    stats.lags.clear()
    t0, m0, c0, b0 = time.perf_counter(), stats.messages, time.process_time(), proc_cpu_s(broker_pid)
    r0 = stats.readings
    peak_connected, peak_fds = 0, 0
    while time.perf_counter() - t0 < seconds:
        await asyncio.sleep(0.5)
        peak_connected = max(peak_connected, stats.connected)
        peak_fds = max(peak_fds, open_fds(broker_pid))
    wall = time.perf_counter() - t0
    result = {"mps": (stats.messages - m0) / wall, "target": len(runner.sims) / INTERVAL_S / max(duty_cycle, 1),
              "rps": (stats.readings - r0) / wall,
              "sim_cpu": (time.process_time() - c0) / wall, "broker_cpu": (proc_cpu_s(broker_pid) - b0) / wall,
              "sim_rss_mb": proc_rss_mb(os.getpid()), "broker_rss_mb": proc_rss_mb(broker_pid),
              "peak_connected": peak_connected, "broker_fds": peak_fds, "lags": list(stats.lags),
              "connect_failures": stats.connect_failures}
    runner.request_stop()
    await task
    return result


def fleet_process(fleet: dict, scenario: dict, seconds: float, duty_cycle: int, broker_pid: int) -> dict:
    return asyncio.run(run_fleet(fleet, scenario, seconds, duty_cycle, broker_pid))


def combine(parts: list[dict]) -> dict:
    """The fleet's figures from its processes': sums, except the broker's (one broker, measured by each)."""
    total = {key: sum(p[key] for p in parts) for key in ("mps", "target", "rps", "sim_cpu", "sim_rss_mb",
                                                          "peak_connected", "connect_failures")}
    total |= {key: statistics.fmean(p[key] for p in parts) for key in ("broker_cpu", "broker_rss_mb")}
    return total | {"broker_fds": max(p["broker_fds"] for p in parts), "lags": [x for p in parts for x in p["lags"]]}


def one_size(devices: int, seconds: float, duty_cycle: int, processes: int) -> dict:
    scenario, specs, password, hashed = plan_bench_fleet(devices)
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp) / "mosquitto", users={s["id"]: hashed for s in specs}).start(timeout_s=120)
        try:
            fleets = split_fleet(specs, password, mosquitto.port, processes)
            if processes == 1:
                return fleet_process(fleets[0], scenario, seconds, duty_cycle, mosquitto.proc.pid)
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                parts = pool.starmap(fleet_process, [(f, scenario, seconds, duty_cycle, mosquitto.proc.pid)
                                                     for f in fleets])
            return combine(parts)
        finally:
            mosquitto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10_000])
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window, per size")
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1, help="fleet processes (share the fleet)")
    parser.add_argument("--duty-cycle", type=int, default=0, metavar="K",
                        help="devices wake every K readings (K minutes): connect, publish the K, disconnect")
    args = parser.parse_args()
    if any(not 1 <= n <= 200_000 for n in args.devices) or not 5 <= args.seconds <= 600:
        parser.error("--devices 1..200000, --seconds 5..600 (bounded)")
    if not 0 <= args.duty_cycle <= 60:
        parser.error("--duty-cycle K: 1..60 readings a wake (0: persistent connections)")
    limit = raise_fd_limit(1_048_576)  # the broker started below inherits it
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    mode = (f"duty-cycled (a wake every {args.duty_cycle} min: connect, publish {args.duty_cycle} reading(s), "
            "disconnect)" if args.duty_cycle else "persistent connections")
    print(f"fleet scale, {mode}, {args.processes} fleet process(es); file descriptors: {limit} "
          f"(hard limit {hard}) for this process and the broker; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'devices':>8} {'readings/s':>10} {'msg/s':>8} {'target':>8} {'ratio':>6} {'sim CPU':>8} "
          f"{'broker CPU':>10} "
          f"{'sim RSS MB':>10} {'broker RSS MB':>13} {'peak conns':>10} {'broker fds':>10} "
          f"{'lag p50 s':>9} {'lag p99 s':>9} {'conn fail':>9}")
    for devices in args.devices:
        r = one_size(devices, args.seconds, args.duty_cycle, args.processes)
        print(f"{devices:8d} {r['rps']:10.0f} {r['mps']:8.0f} {r['target']:8.0f} {r['mps'] / r['target']:6.2f} "
              f"{r['sim_cpu']:8.2f} "
              f"{r['broker_cpu']:10.2f} {r['sim_rss_mb']:10.0f} {r['broker_rss_mb']:13.0f} "
              f"{r['peak_connected']:10d} {r['broker_fds']:10d} {quantile(r['lags'], 0.5):9.3f} "
              f"{quantile(r['lags'], 0.99):9.3f} {r['connect_failures']:9d}", flush=True)
        if r["lags"]:
            print(f"         ({len(r['lags'])} publishes timed; mean lag {statistics.fmean(r['lags']):.3f} s)")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
