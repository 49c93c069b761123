"""How long each dashboard takes InfluxDB to answer, on a city-sized day of data.

Starts its own influxd (Debian's) in a temp folder, writes one day of 1-minute
readings from DEVICES devices per kind (and rolls them up with ingest/rollup.py), then runs every panel query of every
dashboard as Grafana would for the last 24 hours (each panel's maxDataPoints sets
$__interval), ROUNDS times. Baselines, in the same run: the same queries at a
1-minute interval (what Grafana asks a wide panel for without maxDataPoints),
without the $district/$device filters (the cost of the template variables), and
without the queries that tell backfilled history apart (their cost). Every point
carries `hist` as ingest writes it; each device's 02:00-03:00 was backfilled.

    python bench/bench_dashboards.py [--devices 50] [--rounds 5]
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge import contract  # noqa: E402
from grafana.boards import all_dashboards  # noqa: E402
from grafana.queries import BACKFILLED, fill_variables  # noqa: E402
from ingest.rollup import ROLLUP_RP, run_rollup  # noqa: E402
from telemetry_shared.influx import InfluxQL, V1Writer  # noqa: E402
from telemetry_shared.servers import Influxd  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

DISTRICTS = get_settings().city.slugs  # the configured city profile (CITY_PROFILE)
MINUTE_MS = 60_000


def write_day(url: str, devices_per_kind: int, now_ms: int) -> int:
    writer = V1Writer(url, "city")
    start = now_ms - 1440 * MINUTE_MS
    points = 0
    for kind, metrics in contract.KINDS.items():
        for n in range(devices_per_kind):
            tags = f"device={kind[:3]}-{n:04d},district={DISTRICTS[n % len(DISTRICTS)]}"
            lines = []
            for minute in range(1440):
                lo, hi = metrics[next(iter(metrics))][1:]
                fields = ",".join(f"{m}={(b[1] + b[2]) / 2 + (minute % 60) / 60:.3f}" for m, b in
                                  ((m, metrics[m]) for m in metrics))
                hist = "true" if 120 <= minute < 180 else "false"
                lines.append(f"{kind},{tags} {fields},seq={minute}i,hist={hist} {start + minute * MINUTE_MS}")
            writer.write(lines)
            points += len(lines)
    writer.close()
    return points


NICE_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440)


def grafana_interval(panel: dict, range_ms: int = 86_400_000) -> str:
    """$__interval as Grafana sets it: the range over maxDataPoints, rounded up to a nice step,
    never under the panel's min interval (all ours are 1m)."""
    raw_minutes = range_ms / panel["maxDataPoints"] / MINUTE_MS
    return f"{next((m for m in NICE_MINUTES if m >= raw_minutes), NICE_MINUTES[-1])}m"


def unfiltered(query: str) -> str:
    return re.sub(r' AND "(district|device)" =~ /\^\$(district|device)\$/', "", query)


def timed(db: InfluxQL, query: str) -> float:
    started = time.perf_counter()
    db.raw(query)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=50, help="devices per kind")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    values = {"timeFilter": f"time >= {now_ms - 86_400_000}ms and time <= {now_ms}ms", "__interval": "1m",
              "district": ".*", "device": ".*"}
    with tempfile.TemporaryDirectory() as tmp:
        server = Influxd(Path(tmp)).start()
        try:
            db = InfluxQL(server.url, "city", timeout_s=120)
            db.create_database()
            started = time.perf_counter()
            points = write_day(server.url, args.devices, now_ms)
            print(f"wrote {points:,} samples ({args.devices} devices per kind, 1 day at 1 min) "
                  f"in {time.perf_counter() - started:.1f}s")
            db.raw(f'CREATE RETENTION POLICY "{ROLLUP_RP}" ON "city" DURATION INF REPLICATION 1', method="POST")
            rollups = V1Writer(server.url, "city", rp=ROLLUP_RP, timeout_s=120)
            for period in ("1h", "1d"):  # the long-term panels read what the rollup job writes
                run_rollup(db, rollups, period, now_ms - 2 * 86_400_000, now_ms, get_settings().utc_offset_hours,
                           get_settings().local_zone)
            rollups.close()
            print(f"{'dashboard':<16} {'panels':>6} {'ours s':>7} {'at 1m s':>8} {'ratio':>6} {'no filter s':>12} "
                  f"{'ratio':>6} {'no backfill s':>14} {'ratio':>6}")
            for board in all_dashboards():
                board_json = board.to_json()
                panels = [(grafana_interval(p), t["query"]) for p in board_json["panels"] for t in p["targets"]]
                ours, minute, plain, live = [], [], [], []
                for _ in range(args.rounds):
                    live.append(sum(timed(db, fill_variables(q, values | {"__interval": i}))
                                    for i, q in panels if BACKFILLED not in q))
                    ours.append(sum(timed(db, fill_variables(q, values | {"__interval": i})) for i, q in panels))
                    minute.append(sum(timed(db, fill_variables(q, values)) for _, q in panels))
                    plain.append(sum(timed(db, fill_variables(unfiltered(q), values | {"__interval": i}))
                                     for i, q in panels))
                med, base, nofilter, nobackfill = (statistics.median(x) for x in (ours, minute, plain, live))
                print(f"{board.uid:<16} {len(board_json['panels']):>6} {med:>7.3f} {base:>8.3f} {med / base:>6.2f} "
                      f"{nofilter:>12.3f} {med / nofilter:>6.2f} {nobackfill:>14.3f} {med / nobackfill:>6.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
