"""A small HTTP stand-in for InfluxDB's /write that answers what a test scripts:
413 above a body size, 429 with Retry-After, 503, partial writes (400 that keeps
the good lines), slow answers. It records every accepted line, as influxd would."""

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A rule sees the request's lines and returns (status, headers, body) or None to accept all of them.
Rule = Callable[[list[str]], tuple[int, dict[str, str], str] | None]


class InfluxStandIn:
    def __init__(self):
        self.stored: list[str] = []  # accepted lines, in the order they came
        self.requests: list[tuple[float, int, int]] = []  # (time, lines, status)
        self.rules: list[Rule] = []
        self.refuse_marker: str | None = None  # lines holding it are refused as a partial write
        self.lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def answer(self, lines: list[str]) -> tuple[int, dict[str, str], str]:
        for rule in list(self.rules):
            result = rule(lines)
            if result is not None:
                return result
        refused = [line for line in lines if self.refuse_marker and self.refuse_marker in line]
        with self.lock:
            self.stored.extend(line for line in lines if line not in refused)
        if refused:
            return 400, {}, (f'{{"error":"partial write: unable to parse \'{refused[0][:40]}\': bad field'
                             f' dropped={len(refused)}"}}')
        return 204, {}, ""

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                lines = [line for line in body.decode().split("\n") if line]
                status, headers, text = standin.answer(lines)
                with standin.lock:
                    standin.requests.append((time.monotonic(), len(lines), status))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                data = text.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args) -> None:
                pass

        return Handler


def times(n: int, status: int, headers: dict[str, str] | None = None, body: str = "") -> Rule:
    """Answer `status` to the next n requests, then step aside."""
    left = [n]

    def rule(lines: list[str]):
        if left[0] <= 0:
            return None
        left[0] -= 1
        return status, headers or {}, body

    return rule


def too_large_above(max_lines: int) -> Rule:
    return lambda lines: (413, {}, '{"error":"Request Entity Too Large"}') if len(lines) > max_lines else None


def slow(seconds: float, n: int) -> Rule:
    left = [n]

    def rule(lines: list[str]):
        if left[0] <= 0:
            return None
        left[0] -= 1
        time.sleep(seconds)
        return 204, {}, ""

    return rule
