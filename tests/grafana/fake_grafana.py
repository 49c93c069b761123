"""A stand-in for the part of Grafana's HTTP API that `city grafana sync` uses.

Grafana is not packaged for Debian, PyPI or npm, so no real one can run on
these machines; this server keeps state the way Grafana's API does (ids and
versions set on save, write-only datasource secrets, 401/404/409/412 answers)
so the sync's idempotence and its error handling can be tested over real HTTP.
"""

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "glsa_test_token"


class FakeGrafana:
    def __init__(self) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard", "folderUid"}
        self.writes: list[str] = []
        self.mode = "normal"  # or "garbage", "error"
        self.next_id = 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "FakeGrafana":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --------------------------------------------------------------- API

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method != "GET":
            self.writes.append(f"{method} {path}")
        routes = [
            ("GET", r"/api/datasources/uid/([^/]+)", self.get_datasource),
            ("POST", r"/api/datasources", self.create_datasource),
            ("PUT", r"/api/datasources/uid/([^/]+)", self.update_datasource),
            ("GET", r"/api/folders/([^/]+)", self.get_folder),
            ("POST", r"/api/folders", self.create_folder),
            ("GET", r"/api/dashboards/uid/([^/]+)", self.get_dashboard),
            ("POST", r"/api/dashboards/db", self.save_dashboard),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(body, *match.groups())
        return 404, {"message": "Not found"}

    def get_datasource(self, _body: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        public = {k: v for k, v in self.datasources[uid].items() if k != "secureJsonData"}
        public["secureJsonFields"] = {k: True for k in self.datasources[uid].get("secureJsonData", {})}
        return 200, public

    def create_datasource(self, body: dict, _uid: str = "") -> tuple[int, Any]:
        if any(ds["name"] == body.get("name") for ds in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        stored = dict(body, id=self._new_id(), orgId=1, readOnly=False)
        self.datasources[body["uid"]] = stored
        return 200, {"id": stored["id"], "message": "Datasource added", "name": body["name"]}

    def update_datasource(self, body: dict, uid: str) -> tuple[int, Any]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        old = self.datasources[uid]
        secure = old.get("secureJsonData", {}) | body.get("secureJsonData", {})  # write-only, kept when not sent
        self.datasources[uid] = dict(body, id=old["id"], orgId=1, readOnly=False, secureJsonData=secure)
        return 200, {"message": "Datasource updated", "id": old["id"]}

    def get_folder(self, _body: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.folders:
            return 404, {"message": "folder not found"}
        return 200, self.folders[uid]

    def create_folder(self, body: dict) -> tuple[int, Any]:
        uid = body.get("uid", "")
        if uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        self.folders[uid] = {"id": self._new_id(), "uid": uid, "title": body["title"]}
        return 200, self.folders[uid]

    def get_dashboard(self, _body: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        stored = self.dashboards[uid]
        return 200, {"dashboard": stored["dashboard"], "meta": {"folderUid": stored["folderUid"], "slug": uid}}

    def save_dashboard(self, body: dict) -> tuple[int, Any]:
        board = body.get("dashboard")
        if not isinstance(board, dict) or not board.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return 400, {"message": "folder not found"}
        uid = board["uid"]
        old = self.dashboards.get(uid)
        if old and not body.get("overwrite"):
            return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
        version = old["dashboard"]["version"] + 1 if old else 1
        dash_id = old["dashboard"]["id"] if old else self._new_id()
        self.dashboards[uid] = {"dashboard": dict(board, id=dash_id, version=version),
                                "folderUid": body.get("folderUid", "")}
        return 200, {"id": dash_id, "uid": uid, "status": "success", "version": version, "url": f"/d/{uid}"}

    # --------------------------------------------------------------- HTTP

    def _authorised(self, header: str) -> bool:
        if header == f"Bearer {TOKEN}":
            return True
        if header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode(errors="replace") == "admin:admin-pass"
        return False

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not fake._authorised(self.headers.get("Authorization", "")):
                    return self._reply(401, {"message": "Unauthorized"})
                if fake.mode == "error":
                    return self._reply(500, {"message": "database is locked"})
                if fake.mode == "garbage":
                    return self._reply(200, None, b"<html>proxy error page</html>")
                body = json.loads(raw) if raw else None
                status, answer = fake.handle(self.command, self.path.split("?")[0], body)
                self._reply(status, answer)

            def _reply(self, status: int, answer: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

        return Handler
