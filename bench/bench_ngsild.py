"""NGSI-LD against CSV and JSON for the same rows, in one run: how much slower and larger the FIWARE
format is, so a month's NGSI-LD download can be judged against the CSV's figures.

    python bench/bench_ngsild.py [--hours 744] [--districts 4] [--repeats 5]

The rows are those of one aggregated dataset (district x hour, the columns datasets.rows yields after the
policy) for `--hours` hours (744: a 31-day month) and `--districts` districts of the configured city profile, made in
memory (no InfluxDB: this measures the writers, api/opendata/downloads.py and ngsild.py). Printed per
format: median seconds of `--repeats` runs, rows/s, MB/s and bytes, and NGSI-LD's ratios to CSV.
"""

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.opendata import datasets, downloads  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402


def rows(profile, hours: int, districts: int) -> list[dict]:
    start = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
    slugs = list(profile.slugs)[:districts]
    return [{"time": datasets.iso_hour(start + h * 3_600_000), "district": slug, "value": 10.5 + h % 7,
             "min": 3.25, "max": 19.75, "sum": 52.5, "devices": 5, "readings": 300}
            for h in range(hours) for slug in slugs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=744)
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    profile = get_settings().city  # the configured city profile (CITY_PROFILE)
    dataset = datasets.get(profile, "water-flow_lps")
    data = rows(profile, args.hours, args.districts)
    results = {}
    for fmt in downloads.FORMATS:
        times, size = [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            size = sum(len(chunk) for chunk in downloads.stream(dataset, "2026-11", fmt, iter(data), profile))
            times.append(time.perf_counter() - started)
        results[fmt] = (statistics.median(times), size)
    print(f"{len(data):,} rows ({args.hours} h x {args.districts} districts), median of {args.repeats} runs")
    print(f"{'format':8} {'seconds':>8} {'rows/s':>10} {'MB/s':>7} {'bytes':>12}")
    for fmt, (seconds, size) in results.items():
        print(f"{fmt:8} {seconds:8.3f} {len(data) / seconds:10,.0f} {size / seconds / 1e6:7.1f} {size:12,}")
    csv_s, csv_b = results["csv"]
    ld_s, ld_b = results["ngsild"]
    print(f"ngsild / csv: {ld_s / csv_s:.1f}x the time, {ld_b / csv_b:.1f}x the bytes")


if __name__ == "__main__":
    main()
