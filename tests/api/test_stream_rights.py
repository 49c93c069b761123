"""Rights are re-checked on long-lived streams, not only when they open: a key
revoked (through the API or by `city apikey revoke` in another process) or
given another role loses its open alert streams and live device watchers
within 5 s, with a last `end` event that says why."""

import json
import threading
import time
from contextlib import suppress

import httpx
from typer.testing import CliRunner

from telemetry_cli.main import app as city_cli
from tests.api.harness import alert
from tests.cli.conftest import city, make_city  # noqa: F401 - fixtures: a live API with the device admin link

LIMIT_S = 5.0


class EventReader:
    """Reads an SSE stream in a thread: the events, and when the stream ended."""

    def __init__(self, client: httpx.Client, path: str):
        self.events: list[tuple[str, dict]] = []
        self.ended_at: float | None = None
        self.status = 0
        self.client, self.path = client, path
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with suppress(httpx.HTTPError):  # the server went away at the end of the test
            self._read_events()
        self.ended_at = time.monotonic()

    def _read_events(self) -> None:
        with self.client.stream("GET", self.path) as response:
            self.status = response.status_code
            event, data = "", ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    self.events.append((event, json.loads(data)))
                    event, data = "", ""

    def wait(self, predicate, timeout_s: float = 10) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False


def _end_within(reader: EventReader, since: float) -> float:
    assert reader.wait(lambda: reader.ended_at is not None, LIMIT_S + 2), f"stream still open: {reader.events}"
    took = reader.ended_at - since
    assert took < LIMIT_S, f"the stream ended {took:.1f} s after the change"
    return took


def test_a_revoked_key_loses_its_alert_stream_within_5_s(api, analytics):
    created = api.services.keys.create("night shift", "operator")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {created.key}"}, timeout=None) as c:
        reader = EventReader(c, "/alerts/stream")
        assert reader.wait(lambda: reader.events and reader.events[0][0] == "hello")
        analytics.publish(alert("inc-r1"))
        assert reader.wait(lambda: len(reader.events) >= 2)  # it works while the key is good
        revoked_at = time.monotonic()
        assert api.services.keys.revoke(created.id)  # straight in the database, as `city apikey revoke` does
        _end_within(reader, revoked_at)
        assert reader.events[-1] == ("end", {"reason": "revoked"})
        analytics.publish(alert("inc-r2"))  # nothing more reaches a revoked key
        time.sleep(0.3)
        assert not any(data.get("alert", {}).get("id") == "inc-r2" for _, data in reader.events)
        assert c.get("/alerts/stream").status_code == 401  # and it cannot reopen it


def test_a_key_given_another_role_loses_its_streams(api):
    created = api.services.keys.create("moved to technicians", "operator")
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {created.key}"}, timeout=None) as c, \
            api.client("admin") as admin:
        reader = EventReader(c, "/alerts/stream")
        assert reader.wait(lambda: reader.events)
        changed_at = time.monotonic()
        r = admin.patch(f"/keys/{created.id}", json={"role": "technician"})
        assert r.status_code == 200 and r.json()["role"] == "technician"
        _end_within(reader, changed_at)
        assert reader.events[-1] == ("end", {"reason": "role_changed"})
        with c.stream("GET", "/alerts/stream") as again:  # reconnecting shows the new role
            first = next(line for line in again.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["role"] == "technician"


def test_other_keys_keep_their_streams(api, analytics):
    doomed = api.services.keys.create("doomed", "engineer")
    with api.client("operator", timeout=None) as keeper, \
            httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {doomed.key}"}, timeout=None) as c:
        kept, lost = EventReader(keeper, "/alerts/stream"), EventReader(c, "/alerts/stream")
        assert kept.wait(lambda: kept.events) and lost.wait(lambda: lost.events)
        api.services.keys.revoke(doomed.id)
        assert lost.wait(lambda: lost.ended_at is not None, LIMIT_S)
        analytics.publish(alert("inc-kept"))
        assert kept.wait(lambda: any(d.get("alert", {}).get("id") == "inc-kept" for _, d in kept.events))
        assert kept.ended_at is None


def test_city_apikey_revoke_ends_a_live_device_watch_within_5_s(city):  # noqa: F811 - the fixture
    city.run("add", "--kind", "water", "--district", "bukit-bestari", "--id", "wtr-0001")
    services = city.api.app.state.services
    watcher = services.keys.create("field laptop", "technician")
    with httpx.Client(base_url=city.api.url, headers={"Authorization": f"Bearer {watcher.key}"},
                      timeout=None) as c:
        reader = EventReader(c, "/devices/wtr-0001/live?timeout_s=60")
        assert reader.wait(lambda: reader.events and reader.events[0][0] == "hello")
        revoked_at = time.monotonic()
        env = {"CITY_DATA_DIR": str(city.settings.data_dir), "CITY_API_DB_PATH": str(city.settings.api_db_file)}
        result = CliRunner().invoke(city_cli, ["apikey", "revoke", watcher.id], env=env)
        assert result.exit_code == 0, result.output
        _end_within(reader, revoked_at)
        end = reader.events[-1]
        assert end[0] == "end" and end[1]["reason"] == "revoked"
