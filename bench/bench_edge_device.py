"""The firmware on a small board: the smallest MicroPython heap at which the
agent still works, plain and over TLS, and what a TLS connect costs.

Under the real `micropython` unix binary (`-X heapsize=N`) against a real
Mosquitto with a TLS listener (EC P-256 certificates from a local CA):
  heap      the agent, compiled with mpy-cross as `city device flash` writes it,
            backfills a 600-sample spool (a 100-minute outage at 10 s) then
            sends live readings; "works" = it drains the spool (every message
            acknowledged by the broker) and exits cleanly. Searched 8 KB apart.
            Baseline in the same run: the same firmware from source (.py).
  connect   MQTTClient.connect() (TCP + TLS handshake + MQTT CONNECT/CONNACK)
            over TLS against the same connect in plain MQTT, median of N.

Usage: python3 bench/bench_edge_device.py [--connects 20]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from telemetry_cli.flash import RING_SAMPLES, compile_firmware  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.local_ca import ensure_local_ca  # noqa: E402
from telemetry_shared.servers import Mosquitto, find_binary  # noqa: E402

DEVICE = "wtr-bench-0001"
HEAPS_KB = list(range(40, 161, 8))
SPOOLED = 600

CONNECTS = """
import sys, time, gc
from edge.mqtt import MQTTClient
from edge.tls import client_context
port, password, n, tls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "tls"
context = client_context("ca.der") if tls else None
times = []
gc.collect()
before = gc.mem_free()
for _ in range(n):
    c = MQTTClient("DEVICE", "127.0.0.1", port, "DEVICE", password, ssl=context, server_hostname="localhost")
    t = time.ticks_ms()
    c.connect()
    times.append(time.ticks_diff(time.ticks_ms(), t))
    gc.collect()
    held = before - gc.mem_free()
    c.disconnect()
print(times)
print(held)
""".replace("DEVICE", DEVICE)


def board(folder: Path, compiled: bool, ca_der: Path) -> Path:
    if compiled:
        compile_firmware(folder)
    else:
        shutil.copytree(ROOT / "edge", folder / "edge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ca_der, folder / "ca.der")
    return folder


def agent_works(binary: str, flash: Path, heap_kb: int, config: dict) -> bool:
    now = int(time.time() * 1000)
    with open(flash / "spool.jsonl", "w") as f:
        for i in range(SPOOLED):
            f.write(json.dumps([now - (SPOOLED - i) * 10_000, {"flow_lps": 10.0 + i % 7, "pressure_bar": 3.1,
                                                               "chlorine_mgl": 0.6}, 0, True]) + "\n")
    (flash / "config.json").write_text(json.dumps(config))
    done = subprocess.run([binary, "-X", f"heapsize={heap_kb}k", "-m", "edge.main", "config.json", "30"], cwd=flash,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MICROPYPATH=f"{flash}:.frozen"))
    return done.returncode == 0 and "Traceback" not in done.stdout + done.stderr and \
        (flash / "spool.jsonl").read_text() == ""


def smallest_heap(binary: str, flash: Path, config: dict) -> int | None:
    for heap_kb in HEAPS_KB:
        if agent_works(binary, flash, heap_kb, config):
            return heap_kb
    return None


def connect_times(binary: str, flash: Path, port: int, password: str, n: int, tls: bool) -> tuple[list[int], int]:
    (flash / "connects.py").write_text(CONNECTS)
    done = subprocess.run([binary, "connects.py", str(port), password, str(n), "tls" if tls else "plain"], cwd=flash,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MICROPYPATH=f"{flash}:.frozen"))
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-2]), int(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=20)
    args = parser.parse_args()
    binary = find_binary("micropython")
    secret = broker.new_secret()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ca = ensure_local_ca(tmp_path / "tls")
        mosquitto = Mosquitto(tmp_path / "mosquitto", users={DEVICE: broker.hash_password(secret)},
                              tls=(ca.server_crt, ca.server_key)).start()
        try:
            base = {"device_id": DEVICE, "kind": "water", "server": "127.0.0.1", "password": secret,
                    "interval_ms": 100, "batch_size": 1, "buffer_capacity": RING_SAMPLES,
                    "spool_path": "spool.jsonl", "spool_capacity": 8640}
            plain = base | {"port": mosquitto.port, "tls": False}
            tls = base | {"port": mosquitto.tls_port, "ca_path": "ca.der", "server_hostname": "localhost"}
            compiled = board(tmp_path / "mpy", True, ca.ca_der)
            source = board(tmp_path / "py", False, ca.ca_der)
            heaps = {
                "compiled, plain MQTT": smallest_heap(binary, compiled, plain),
                "compiled, TLS": smallest_heap(binary, compiled, tls),
                "from source, plain MQTT (baseline)": smallest_heap(binary, source, plain),
                "from source, TLS (baseline)": smallest_heap(binary, source, tls),
            }
            tls_ms, tls_heap = connect_times(binary, compiled, mosquitto.tls_port, secret, args.connects, True)
            plain_ms, plain_heap = connect_times(binary, compiled, mosquitto.port, secret, args.connects, False)
        finally:
            mosquitto.stop()
    print(f"smallest heap at which the agent backfills {SPOOLED} spooled readings and runs live "
          f"(searched {HEAPS_KB[0]}..{HEAPS_KB[-1]} KB, {HEAPS_KB[1] - HEAPS_KB[0]} KB apart):")
    for name, heap_kb in heaps.items():
        print(f"  {name:38} {heap_kb if heap_kb else 'none'} KB")
    tls_median, plain_median = statistics.median(tls_ms), statistics.median(plain_ms)
    print(f"connect (TCP + handshake + CONNACK), median of {args.connects}: TLS {tls_median:.0f} ms, "
          f"plain {plain_median:.0f} ms (baseline), ratio {tls_median / max(plain_median, 1):.1f}; "
          f"GC heap held by a TLS connection {tls_heap} B, plain {plain_heap} B")
    print(json.dumps({"heap_kb": heaps, "tls_connect_ms": tls_median, "plain_connect_ms": plain_median,
                      "tls_connection_heap_bytes": tls_heap, "plain_connection_heap_bytes": plain_heap}))


if __name__ == "__main__":
    main()
