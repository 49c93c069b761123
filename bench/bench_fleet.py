"""How many devices and readings per second one fleet-simulator process sustains.

Against a real Mosquitto on loopback (no subscriber, so the broker only acks):
  replay   history replayed as fast as the broker takes it (QoS 1, 60 readings
           a message, one connection per device), readings/s
  live     every device sampling once a second in real time: the readings/s
           achieved against the 1-per-device-per-second target
Baselines in the same run:
  generate the same readings in process, no MQTT (the model's own cost)
  paho     one paho-mqtt client publishing the same number of 60-reading
           QoS 1 messages, pre-encoded (a plain client on one connection)

With --tls the same fleet also talks TLS to the broker's TLS listener (checking
its certificate against a local CA made for the run), in the same run as plain
MQTT on the same broker, the two alternating round by round: the report gives
both, their ratio (TLS / plain), how long the whole fleet took to connect, and
the machine's load average before and after (it is shared).

Usage: python3 bench/bench_fleet.py [--devices 2000] [--repeat 3] [--live-seconds 15] [--tls]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "firmware-sim")]

import fleetsim  # noqa: E402
from fleetsim.fleetfile import parse_fleet  # noqa: E402
from fleetsim.runner import FleetRunner, RunOptions  # noqa: E402

from edge import contract  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.local_ca import ensure_local_ca  # noqa: E402
from telemetry_shared.servers import Mosquitto  # noqa: E402

START_MS = 1_796_000_000_000


def replay(fleet: dict, scenario: dict, hours: float) -> tuple[float, int, int]:
    options = RunOptions(seed=1, speed=0, history_hours=hours, history_interval_s=60, interval_s=3600,
                         connect_spread_s=0.5, verbose=False)
    runner = FleetRunner(parse_fleet(fleet), scenario, options)
    total = len(runner.sims)

    async def until_history_done() -> None:
        task = asyncio.create_task(runner.run())
        while runner.stats.history_done < total or not runner.devices:
            await asyncio.sleep(0.05)
        runner.request_stop()
        await task

    started = time.perf_counter()
    asyncio.run(until_history_done())
    return time.perf_counter() - started, runner.stats.history_readings, runner.stats.messages


def live(fleet: dict, scenario: dict, seconds: float) -> tuple[float, int, float, float]:
    """Readings/s over a window that starts once every device is connected and ticking;
    also the seconds the fleet took to connect (every device, TLS handshakes included) and
    the CPU seconds this process spent in the window (what the load of others cannot inflate)."""
    options = RunOptions(seed=1, interval_s=1, connect_spread_s=1.0, verbose=False)
    runner = FleetRunner(parse_fleet(fleet), scenario, options)

    async def measure() -> tuple[float, int, float, float]:
        task = asyncio.create_task(runner.run())
        started = time.perf_counter()
        await asyncio.sleep(1.0)
        while runner.stats.connected < len(runner.sims) and time.perf_counter() - started < 120:
            await asyncio.sleep(0.1)
        connected_s = time.perf_counter() - started
        await asyncio.sleep(2.0)  # every device ticking
        t0, r0, c0 = time.perf_counter(), runner.stats.readings, time.process_time()
        await asyncio.sleep(seconds)
        t1, r1, c1 = time.perf_counter(), runner.stats.readings, time.process_time()
        runner.request_stop()
        await task
        return t1 - t0, r1 - r0, connected_s, c1 - c0

    return asyncio.run(measure())


def generate_only(scenario: dict, devices: int, hours: float) -> tuple[float, int]:
    started = time.perf_counter()
    readings, _ = fleetsim.generate(scenario, devices, 1, START_MS, hours, 60)
    count = sum(1 for _ in readings)
    return time.perf_counter() - started, count


def paho_baseline(port: int, user: str, password: str, messages: int, ca_file: str | None = None) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    rows = [(START_MS + i * 60_000, {"flow_lps": 12.5, "pressure_bar": 3.9, "chlorine_mgl": 0.6}) for i in range(60)]
    payload = contract.encode_telemetry(0, rows, "bench", True)
    done = threading.Event()
    acked = [0]

    def on_publish(client, userdata, mid, reason_code, properties) -> None:
        acked[0] += 1
        if acked[0] == messages:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    if ca_file:
        client.tls_set(ca_certs=ca_file)
        client.connect("localhost", port)
    else:
        client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    topic = contract.telemetry_topic(user)
    for _ in range(messages):
        client.publish(topic, payload, qos=1)
    done.wait(300)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def measure(fleet: dict, scenario: dict, args: argparse.Namespace, login: tuple[str, str], port: int,
            ca_file: str | None) -> dict[str, float]:
    """One round over one transport: replay, the paho baseline with the same message count, live."""
    elapsed, readings, messages = replay(fleet, scenario, args.hours)
    paho_s = paho_baseline(port, login[0], login[1], messages, ca_file)
    live_s, live_readings, connected_s, cpu_s = live(fleet, scenario, args.live_seconds)
    return {"replay_rps": readings / elapsed, "replay_mps": messages / elapsed, "paho_mps": messages / paho_s,
            "live_rps": live_readings / live_s, "connect_s": connected_s,
            "live_cpu_us": cpu_s / max(live_readings, 1) * 1e6}


def print_transport(name: str, rounds: list[dict[str, float]], generate_rps: float, devices: int) -> dict:
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    rows = [
        ("fleetsim replay, readings/s", med["replay_rps"], "generate only (no MQTT)", generate_rps),
        ("fleetsim replay, messages/s", med["replay_mps"], f"paho, one client ({name}), messages/s", med["paho_mps"]),
        ("fleetsim live, readings/s", med["live_rps"], "target: 1/s per device", float(devices)),
    ]
    print(f"\n{name}: the fleet connected in {med['connect_s']:.1f} s; live, {med['live_cpu_us']:.0f} µs of this "
          "process's CPU a reading (medians)")
    print(f"{'measure':34} {'value':>12}   {'baseline':36} {'value':>12} {'ratio':>7}")
    for label, value, base_name, base in rows:
        print(f"{label:34} {value:12.0f}   {base_name:36} {base:12.0f} {value / base:7.2f}")
    return med


def print_tls_against_plain(plain: dict, tls: dict) -> None:
    print("\nTLS against plain, same broker, same run (medians; ratio = TLS / plain)")
    print(f"{'measure':34} {'plain':>12} {'TLS':>12} {'ratio':>7}")
    for key, label in (("replay_rps", "fleetsim replay, readings/s"), ("live_rps", "fleetsim live, readings/s"),
                       ("paho_mps", "paho one client, messages/s"), ("connect_s", "fleet connect, s"),
                       ("live_cpu_us", "live, CPU µs a reading (one a message)")):
        print(f"{label:34} {plain[key]:12.1f} {tls[key]:12.1f} {tls[key] / plain[key]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=2.0, help="history replayed per device")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live-seconds", type=float, default=15.0)
    parser.add_argument("--tls", action="store_true", help="also over TLS (local CA), against plain in the same run")
    args = parser.parse_args()

    scenario = fleetsim.load_scenario()
    specs = fleetsim.plan_fleet(scenario, args.devices, 1)
    passwords = {s["id"]: broker.new_secret() for s in specs}
    users = {u: broker.hash_password(p) for u, p in passwords.items()}
    first = specs[0]["id"]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        ca = ensure_local_ca(Path(tmp) / "tls") if args.tls else None
        mosquitto = Mosquitto(Path(tmp) / "mosquitto", users=users,
                              tls=(ca.server_crt, ca.server_key) if ca else None).start()
        try:
            plain_fleet = {"devices": [s | {"password": passwords[s["id"]]} for s in specs],
                           "broker": {"host": "127.0.0.1", "port": mosquitto.port}}
            transports = {"plain": (plain_fleet, mosquitto.port, None)}
            if ca:
                tls_fleet = plain_fleet | {"broker": plain_fleet["broker"] | {
                    "tls_port": mosquitto.tls_port, "ca_file": str(ca.ca_crt)}}
                transports["TLS"] = (tls_fleet, mosquitto.tls_port, str(ca.ca_crt))
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in transports}
            generated = []
            for i in range(args.repeat):
                # Alternate the order, so neither transport always runs on a warmer (or busier) machine.
                for name in (list(transports) if i % 2 == 0 else list(reversed(transports))):
                    fleet, port, ca_file = transports[name]
                    rounds[name].append(measure(fleet, scenario, args, (first, passwords[first]), port, ca_file))
                g_elapsed, g_count = generate_only(scenario, args.devices, args.hours)
                generated.append(g_count / g_elapsed)
        finally:
            mosquitto.stop()
    load_after = os.getloadavg()

    generate_rps = statistics.median(generated)
    print(f"{args.devices} devices, {args.hours} h of history each (one reading a minute), median of "
          f"{args.repeat} rounds{' (plain and TLS alternating)' if args.tls else ''}; live for "
          f"{args.live_seconds} s at 1 s; load average (1/5/15 min) {_load(load_before)} before, "
          f"{_load(load_after)} after, on {os.cpu_count()} cores")
    medians = {name: print_transport(name, rounds[name], generate_rps, args.devices) for name in rounds}
    if "TLS" in medians:
        print_tls_against_plain(medians["plain"], medians["TLS"])
    print(json.dumps({"devices": args.devices, "repeat": args.repeat, "generate_readings_per_s": round(generate_rps),
                      "load_before": load_before, "load_after": load_after,
                      **{name: {k: round(v, 1) for k, v in med.items()} for name, med in medians.items()}}))


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    main()
