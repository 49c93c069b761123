"""The far ends of notifications, on loopback: a webhook receiver and an SMTP relay (aiosmtpd) that keep what
they are sent, and can go away and come back on the same port (an outage)."""

import json
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from telemetry_shared.servers import free_port


@dataclass(frozen=True)
class Post:
    """One call the receiver took: its headers and body as sent."""

    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self):  # noqa: N802 - http.server's hook name
        self.server.receiver.take(self)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    receiver: "WebhookReceiver"


class WebhookReceiver:
    """Answers every POST with 204 and keeps it in `received`; the first `fail_first` calls get 503 instead
    (kept out of `received`, counted in `calls`), and the first call waits `slow_first_s` before answering
    (kept: the sender timed out, the receiver had it)."""

    def __init__(self, fail_first: int = 0, slow_first_s: float = 0.0):
        self.port = free_port()
        self.fail_first, self.slow_first_s = fail_first, slow_first_s
        self.received: list[Post] = []
        self.calls = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> "WebhookReceiver":
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.receiver = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        with self._lock:
            self.calls += 1
            call = self.calls
        if call <= self.fail_first:
            request.send_response(503)
        else:
            self.received.append(Post(request.headers, body))
            if call == 1 and self.slow_first_s:
                time.sleep(self.slow_first_s)
            request.send_response(204)
        request.end_headers()


class SmtpInbox:
    """An SMTP relay that keeps every message: `messages` (the content) and `recipients`, in arrival order."""

    def __init__(self):
        self.port = free_port()
        self.messages: list[str] = []
        self.recipients: list[list[str]] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(envelope.content.decode())
        return "250 OK"

    def start(self) -> "SmtpInbox":
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None
