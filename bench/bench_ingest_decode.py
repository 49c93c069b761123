"""The ingest worker's decoding alone, in one process, no servers: CPU microseconds a point for
`Decoder.decode` (parse, validate every value, sequence tracking, registry lookup, line protocol)
and for the contract's validation alone, at 1, 10 and 100 readings a message (4 values a reading),
on the messages bench_ingest.py publishes. Best of --repeat runs of process CPU time, so other
load on the machine matters less than for wall-clock figures.

    python bench/bench_ingest_decode.py [--repeat 15]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest  # noqa: E402
import orjson  # noqa: E402

from edge import contract  # noqa: E402
from ingest.decode import Decoded, Decoder  # noqa: E402
from ingest.metrics import Metrics  # noqa: E402
from telemetry_shared.registry import DeviceNew, Registry  # noqa: E402

BATCH = 1000  # messages a batch, as the worker decodes them


def best_us_per_point(run, points: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / points * 1e6


def decode_all(registry: Registry, topics: list[tuple[str, bytes]], now_ms: int, readings: int) -> None:
    decoder = Decoder(registry, Metrics("bench"))  # fresh: no message is a redelivery
    for start in range(0, len(topics), BATCH):
        out = Decoded()
        decoder.begin_batch()
        for topic, payload in topics[start:start + BATCH]:
            decoder.decode(topic, payload, now_ms, out)
        assert len(out.lines) == len(topics[start:start + BATCH]) * readings


def validate_all(bodies: list[dict], now_ms: int) -> None:
    for body in bodies:
        contract.validate_telemetry(body, "water", now_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    registry = Registry(Path(tempfile.mkdtemp(prefix="bench-decode-")) / "registry.sqlite3")
    for i, device in enumerate(bench_ingest.device_ids()):
        district = bench_ingest.DISTRICTS[i % len(bench_ingest.DISTRICTS)]
        registry.add(DeviceNew(id=device, kind="water", district=district))
    now_ms = int(time.time() * 1000)
    print(f"{'readings/msg':>12}{'messages':>10}{'decode µs/pt':>14}{'validate µs/pt':>16}")
    for readings in (1, 10, 100):
        msgs = bench_ingest.messages(max(1000, 10_000 // readings), readings, now_ms - 10 * 86_400_000)
        topics = [(contract.telemetry_topic(device), payload) for device, payload in msgs]
        bodies = [orjson.loads(payload) for _, payload in msgs]
        points = len(msgs) * readings

        decode_us = best_us_per_point(lambda: decode_all(registry, topics, now_ms, readings),  # noqa: B023
                                      points, args.repeat)
        validate_us = best_us_per_point(lambda: validate_all(bodies, now_ms), points, args.repeat)  # noqa: B023
        print(f"{readings:>12}{len(msgs):>10,}{decode_us:>14.2f}{validate_us:>16.2f}")


if __name__ == "__main__":
    main()
