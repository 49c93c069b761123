"""How long the open-data page's heaviest figure takes: minutes without power per district and day
(/public/summary/power), counted from every voltage reading of the range, against reading the same points
once with a plain count in the same run (the floor any answer from the readings pays).

    python bench/bench_open_summary.py [--meters 50] [--days 14] [--repeats 5]

Starts its own influxd (Debian's) in a temporary folder, writes one reading a minute from `--meters` power
meters spread over the city profile's districts for `--days` days (a tenth of them without power for an hour
a day), then times `power_summary` for 1, 7 and `--days` days: medians of `--repeats` runs, seconds, cold
(every day counted) and warm (the days that are over kept, as the route keeps them an hour: only today is
read), and the cold time's ratio to the plain count over the same range. The route caches each answer five
minutes (SUMMARY_CACHE_S), so this is what one visitor in five minutes waits for.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.opendata import summary  # noqa: E402
from api.public_cache import PublicCache  # noqa: E402
from telemetry_shared.influx import InfluxQL, V1Writer  # noqa: E402
from telemetry_shared.servers import Influxd  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

MINUTE = 60_000
DAY = 86_400_000


def seed(influx: InfluxQL, profile, meters: int, days: int, end: int) -> int:
    writer = V1Writer(str(influx.http.base_url), influx.db)
    slugs = list(profile.slugs)
    points = 0
    try:
        for day in range(days):
            lines = []
            start = end - (days - day) * DAY
            for m in range(meters):
                district = slugs[m % len(slugs)]
                out = range(start + (m % 24) * 3_600_000, start + (m % 24 + 1) * 3_600_000) if m % 10 == 0 else ()
                for t in range(start, start + DAY, MINUTE):
                    volts = 0.0 if out and out.start <= t < out.stop else 229.0
                    lines.append(f"power,device=pwr-{m:04d},district={district} voltage_v={volts} {t}")
            for lo in range(0, len(lines), 5000):
                writer.write(lines[lo:lo + 5000])
            points += len(lines)
    finally:
        writer.close()
    return points


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    profile = get_settings().city  # the configured city profile (CITY_PROFILE)
    with tempfile.TemporaryDirectory() as tmp:
        influxd = Influxd(Path(tmp) / "influxd").start()
        try:
            influx = InfluxQL(influxd.url, "bench")
            influx.create_database()
            now = int(time.time() * 1000)
            started = time.perf_counter()
            points = seed(influx, profile, args.meters, args.days, now // 3_600_000 * 3_600_000)
            print(f"{points:,} voltage readings ({args.meters} meters, {args.days} days) written in "
                  f"{time.perf_counter() - started:.0f} s")
            services = SimpleNamespace(settings=SimpleNamespace(city=profile), influx=influx)
            print(f"{'days':>4} {'cold s':>8} {'warm s':>8} {'plain count s':>14} {'cold/count':>11}")
            for days in sorted({1, 7, args.days}):
                start, end, _ = summary._days(services, days)
                past = PublicCache(summary.PAST_DAY_CACHE_S)
                with mock.patch.object(summary.queries, "now_ms", return_value=now):
                    cold = timed(lambda d=days: summary.power_summary(services, d), args.repeats)
                    summary.power_summary(services, days, past)  # the days that are over, counted once
                    warm = timed(lambda d=days, p=past: summary.power_summary(services, d, p), args.repeats)
                floor = timed(lambda s=start: influx.rows(
                    f'SELECT count("voltage_v") FROM "power" WHERE time >= {s}ms AND time < {now}ms'), args.repeats)
                print(f"{days:>4} {cold:8.3f} {warm:8.3f} {floor:14.3f} {cold / floor:11.1f}")
        finally:
            influxd.stop()


if __name__ == "__main__":
    main()
