"""The fleet routes: device states for the map, and the silent devices."""

import time

from telemetry_shared.registry import DeviceNew
from tests.api.harness import alert, wait_for


def test_silent_devices_and_map_states(make_api, analytics):
    api = make_api(api_silent_after_s=60)
    registry = api.services.registry
    now = int(time.time() * 1000)
    for device, seen_ago_s in [("wtr-0001", 5), ("wtr-0002", 600), ("wtr-0003", 7200), ("wtr-0004", None)]:
        registry.add(DeviceNew(id=device, kind="water", district="bukit-bestari", lat=0.92, lon=104.45))
        if seen_ago_s is not None:
            registry.seen(device, now - seen_ago_s * 1000, "0.1.0")
    registry.add(DeviceNew(id="wtr-0005", kind="water", district="bukit-bestari"))
    registry.update("wtr-0005", state="retired")
    analytics.publish(alert("inc-a", device="wtr-0001", severity="warning"), device="wtr-0001")
    analytics.publish(alert("inc-b", device="wtr-0001", severity="critical"), device="wtr-0001")
    wait_for(lambda: api.services.alerts.store.find()[1] == 2)
    with api.client("technician") as c:
        silent = c.get("/fleet/silent").json()
        assert [d["id"] for d in silent["data"]] == ["wtr-0003", "wtr-0002"]  # longest silent first
        assert silent["count"] == 2 and 7190 < silent["data"][0]["silent_for_s"] < 7300
        devices = {d["id"]: d for d in c.get("/fleet/devices").json()["data"]}
        assert {k: (d["state"], d["alert_severity"]) for k, d in devices.items()} == {
            "wtr-0001": ("active", "critical"), "wtr-0002": ("silent", None), "wtr-0003": ("silent", None),
            "wtr-0004": ("provisioned", None), "wtr-0005": ("retired", None)}
        assert c.get("/fleet/devices", params={"state": "provisioned"}).json()["count"] == 1
        assert c.get("/fleet/devices", params={"state": "lost"}).status_code == 422
