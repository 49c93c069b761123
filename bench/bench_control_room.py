"""The control room with a city's worth of devices and alerts, measured in headless Chromium.

Starts its own Mosquitto and influxd, the API (uvicorn in this process), seeds DEVICES devices over
the city profile's districts and ALERTS open alerts, then opens /control-room signed in and measures:
  first paint        the page's first-contentful-paint (performance API), ms after navigation
  board ready        navigation -> every open alert drawn and every device on the map, ms
  new alert          an alert published over MQTT as analytics does -> its card in the page (the
                     page's own clock, via a MutationObserver), ms, median and max over NEW alerts
With --baseline, side by side in the same run, the same measurements on the previous page (the
schematic SVG board, git `main` before the city profile: one page of 1,000, full redraw on every event);
it shows at most 1,000 devices and alerts, which the figures say.

    python bench/bench_control_room.py --baseline [--devices 2000] [--alerts 300] [--new 20] [--screenshots DIR]

With several fleet sizes (`--devices 2000 100000`), each size in a process of its own (so the API's memory
is its own), one after the other in the same session, the current page only, and per size also:
  board ready        as above; above the page's AGGREGATE_ABOVE the map shows one marker per district,
                     so ready is every alert drawn and every district's marker (median of --repeat loads)
  district open      Enter on the largest district's marker -> its devices on the map, ms (aggregated only)
  fleet requests     what the page asks the API, timed with httpx: GET /fleet/districts, one page of 1,000 of
                     /fleet/devices, the whole fleet page after page (medians of --repeat); and one page of the
                     route before issue 22 (git FLEET_BEFORE, each page built the whole fleet), timed in-process
  API RSS            resident memory of the process that runs the API (uvicorn in it, with the seeded plan):
                     after seeding, and its peak by the end (VmHWM)

    python bench/bench_control_room.py --devices 2000 100000 [--alerts 300] [--new 5] [--repeat 3]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware-sim"))

from api.routes import control_room  # noqa: E402
from telemetry_shared.registry import DeviceNew  # noqa: E402
from telemetry_shared.servers import Influxd, Mosquitto  # noqa: E402
from tests.api.harness import AnalyticsPublisher, alert, start_api  # noqa: E402
from tests.conftest import make_settings, service_users  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BASELINE_COMMIT = "a2ffc11"  # main before the city profile: the schematic board
FLEET_BEFORE = "875060b"  # main before issue 22's fleet routes: every page of /fleet/devices built the whole fleet


def seed(api, devices: int, alerts: int) -> list[dict]:
    """The simulator's fleet plan (positions inside the profile's districts), registered; open alerts on
    the first `alerts` devices. Returns the plan."""
    import fleetsim

    plan = fleetsim.plan_fleet(fleetsim.load_scenario(), devices, 1)
    now = int(time.time() * 1000)
    for spec in plan:
        api.services.registry.add(DeviceNew(**spec))
        api.services.registry.seen(spec["id"], now, "0.1.0")
    for n, spec in enumerate(plan[:alerts]):
        api.services.alerts.store.apply(alert(f"inc-{n:04d}", device=spec["id"], district=spec["district"],
                                              kind=spec["kind"], severity=("critical", "warning", "info")[n % 3]))
    return plan


READY = """([alerts, devices]) => document.querySelectorAll('li.alert').length >= alerts
  && (window.controlRoom ? controlRoom.devicesOnMap() >= devices
                         : document.querySelectorAll('#devices circle').length >= devices)"""
WATCH = """() => { window.arrivals = {}; new MutationObserver((records) => { for (const r of records)
  for (const n of r.addedNodes) if (n.dataset && n.dataset.alertId && !(n.dataset.alertId in arrivals))
    arrivals[n.dataset.alertId] = Date.now(); }).observe(document.getElementById('alerts'), {childList: true}); }"""


def measure(browser, api, analytics, label: str, plan: list[dict], alerts: int, new: int,
            screenshots: Path | None) -> dict:
    devices = len(plan)
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.add_init_script(f"localStorage.setItem('cityApiKey', {api.keys['operator']!r})")
    page = context.new_page()
    started = time.monotonic()
    page.goto(api.url + "/control-room")
    page.wait_for_function(READY, arg=[min(alerts, 1000), min(devices, 1000)], timeout=60_000)
    ready_ms = (time.monotonic() - started) * 1000
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")
    shown_devices = page.evaluate("window.controlRoom ? controlRoom.devicesOnMap() "
                                  ": document.querySelectorAll('#devices circle').length")
    shown_alerts = page.locator("li.alert").count()
    page.evaluate(WATCH)
    delays = []
    for n in range(new):
        incident = f"new-{label}-{n}"
        device = plan[-1 - n]
        sent = time.time() * 1000
        analytics.publish(alert(incident, device=device["id"], kind=device["kind"], district=device["district"],
                                severity="critical"), device=device["id"])
        page.wait_for_function(f"() => window.arrivals && '{incident}' in window.arrivals", timeout=10_000)
        delays.append(page.evaluate(f"window.arrivals['{incident}']") - sent)
        time.sleep(0.2)
    if screenshots:
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / f"control-room-{label}.png"))
        if label == "city":
            page.select_option("#lang", "id")
            page.wait_for_function("document.documentElement.lang === 'id'")
            time.sleep(0.5)
            page.screenshot(path=str(screenshots / "control-room-city-id.png"))
    context.close()
    return {"label": label, "paint": paint, "ready": ready_ms, "devices": shown_devices, "alerts": shown_alerts,
            "median": statistics.median(delays), "max": max(delays)}


def baseline_static(tmp: Path) -> Path:
    """The previous control room's files, from git."""
    folder = tmp / "baseline-static"
    folder.mkdir()
    for name in ("control-room.html", "control-room.js", "control-room.css"):
        text = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:api/static/{name}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (folder / name).write_text(text)
    return folder


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def old_fleet_page_s(api) -> float:
    """One page of /fleet/devices as the route before issue 22 served it: the whole fleet built (its
    `fleet()` from git FLEET_BEFORE, run in this process on the same services), then sliced."""
    source = subprocess.run(["git", "show", f"{FLEET_BEFORE}:api/routes/fleet.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    namespace: dict = {}
    exec(compile(source, f"{FLEET_BEFORE}:api/routes/fleet.py", "exec"), namespace)  # noqa: S102 - our own file
    started = time.monotonic()
    rows = namespace["fleet"](api.services)
    rows[0:1000]
    return time.monotonic() - started


DISTRICTS_READY = """([alerts]) => document.querySelectorAll('li.alert').length >= alerts
  && window.controlRoom && controlRoom.aggregated() && controlRoom.districtMarkers().length > 0"""


def one_size(devices: int, alerts: int, new: int, repeat: int) -> dict:
    """Seed `devices`, time the board and the fleet requests; a dict of figures (run in a child process)."""
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.api.fleet_seed import seed_fleet

    out: dict = {"devices": devices}
    with tempfile.TemporaryDirectory(prefix="bench-cr-") as folder:
        tmp = Path(folder)
        influxd = Influxd(tmp / "influxd").start()
        mosquitto = Mosquitto(tmp / "mosquitto", users=service_users()).start()
        try:
            settings = make_settings(tmp / "api", mosquitto, influxd.url, "city", api_mqtt_user="svc-api-0",
                                     api_alarm_group_window_s=0, api_alarm_flood_count=1_000_000)
            api = start_api(settings)
            started = time.monotonic()
            plan = seed_fleet(api, devices, alerts)
            out["seed_s"] = time.monotonic() - started
            out["rss_seeded_mb"] = rss_mb()
            key = {"Authorization": f"Bearer {api.keys['operator']}"}
            with httpx.Client(base_url=api.url, headers=key, timeout=600) as c:
                def timed(path: str) -> float:
                    t0 = time.monotonic()
                    c.get(path).raise_for_status()
                    return time.monotonic() - t0
                out["districts_ms"] = statistics.median(timed("/fleet/districts") * 1000 for _ in range(repeat))
                out["page_ms"] = statistics.median(timed("/fleet/devices?limit=1000") * 1000 for _ in range(repeat))
                walks = []
                for _ in range(repeat):
                    walks.append(sum(timed(f"/fleet/devices?limit=1000&offset={o}") for o in range(0, devices, 1000)))
                out["all_pages_s"] = statistics.median(walks)
            analytics = AnalyticsPublisher(mosquitto.port)
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                args=["--no-sandbox", "--disable-gpu"])
                    readies, opens, delays = [], [], []
                    for n in range(repeat):
                        context = browser.new_context(viewport={"width": 1600, "height": 900})
                        context.add_init_script(f"localStorage.setItem('cityApiKey', {api.keys['operator']!r})")
                        page = context.new_page()
                        t0 = time.monotonic()
                        page.goto(api.url + "/control-room")
                        page.wait_for_function("() => window.controlRoom && controlRoom.fleetLoads() > 0",
                                               timeout=300_000)
                        if page.evaluate("controlRoom.aggregated()"):
                            page.wait_for_function(DISTRICTS_READY, arg=[alerts], timeout=300_000)
                            readies.append((time.monotonic() - t0) * 1000)
                            marker = max(page.evaluate("controlRoom.districtMarkers()"), key=lambda m: m["devices"])
                            t1 = time.monotonic()
                            page.focus(f'.district-count[data-district="{marker["district"]}"]')
                            page.keyboard.press("Enter")
                            page.wait_for_function("(m) => controlRoom.devicesOnMap() >= m", arg=marker["devices"],
                                                   timeout=300_000)
                            opens.append((time.monotonic() - t1) * 1000)
                            out["shown"] = f"{len(page.evaluate('controlRoom.districtMarkers()')) + 1} districts"
                            out["opened"] = marker["devices"]
                        else:
                            page.wait_for_function(READY, arg=[alerts, devices], timeout=300_000)
                            readies.append((time.monotonic() - t0) * 1000)
                            out["shown"] = f"{page.evaluate('controlRoom.devicesOnMap()')} devices"
                        if n == 0:
                            page.evaluate(WATCH)
                            for k in range(new):
                                incident, device = f"new-{k}", plan[-1 - k]
                                sent = time.time() * 1000
                                analytics.publish(alert(incident, device=device["id"], kind=device["kind"],
                                                        district=device["district"], severity="critical"),
                                                  device=device["id"])
                                page.wait_for_function(f"() => window.arrivals && '{incident}' in window.arrivals",
                                                       timeout=30_000)
                                delays.append(page.evaluate(f"window.arrivals['{incident}']") - sent)
                                time.sleep(0.2)
                        context.close()
                    browser.close()
            finally:
                analytics.close()
            out["ready_ms"] = statistics.median(readies)
            out["open_ms"] = statistics.median(opens) if opens else None
            out["new_alert_ms"] = statistics.median(delays) if delays else None
            out["rss_peak_mb"] = rss_mb("VmHWM")
            # last: the old route's whole-fleet build would count in the peak above
            out["old_page_s"] = statistics.median(old_fleet_page_s(api) for _ in range(repeat))
            api.stop()
        finally:
            mosquitto.stop()
            influxd.stop()
    return out


def sizes(args: argparse.Namespace) -> None:
    """Each fleet size in a child process of its own, one after the other; a table side by side."""
    results = []
    for devices in args.devices:
        child = subprocess.run([sys.executable, __file__, "--one", str(devices), "--alerts", str(args.alerts),
                                "--new", str(args.new), "--repeat", str(args.repeat)], cwd=ROOT,
                               capture_output=True, text=True, timeout=3600)
        if child.returncode:
            sys.exit(f"the {devices}-device run failed:\n{child.stderr[-3000:]}")
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{args.alerts} open alerts, {args.new} new alerts, medians of {args.repeat}; Chromium headless, 1600x900")
    rows = [("devices", lambda r: f"{r['devices']:,}"), ("map shows", lambda r: r["shown"]),
            ("board ready", lambda r: f"{r['ready_ms']:.0f} ms"),
            ("district open", lambda r: f"{r['open_ms']:.0f} ms ({r['opened']:,})" if r["open_ms"] else "-"),
            ("new alert p50", lambda r: f"{r['new_alert_ms']:.0f} ms" if r["new_alert_ms"] is not None else "-"),
            ("GET /fleet/districts", lambda r: f"{r['districts_ms']:.0f} ms"),
            ("GET /fleet/devices, 1 page", lambda r: f"{r['page_ms']:.0f} ms"),
            ("  every page", lambda r: f"{r['all_pages_s']:.2f} s"),
            (f"  1 page before ({FLEET_BEFORE})", lambda r: f"{r['old_page_s'] * 1000:.0f} ms"),
            ("API RSS seeded", lambda r: f"{r['rss_seeded_mb']:.0f} MB"),
            ("API RSS peak", lambda r: f"{r['rss_peak_mb']:.0f} MB"),
            ("seeding", lambda r: f"{r['seed_s']:.1f} s")]
    for name, cell in rows:
        print(f"{name:<32}" + "".join(f"{cell(r):>22}" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[2000], help="one or more fleet sizes")
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--new", type=int, default=20, help="new alerts timed one after the other")
    parser.add_argument("--repeat", type=int, default=3, help="loads and requests per size (sizes mode)")
    parser.add_argument("--baseline", action="store_true", help="against the schematic board of git BASELINE_COMMIT")
    parser.add_argument("--screenshots", type=Path, default=None, help="save PNGs of the board here")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child of the sizes mode
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        sys.exit("Debian chromium is missing: apt-get install -y chromium")
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.alerts, args.new, args.repeat)))
        return
    if not args.baseline:
        sizes(args)
        return
    args.devices = args.devices[0]
    with tempfile.TemporaryDirectory(prefix="bench-cr-") as folder:
        tmp = Path(folder)
        influxd = Influxd(tmp / "influxd").start()
        mosquitto = Mosquitto(tmp / "mosquitto", users=service_users()).start()
        ours = control_room.STATIC
        results = []
        try:
            for label, static in (("baseline", baseline_static(tmp)), ("city", ours)):
                control_room.STATIC = static
                settings = make_settings(tmp / label, mosquitto, influxd.url, "city", api_mqtt_user="svc-api-0")
                api = start_api(settings)
                api.services.registry  # noqa: B018 - opened
                plan = seed(api, args.devices, args.alerts)
                analytics = AnalyticsPublisher(mosquitto.port)
                try:
                    with sync_playwright() as p:
                        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    args=["--no-sandbox", "--disable-gpu"])
                        results.append(measure(browser, api, analytics, label, plan, args.alerts, args.new,
                                               args.screenshots))
                        browser.close()
                finally:
                    analytics.close()
                    api.stop()
        finally:
            control_room.STATIC = ours
            mosquitto.stop()
            influxd.stop()
    print(f"{args.devices} devices, {args.alerts} open alerts, {args.new} new alerts; Chromium headless, 1600x900")
    print(f"{'page':<10}{'first paint':>13}{'board ready':>13}{'devices':>9}{'alerts':>8}"
          f"{'new alert p50':>15}{'max':>8}")
    for r in results:
        paint = f"{r['paint']:.0f} ms" if r["paint"] is not None else "n/a"
        print(f"{r['label']:<10}{paint:>13}{r['ready']:>10.0f} ms{r['devices']:>9}{r['alerts']:>8}"
              f"{r['median']:>12.0f} ms{r['max']:>5.0f} ms")


if __name__ == "__main__":
    main()
