"""Does sending dynamic-security commands in one control message save the broker work?

The plugin's control API takes a list of commands per message. Against a real
Mosquitto with N devices registered, the same setClientPassword changes are
sent K to a message; printed: the median time per message and per command, and
the ratio per command against one command a message (the baseline, same run).
Mosquitto 2.0's plugin saves its whole file after every command, so a ratio near
1.0 means batching saves nothing but round trips.

    python3 bench/dynsec_batch.py [--devices 2000] [--rounds 5] [--batches 1,10,50]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry_shared import broker  # noqa: E402
from telemetry_shared.device_link import DeviceLink  # noqa: E402
from telemetry_shared.servers import Mosquitto  # noqa: E402

SERVICE_PASSWORD = "bench-service-secret-0123"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,10,50", help="commands per message, the first is the baseline")
    args = parser.parse_args()
    sizes = [int(k) for k in args.batches.split(",")]
    device_hash = broker.hash_password("device-secret")
    users = {broker.service_user("api", 1): broker.hash_password(SERVICE_PASSWORD)}
    users |= {f"wtr-{i:05d}": device_hash for i in range(args.devices)}
    load_before = os.getloadavg()
    per_command: dict[int, list[float]] = {k: [] for k in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp) / "mosquitto", users=users).start()
        link = DeviceLink("127.0.0.1", mosquitto.port, "svc-api-1", SERVICE_PASSWORD).start()
        try:
            device = 0
            for _ in range(args.rounds):
                for k in sizes:  # interleaved, so each size sees the same machine
                    commands = [broker.password_command(f"wtr-{(device + i) % args.devices:05d}", f"new-{i}")
                                for i in range(k)]
                    device += k
                    started = time.perf_counter()
                    link.control(commands, timeout_s=120)
                    per_command[k].append((time.perf_counter() - started) / k)
        finally:
            link.stop()
            mosquitto.stop()
    load = "/".join(f"{x:.2f}" for x in load_before)
    after = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.devices} devices registered, median of {args.rounds}; load average {load} before, {after} after")
    base = statistics.median(per_command[sizes[0]])
    print(f"{'commands a message':>18} {'ms a message':>13} {'ms a command':>13} {'ratio to ' + str(sizes[0]):>12}")
    for k in sizes:
        median = statistics.median(per_command[k])
        print(f"{k:18d} {median * k * 1000:13.1f} {median * 1000:13.2f} {median / base:12.2f}")


if __name__ == "__main__":
    main()
