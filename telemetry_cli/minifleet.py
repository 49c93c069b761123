"""A small fleet for `city up` when the full simulator (fleetsim) is not built:
the edge agent itself under CPython, one thread per device.

Usage: python -m telemetry_cli.minifleet FLEET.json
"""

import json
import signal
import sys
import threading
from pathlib import Path

from edge.agent import Agent
from edge.hw.synthetic import SyntheticSource


def run_device(spec: dict, broker: dict) -> None:
    config = {"device_id": spec["id"], "server": broker["host"], "port": broker["port"],
              "password": spec["password"], "interval_ms": 5000, "batch_size": 2}
    Agent(config, SyntheticSource(spec["kind"])).run()


def main(path: str) -> None:
    fleet = json.loads(Path(path).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for spec in fleet["devices"]:
        threading.Thread(target=run_device, args=(spec, fleet["broker"]), daemon=True).start()
    stop.wait()  # the daemon threads end with the process; the broker marks the devices offline


if __name__ == "__main__":
    main(sys.argv[1])
