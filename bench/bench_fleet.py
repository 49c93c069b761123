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

With --tls every device (and the paho baseline) talks TLS to the broker's TLS
listener, checking its certificate against a local CA made for the run; the
status line also gives how long the whole fleet took to connect.

Usage: python3 bench/bench_fleet.py [--devices 2000] [--repeat 3] [--live-seconds 15] [--tls]
"""

import argparse
import asyncio
import json
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


def live(fleet: dict, scenario: dict, seconds: float) -> tuple[float, int, float]:
    """Readings/s over a window that starts once every device is connected and ticking;
    also the seconds the fleet took to connect (every device, TLS handshakes included)."""
    options = RunOptions(seed=1, interval_s=1, connect_spread_s=1.0, verbose=False)
    runner = FleetRunner(parse_fleet(fleet), scenario, options)

    async def measure() -> tuple[float, int, float]:
        task = asyncio.create_task(runner.run())
        started = time.perf_counter()
        await asyncio.sleep(1.0)
        while runner.stats.connected < len(runner.sims) and time.perf_counter() - started < 120:
            await asyncio.sleep(0.1)
        connected_s = time.perf_counter() - started
        await asyncio.sleep(2.0)  # every device ticking
        t0, r0 = time.perf_counter(), runner.stats.readings
        await asyncio.sleep(seconds)
        t1, r1 = time.perf_counter(), runner.stats.readings
        runner.request_stop()
        await task
        return t1 - t0, r1 - r0, connected_s

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=2.0, help="history replayed per device")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live-seconds", type=float, default=15.0)
    parser.add_argument("--tls", action="store_true", help="devices and baseline over TLS (local CA)")
    args = parser.parse_args()

    scenario = fleetsim.load_scenario()
    specs = fleetsim.plan_fleet(scenario, args.devices, 1)
    passwords = {s["id"]: broker.new_secret() for s in specs}
    users = {u: broker.hash_password(p) for u, p in passwords.items()}
    with tempfile.TemporaryDirectory() as tmp:
        ca = ensure_local_ca(Path(tmp) / "tls") if args.tls else None
        mosquitto = Mosquitto(Path(tmp) / "mosquitto", users=users,
                              tls=(ca.server_crt, ca.server_key) if ca else None).start()
        try:
            fleet = {"devices": [s | {"password": passwords[s["id"]]} for s in specs],
                     "broker": {"host": "127.0.0.1", "port": mosquitto.port}}
            if ca:
                fleet["broker"] |= {"tls_port": mosquitto.tls_port, "ca_file": str(ca.ca_crt)}
            port, ca_file = (mosquitto.tls_port, str(ca.ca_crt)) if ca else (mosquitto.port, None)
            replays, generated, pahos = [], [], []
            for _ in range(args.repeat):
                elapsed, readings, messages = replay(fleet, scenario, args.hours)
                replays.append((readings / elapsed, messages / elapsed, readings, messages))
                g_elapsed, g_count = generate_only(scenario, args.devices, args.hours)
                generated.append(g_count / g_elapsed)
                first = specs[0]["id"]
                pahos.append(messages / paho_baseline(port, first, passwords[first], messages, ca_file))
            live_s, live_readings, connected_s = live(fleet, scenario, args.live_seconds)
        finally:
            mosquitto.stop()

    replay_rps = statistics.median(r[0] for r in replays)
    replay_mps = statistics.median(r[1] for r in replays)
    generate_rps = statistics.median(generated)
    paho_mps = statistics.median(pahos)
    live_rps = live_readings / live_s
    rows = [
        ("fleetsim replay, readings/s", replay_rps, "generate only (no MQTT)", generate_rps, replay_rps / generate_rps),
        ("fleetsim replay, messages/s", replay_mps, "paho, one client, messages/s", paho_mps, replay_mps / paho_mps),
        ("fleetsim live, readings/s", live_rps, "target: 1/s per device", float(args.devices),
         live_rps / args.devices),
    ]
    print(f"{args.devices} devices{' over TLS' if args.tls else ''}, {args.hours} h of history each (one reading "
          f"a minute), median of {args.repeat}; live for {args.live_seconds} s at 1 s; the fleet connected in "
          f"{connected_s:.1f} s")
    print(f"{'measure':34} {'value':>12}   {'baseline':32} {'value':>12} {'ratio':>7}")
    for name, value, base_name, base, ratio in rows:
        print(f"{name:34} {value:12.0f}   {base_name:32} {base:12.0f} {ratio:7.2f}")
    print(json.dumps({"devices": args.devices, "tls": args.tls, "connect_s": round(connected_s, 1),
                      "replay_readings_per_s": round(replay_rps),
                      "replay_messages_per_s": round(replay_mps), "generate_readings_per_s": round(generate_rps),
                      "paho_messages_per_s": round(paho_mps), "live_readings_per_s": round(live_rps)}))


if __name__ == "__main__":
    main()
