"""Open-data downloads: a year of district-hour data, every district of the city profile and all 19 metrics,
downloaded as CSV month by month (19 datasets x 12 months) from the API (`python -m api`, one process),
with the API process's peak resident memory (each phase's own peak) and the throughput in MB/s; cold (the
disk cache emptied first: every file from InfluxDB), both before (each request sums the district cells
from the hourly rollup points) and after (each request reads the district x hour cells stored by the
rollup job, ingest/cells.py), first after the rollup job's pre-render (the cache emptied, then what
`city rollup run` does after its run, api/opendata/prerender.py, timed on its own: every file is then
asked for the first time), and warm (every file from the cache again). Baseline in the same run: the same
InfluxQL queries (the rollup points, page by page), grouped into district-hour cells and written out as CSV
by pandas (`groupby`, `DataFrame.to_csv`) in a fresh process, and InfluxDB alone (the same queries, answers
parsed, nothing written; and the stored cells' queries alone). Medians of ROUNDS rounds (warm:
WARM_REPEATS walks a round); the issue's goals: peak RSS < 150 MB and >= 50 MB/s.

Starts its own influxd and Mosquitto. The year is written straight into the hourly rollups (what
`city rollup` makes of raw readings: `<kind>_1h` in the `rollups` policy), DEVICES devices per district and
kind, then their district cells as `city rollup run` writes them (timed), from a copy of the city profile
(CITY_PROFILE) whose open_data section publishes every metric aggregated with k = 3.

    python bench/bench_opendata.py [--devices 3] [--rounds 3]
"""

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402
from bench_api import SERVICE_PASSWORD, wait_ready  # noqa: E402

from edge import contract  # noqa: E402
from ingest import cells  # noqa: E402
from ingest.rollup import ROLLUP_RP, ensure_retention  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.city import load_profile  # noqa: E402
from telemetry_shared.influx import InfluxQL, V1Writer  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto, free_port  # noqa: E402
from telemetry_shared.settings import Settings, get_settings  # noqa: E402

HOUR_MS = 3_600_000
GOAL_MB_S, GOAL_RSS_MB = 50.0, 150.0
WARM_REPEATS = 3  # warm walks a round (a second each): more samples for the median on a noisy machine


def months_of_last_year(zone) -> list[str]:
    """The 12 complete local months before this one, oldest first."""
    now = datetime.now(zone)
    year, month, out = now.year, now.month, []
    for _ in range(12):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        out.append(f"{year:04d}-{month:02d}")
    return out[::-1]


def write_profile(tmp: Path) -> Path:
    """The configured profile with every metric published aggregated (k = 3)."""
    source = get_settings().profile
    data = yaml.safe_load(load_profile(source).path.read_text(encoding="utf-8"))
    data["open_data"] = {"k": 3, "metrics": {f"{k}.{m}": {"mode": "aggregated"}
                                             for k, ms in contract.KINDS.items() for m in ms}}
    path = tmp / "city.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def seed(influx: InfluxQL, slugs: tuple[str, ...], start_ms: int, end_ms: int, devices: int) -> int:
    """Hourly rollups of every metric for `devices` devices per district and kind over [start_ms, end_ms)."""
    ensure_retention(influx, "3650d")
    writer = V1Writer(str(influx.http.base_url), influx.db, rp=ROLLUP_RP, timeout_s=120)
    rng = random.Random(7)
    points, batch = 0, []
    for kind, metrics in contract.KINDS.items():
        for d, district in enumerate(slugs):
            for n in range(devices):
                device = f"{kind[:3]}-{d}{n:03d}"
                base = {m: rng.uniform(lo if lo > -1e6 else 0, min(hi, 1000)) for m, (_u, lo, hi) in metrics.items()}
                for t in range(start_ms, end_ms, HOUR_MS):
                    fields = []
                    for m, v in base.items():
                        value = v * (0.9 + 0.2 * ((t // HOUR_MS) % 24) / 24)
                        fields.append(f"{m}_min={value * 0.95:.4f},{m}_mean={value:.4f},{m}_max={value * 1.05:.4f},"
                                      f"{m}_count=60i")
                    batch.append(f"{kind}_1h,device={device},district={district} {','.join(fields)} {t}")
                    if len(batch) >= 5000:
                        writer.write(batch)
                        points += len(batch)
                        batch = []
    writer.write(batch)
    writer.close()
    return points + len(batch)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    """Start the process's VmHWM again from its current RSS (Linux: clear_refs 5), to see each phase's peak."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def download_all(port: int, paths: list[str]) -> tuple[int, float]:
    """(bytes, seconds) of every path, one after the other on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    total = 0
    began = time.perf_counter()
    for path in paths:
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"{path}: {answer.status} {body[:200]!r}")
        total += len(body)
    took = time.perf_counter() - began
    conn.close()
    return total, took


def baseline_worker(args: argparse.Namespace) -> None:
    """A fresh process: the same queries, written out by pandas (or only parsed: --influx-only)."""
    import io

    import pandas as pd

    from api.opendata import datasets

    profile = load_profile(args.profile)
    influx = InfluxQL(args.influx_url, "city", timeout_s=120)
    total = 0
    began = time.perf_counter()
    for dataset in datasets.open_datasets(profile):
        if dataset.source != "readings":
            continue
        for month in args.months.split(","):
            start, end = datasets.period_bounds(profile, month)
            points = []
            offset = 0
            query = datasets.stored_cells_query if args.cells else datasets.rollup_points_query
            while True:  # the same pages of rollup points (or stored cells) the API reads
                found = influx.series(query(dataset, start, end, datasets.RAW_PAGE, offset))
                page = found[0]["values"] if found else []
                points += page
                if len(page) < datasets.RAW_PAGE:
                    break
                offset += datasets.RAW_PAGE
            if args.influx_only:
                total += len(points)
                continue
            frame = pd.DataFrame(points, columns=["time", "mean", "min", "max", "count", "district"]).dropna(
                subset=["mean"])
            frame = frame.groupby(["time", "district"], sort=True).agg(
                value=("mean", "mean"), min=("min", "min"), max=("max", "max"), sum=("mean", "sum"),
                devices=("mean", "count"), readings=("count", "sum")).reset_index()
            frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            out = io.BytesIO()
            frame[list(datasets.AGGREGATED_COLUMNS)].to_csv(out, index=False)
            total += out.tell()
    took = time.perf_counter() - began
    print(json.dumps({"bytes": total, "seconds": took, "peak_rss_mb": peak_rss_mb(os.getpid())}))


def run_baseline(profile: Path, influx_url: str, months: list[str], influx_only: bool, stored: bool = False) -> dict:
    command = [sys.executable, __file__, "--baseline-worker", "--profile", str(profile), "--influx-url", influx_url,
               "--months", ",".join(months)] + (["--influx-only"] if influx_only else []) + (
                   ["--cells"] if stored else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=3, help="devices per district and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--influx-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cells", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--influx-url", help=argparse.SUPPRESS)
    parser.add_argument("--months", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-opendata-") as tmp:
        tmp_path = Path(tmp)
        profile_path = write_profile(tmp_path)
        profile = load_profile(profile_path)
        influxd = Influxd(tmp_path / "influxd").start()
        users = {broker.service_user("api", 0): broker.hash_password(SERVICE_PASSWORD)}
        mosquitto = Mosquitto(tmp_path / "mosquitto", users=users).start()
        api_proc = None
        try:
            influx = InfluxQL(influxd.url, "city", timeout_s=120)
            influx.create_database()
            months = months_of_last_year(profile.zone)
            from api.opendata import datasets

            start, _ = datasets.period_bounds(profile, months[0])
            _, end = datasets.period_bounds(profile, months[-1])
            began = time.perf_counter()
            points = seed(influx, profile.slugs, start, end, args.devices)
            print(f"seeded {points:,} hourly rollup points ({len(profile.slugs)} districts x {args.devices} devices "
                  f"x 4 kinds, {months[0]}..{months[-1]}) in {time.perf_counter() - began:.0f} s", flush=True)
            rollups = V1Writer(influxd.url, "city", rp=ROLLUP_RP, timeout_s=120)
            began = time.perf_counter()
            stored = cells.backfill(influx, rollups, end)  # what `city rollup run` does once after an upgrade
            print(f"district x hour cells of the year written (ingest/cells.py backfill): {stored['points']:,} points"
                  f" in {time.perf_counter() - began:.0f} s", flush=True)
            port = free_port()
            cache = tmp_path / "var" / "opendata-cache"
            env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path / "var"),
                       CITY_PROFILE=str(profile_path), CITY_INFLUX_URL=influxd.url,
                       CITY_MQTT_PORT=str(mosquitto.port), CITY_MQTT_PASSWORD=SERVICE_PASSWORD,
                       CITY_API_PORT=str(port), CITY_API_PUBLIC_RATE_PER_MIN="1000000000",
                       CITY_API_OPENDATA_RATE_PER_MIN="1000000000")  # the bench, not the limiter
            api_proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(port)
            ids = [d.id for d in datasets.open_datasets(profile) if d.source == "readings"]
            paths = [f"/opendata/download/{i}/{m}.csv" for i in ids for m in months]
            idle = rss_mb(api_proc.pid)
            download_all(port, paths[:2])  # warm up the code paths (and the coverage cache)
            cold_summed, cold, warm, pandas_runs, influx_runs, cells_runs = [], [], [], [], [], []
            first, renders, hourly = [], [], []
            peaks = {"summed": 0.0, "cold": 0.0, "first": 0.0, "warm": 0.0}
            job = Settings(environment="test", data_dir=tmp_path / "var", profile=str(profile_path),
                           influx_url=influxd.url, influx_db="city")  # the rollup job's, beside the API
            from api.opendata import prerender

            def walk(phase: str) -> tuple[int, float]:
                reset_peak(api_proc.pid)
                done = download_all(port, paths)
                peaks[phase] = max(peaks[phase], peak_rss_mb(api_proc.pid))
                return done

            for _ in range(args.rounds):
                cells.mark(rollups, cells.NEVER)  # before: the cells summed from the rollup points per request
                shutil.rmtree(cache, ignore_errors=True)
                cold_summed.append(walk("summed"))
                cells.mark(rollups, 0)  # after: the stored cells
                shutil.rmtree(cache, ignore_errors=True)
                cold.append(walk("cold"))
                shutil.rmtree(cache, ignore_errors=True)
                job_rss = rss_mb(os.getpid())
                reset_peak(os.getpid())
                began = time.perf_counter()
                report = prerender.after_rollup(job, influx, start, end)  # as after a run that wrote every cell
                renders.append((report, time.perf_counter() - began, peak_rss_mb(os.getpid()) - job_rss))
                first.append(walk("first"))
                began = time.perf_counter()  # an hourly run: its lookback's periods re-rendered, the rest kept
                hourly.append((prerender.after_rollup(job, influx, end - 48 * HOUR_MS, end),
                               time.perf_counter() - began))
                warm += [walk("warm") for _ in range(WARM_REPEATS)]
                pandas_runs.append(run_baseline(profile_path, influxd.url, months, False))
                influx_runs.append(run_baseline(profile_path, influxd.url, months, True))
                cells_runs.append(run_baseline(profile_path, influxd.url, months, True, stored=True))
            rollups.close()
            peak = max(peaks.values())
            print(f"{len(ids)} datasets x {len(months)} months = {len(paths)} CSV files, {args.rounds} rounds, "
                  f"medians; API idle RSS {idle:.0f} MB")
            print(f"{'':34} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'vs pandas':>10}")
            pandas_mb_s = statistics.median(r["bytes"] / 1e6 / r["seconds"] for r in pandas_runs)
            rows = [("API, cold, summed per request", cold_summed, peaks["summed"]),
                    ("API, cold (stored cells)", cold, peaks["cold"]),
                    ("API, first after the pre-render", first, peaks["first"]),
                    ("API, warm (from the disk cache)", warm, peaks["warm"]),
                    ("baseline: pandas to_csv", [(r["bytes"], r["seconds"]) for r in pandas_runs],
                     max(r["peak_rss_mb"] for r in pandas_runs))]
            for name, runs, rss in rows:
                mb = statistics.median(b / 1e6 for b, _ in runs)
                seconds = statistics.median(s for _, s in runs)
                mb_s = statistics.median(b / 1e6 / s for b, s in runs)
                print(f"{name:34} {mb:7.1f} {seconds:8.2f} {mb_s:7.1f} {rss:12.0f} {mb_s / pandas_mb_s:9.2f}x")
            influx_s = statistics.median(r["seconds"] for r in influx_runs)
            print(f"{'InfluxDB alone (queries, parsed)':34} {'':7} {influx_s:8.2f} {'':7} "
                  f"{max(r['peak_rss_mb'] for r in influx_runs):12.0f}")
            cells_s = statistics.median(r["seconds"] for r in cells_runs)
            print(f"{'InfluxDB alone, stored cells':34} {'':7} {cells_s:8.2f} {'':7} "
                  f"{max(r['peak_rss_mb'] for r in cells_runs):12.0f}")
            render_s = statistics.median(s for _, s, _ in renders)
            last = renders[-1][0]
            print(f"the rollup job's pre-render (api/opendata/prerender.py: CSV, months and days): "
                  f"{render_s:.1f} s median, {last['rendered']} files, {last['bytes'] / 1e6:.0f} MB; "
                  f"the bench process grew {max(g for _, _, g in renders):.0f} MB at most")
            print(f"an hourly run's pre-render (48 h lookback, the rest kept): "
                  f"{statistics.median(s for _, s in hourly):.1f} s median, "
                  f"{hourly[-1][0]['rendered']} files rendered, "
                  f"{hourly[-1][0]['kept']} kept")
            cold_mb_s = statistics.median(b / 1e6 / s for b, s in cold)
            first_mb_s = statistics.median(b / 1e6 / s for b, s in first)
            summed_mb_s = statistics.median(b / 1e6 / s for b, s in cold_summed)
            print(f"cold, stored cells vs summed per request: {cold_mb_s / summed_mb_s:.2f}x")
            warm_mb_s = statistics.median(b / 1e6 / s for b, s in warm)
            print(f"goals: peak RSS {peak:.0f} MB < {GOAL_RSS_MB:.0f}: {'met' if peak < GOAL_RSS_MB else 'NOT met'}; "
                  f">= {GOAL_MB_S:.0f} MB/s: cold {cold_mb_s:.1f} ({'met' if cold_mb_s >= GOAL_MB_S else 'NOT met'}), "
                  f"first after the pre-render {first_mb_s:.1f} ({'met' if first_mb_s >= GOAL_MB_S else 'NOT met'}), "
                  f"warm {warm_mb_s:.1f} ({'met' if warm_mb_s >= GOAL_MB_S else 'NOT met'})")
            print(f"(load average {os.getloadavg()[0]:.1f})")
        finally:
            if api_proc:
                api_proc.terminate()
                api_proc.wait(15)
            mosquitto.stop()
            influxd.stop()


if __name__ == "__main__":
    main()
