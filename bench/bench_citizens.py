"""Requests per second and p99 latency of the citizens' public routes under load: the free-bed list and
a complaint's status (Open311, by its tracking code), beside /health as the floor, in the same run.

Starts its own influxd and Mosquitto, seeds HOSPITALS hospitals (8 wards each, fresh, a duty roster)
and COMPLAINTS complaints, runs the API as `python -m api` (one uvicorn process; public rate limit
raised out of the way) and loads it from this process (a second process) on loopback: CONCURRENCY
keep-alive connections, back to back, SECONDS per round, ROUNDS rounds per route, medians.
The issue's goal: 500 requests/s with p99 < 200 ms for the bed list and the status page.
The public pages (/complaint, /beds) are served from memory (api/static_page.py); beside them, in the same
run, the same complaint page read from its file on every request (/static/complaint.html, StaticFiles:
a stat and a read in worker threads, as the page route did before) and the 304 a browser holding the
page gets (If-None-Match). Then, in this process, what the routes alone cost per request (straight through
ASGI: no socket, no HTTP parsing, no load client, which on a shared 2-core machine swing the req/s).

    python bench/bench_citizens.py [--hospitals 20] [--complaints 5000] [--seconds 3] [--rounds 3] [--concurrency 8]
"""

import argparse
import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import SERVICE_PASSWORD, route_medians, wait_ready  # noqa: E402

from api.citizens.complaints import ComplaintStore, NewComplaint  # noqa: E402
from api.citizens.hospitals import (  # noqa: E402
    BED_CLASSES,
    BedsUpdate,
    DutyShift,
    HospitalNew,
    HospitalStore,
    Roster,
    WardNew,
)
from api.citizens.protect import ContactVault  # noqa: E402
from api.db import ApiDb  # noqa: E402
from telemetry_shared import broker  # noqa: E402
from telemetry_shared.influx import InfluxQL  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto, free_port  # noqa: E402
from telemetry_shared.settings import get_settings  # noqa: E402

GOAL_RPS, GOAL_P99_MS = 500, 200


def in_process_us(paths: list[str], calls: int, rounds: int) -> dict[str, float]:
    """Microseconds per request of the routes alone: each path called `calls` times straight through ASGI
    in this process (no socket, no HTTP parsing, no load client), median of `rounds`. The same routers and
    /static mount as the API's; /health is the API's, a plain `def` route (a worker-thread hop)."""
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from api.routes import citizen_pages, control_room, health

    app = FastAPI()
    app.include_router(health.router)
    app.include_router(citizen_pages.router)
    app.mount("/static", StaticFiles(directory=control_room.STATIC), name="static")

    async def call(path: str) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        asked: list[bool] = []
        status: list[int] = []

        async def receive() -> dict:
            if asked:  # the body was read: from now on the client stays connected
                await asyncio.sleep(3600)
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    async def measure() -> dict[str, float]:
        out = {}
        for path in paths:
            runs = []
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(calls):
                    assert await call(path) == 200, path
                runs.append((time.perf_counter() - started) / calls * 1e6)
            out[path] = statistics.median(runs)
        return out

    return asyncio.run(measure())


def seed(db: ApiDb, hospitals: int, complaints: int) -> str:
    city = get_settings().city
    store = HospitalStore(db)
    now = int(time.time() * 1000)
    for n in range(hospitals):
        district = city.districts[n % len(city.districts)]
        spot = district.geometry.representative_point()
        hid = f"rs-{n:03d}"
        store.add(HospitalNew(id=hid, name=f"Rumah Sakit {n}", address=f"Jl. Contoh No. {n}", lat=spot.y,
                              lon=spot.x, phone="+62 771 21211", type="government"), district.slug)
        for bed_class in BED_CLASSES:
            ward = f"{hid}-{bed_class.replace('_', '')}"
            store.add_ward(hid, WardNew(id=ward, name=bed_class, bed_class=bed_class, capacity=10))
            store.set_beds(hid, ward, BedsUpdate(beds_free=n % 4), "bench")
        store.set_roster(hid, Roster(shifts=[DutyShift(doctor=f"dr. {n}", speciality="umum", start_ms=now - 3_600_000,
                                                       end_ms=now + 3_600_000)]))
    complaints_store = ComplaintStore(db, ContactVault(""), 10**9, 10**9)
    code = ""
    for n in range(complaints):
        c, _ = complaints_store.create(NewComplaint(service_code="leak", district=city.slugs[n % len(city.slugs)],
                                                    description=f"pipa bocor nomor {n}"), client=f"10.1.{n}")
        code = c.id
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hospitals", type=int, default=20)
    parser.add_argument("--complaints", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-citizens-") as tmp:
        tmp_path = Path(tmp)
        influxd = Influxd(tmp_path / "influxd").start()
        users = {broker.service_user("api", 0): broker.hash_password(SERVICE_PASSWORD)}
        mosquitto = Mosquitto(tmp_path / "mosquitto", users=users).start()
        api_proc = None
        try:
            InfluxQL(influxd.url, "city").create_database()
            db = ApiDb(tmp_path / "var" / "api.sqlite3")
            code = seed(db, args.hospitals, args.complaints)
            db.close()
            port = free_port()
            env = dict(os.environ, CITY_ENVIRONMENT="test", CITY_DATA_DIR=str(tmp_path / "var"),
                       CITY_INFLUX_URL=influxd.url, CITY_MQTT_PORT=str(mosquitto.port),
                       CITY_MQTT_PASSWORD=SERVICE_PASSWORD, CITY_API_PORT=str(port),
                       CITY_API_PUBLIC_RATE_PER_MIN="1000000000")
            api_proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(port)
            spot = get_settings().city.districts[0].geometry.representative_point()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/complaint")
            page = conn.getresponse()
            page.read()
            conn.close()
            cached = {"If-None-Match": page.headers["ETag"]}
            cases = [
                ("GET /health (floor)", "/health", {}, 200),
                ("GET /public/hospitals/beds", "/public/hospitals/beds", {}, 200),
                ("  ?bed_class=icu, nearest first", f"/public/hospitals/beds?bed_class=icu&lat={spot.y:.5f}"
                                                    f"&lon={spot.x:.5f}", {}, 200),
                ("GET /open311/v2/requests/<code>.json", f"/open311/v2/requests/{code}.json", {}, 200),
                ("GET /static/complaint.html (file, before)", "/static/complaint.html", {}, 200),
                ("GET /complaint (the page, from memory)", "/complaint", {}, 200),
                ("  If-None-Match: its ETag -> 304", "/complaint", cached, 304),
                ("GET /beds (the page, from memory)", "/beds", {}, 200),
            ]
            print(f"{args.hospitals} hospitals x {len(BED_CLASSES)} wards, {args.complaints:,} complaints; "
                  f"{args.concurrency} connections, {args.rounds} x {args.seconds:g} s per route; medians of rounds")
            print(f"{'route':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs /health':>10} goal")
            floor = None
            by_name: dict[str, float] = {}
            for name, path, headers, expect in cases:
                rps, p50, p99, errors = route_medians(port, path, headers, args.seconds, args.rounds, args.concurrency,
                                                      expect)
                floor = floor or rps
                by_name[name] = rps
                goal = "" if "health" in name else ("met" if rps >= GOAL_RPS and p99 < GOAL_P99_MS else "NOT met")
                print(f"{name:40} {rps:8.0f} {p50:8.2f} {p99:8.2f} {errors:6d} {rps / floor:9.2f}x {goal}",
                      flush=True)
            ratio = by_name["GET /complaint (the page, from memory)"] / by_name[cases[4][0]]
            print(f"(load average {os.getloadavg()[0]:.1f}; the complaint page from memory vs from its file: "
                  f"{ratio:.2f}x)")
            costs = in_process_us(["/health", "/static/complaint.html", "/complaint"], 500, args.rounds)
            print(f"in this process, straight through ASGI, 500 calls x {args.rounds}, median us per request: "
                  + ", ".join(f"{path} {us:.0f}" for path, us in costs.items())
                  + f"; from memory vs from its file: {costs['/static/complaint.html'] / costs['/complaint']:.1f}x "
                  f"cheaper (load average {os.getloadavg()[0]:.1f})")
        finally:
            if api_proc:
                api_proc.terminate()
                api_proc.wait(15)
            mosquitto.stop()
            influxd.stop()


if __name__ == "__main__":
    main()
