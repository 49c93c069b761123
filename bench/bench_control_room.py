"""The control room with a city's worth of devices and alerts, measured in headless Chromium.

Starts its own Mosquitto and influxd, the API (uvicorn in this process), seeds DEVICES devices over
the city profile's districts and ALERTS open alerts, then opens /control-room signed in and measures:
  first paint        the page's first-contentful-paint (performance API), ms after navigation
  board ready        navigation -> every open alert drawn and every device on the map, ms
  new alert          an alert published over MQTT as analytics does -> its card in the page (the
                     page's own clock, via a MutationObserver), ms, median and max over NEW alerts
Side by side, in the same run, the same measurements on the previous page (the schematic SVG
board, git `main` before the city profile: one page of 1,000, full redraw on every event), as the
baseline; it shows at most 1,000 devices and alerts, which the figures say.

    python bench/bench_control_room.py [--devices 2000] [--alerts 300] [--new 20] [--screenshots DIR]
"""

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--new", type=int, default=20, help="new alerts timed one after the other")
    parser.add_argument("--screenshots", type=Path, default=None, help="save PNGs of the board here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        sys.exit("Debian chromium is missing: apt-get install -y chromium")
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
