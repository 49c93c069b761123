"""deploy/healthcheck.py against real servers: an HTTP endpoint, and a live broker connection."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy import healthcheck
from telemetry_shared.servers import free_port
from tests.deploy.broker_helpers import connect, stop


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_http_check_passes_on_2xx_and_fails_otherwise() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert healthcheck.main(["http", f"{base}/health"]) == 0
        assert healthcheck.main(["http", f"{base}/broken"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck.main(["http", f"http://127.0.0.1:{free_port()}/health"]) == 1


def test_mqtt_check_sees_the_connection_to_the_broker(mosquitto) -> None:
    assert healthcheck.main(["mqtt", str(mosquitto.port)]) == 1
    client, rc = connect(mosquitto.port, "svc-analytics-0", "test-service-secret")
    assert rc == 0
    try:
        assert healthcheck.main(["mqtt", str(mosquitto.port)]) == 0
    finally:
        stop(client)


@pytest.mark.parametrize("args", [[], ["http"], ["tcp", "1"], ["mqtt", "port"], ["mqtt", "1" * 5000],
                                  ["http", "not a url"], ["http", "file:///etc/shadow"]])
def test_bad_arguments_are_unhealthy_or_a_usage_error(args) -> None:
    assert healthcheck.main(args) in (1, 2)
