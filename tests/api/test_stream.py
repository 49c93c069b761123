"""The SSE stream of alert changes, read by a plain HTTP client."""

import json
import threading

from tests.api.harness import KEY_NAMES, alert, wait_for


def read_events(client, events, stop):
    with client.stream("GET", "/alerts/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        block = []
        for line in response.iter_lines():
            if line:
                block.append(line)
                continue
            fields = dict(item.split(": ", 1) for item in block if not item.startswith(":") and ": " in item)
            block = []
            if "data" in fields:
                events.append((fields.get("event"), json.loads(fields["data"])))
            if stop.is_set():
                return


def test_stream_carries_every_change_in_order(api, analytics):
    events, stop = [], threading.Event()
    client = api.client("technician", timeout=None)
    reader = threading.Thread(target=read_events, args=(client, events, stop), daemon=True)
    reader.start()
    wait_for(lambda: events)
    assert events[0] == ("hello", {"user": KEY_NAMES["technician"], "role": "technician"})
    analytics.publish(alert("inc-s", severity="warning", updated_ms=5_000_000))
    analytics.publish(alert("inc-s", severity="critical", updated_ms=5_000_100))
    wait_for(lambda: len(events) >= 3)
    with api.client("operator") as op:
        op.post("/alerts/inc-s/ack", json={"note": "seen"})
    wait_for(lambda: len(events) >= 4)
    stop.set()
    analytics.publish(alert("inc-s", state="cleared", updated_ms=5_000_200))  # wakes the reader so it can leave
    reader.join(5)
    client.close()
    changes = [(e, d["changes"], d["alert"]["severity"]) for e, d in events[1:4]]
    assert changes == [("alert", ["opened"], "warning"), ("alert", ["severity_raised"], "critical"),
                       ("alert", ["acknowledged"], "critical")]
    assert events[3][1]["alert"]["acknowledged_by"] == KEY_NAMES["operator"]


def test_stream_needs_a_key(api):
    with api.client() as c:
        r = c.get("/alerts/stream")
    assert r.status_code == 401
