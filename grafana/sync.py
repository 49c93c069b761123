"""Push the datasource and the dashboards to a running Grafana through its HTTP API.

Idempotent: each object is read first and written only when it differs, and
the result says what was created, updated or left unchanged. Meant for a
Grafana that is not provisioned from files (Grafana refuses API writes to a
file-provisioned dashboard). The datasource password is write-only in Grafana,
so it is sent when the datasource is created, or when asked to (`reset_secrets`).
"""

import re
from dataclasses import dataclass
from typing import Any

import httpx

FOLDER_UID_PATTERN = r"[A-Za-z0-9_-]{1,40}"
# Datasource fields this command owns; Grafana adds others (id, orgId, readOnly...) that we leave alone.
DATASOURCE_FIELDS = ("name", "type", "access", "url", "database", "user", "basicAuth", "isDefault")
# Dashboard fields Grafana sets on save, not part of what we generate.
SERVER_FIELDS = ("id", "version")


class SyncError(RuntimeError):
    """Grafana could not be reached, refused us, or answered something we cannot use.
    `kind` says which (invalid, auth, conflict, unavailable, failed), for the command's exit code."""

    def __init__(self, message: str, kind: str = "failed"):
        super().__init__(message)
        self.kind = kind


class GrafanaHTTPError(Exception):
    """Grafana answered with an error status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Change:
    what: str  # datasource, folder, dashboard
    name: str
    action: str  # created, updated, unchanged


class GrafanaApi:
    """The few calls of Grafana's HTTP API that the sync needs, over httpx (no client library:
    grafana-client pulled in niquests and urllib3-future, which break other tools in the same environment)."""

    def __init__(self, url: str, credential: str | tuple[str, str], timeout_s: float = 10.0):
        headers = {"Accept": "application/json"}
        auth = None
        if isinstance(credential, tuple):
            auth = httpx.BasicAuth(*credential)
        else:
            headers["Authorization"] = f"Bearer {credential}"
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, auth=auth, timeout=timeout_s)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer of one call; GrafanaHTTPError for an error status."""
        response = self.http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text
            raise GrafanaHTTPError(response.status_code, str(message)[:300])
        return response.json()

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            found = self.call("GET", path)
        except GrafanaHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(found, dict):
            raise ValueError(f"expected a JSON object, got {str(found)[:80]!r}")
        return found

    def close(self) -> None:
        self.http.close()


def connect(url: str, token: str = "", user: str = "", password: str = "", timeout_s: float = 10.0) -> GrafanaApi:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url or ""):
        raise SyncError(f"not a Grafana URL: {url[:80]!r} (expected http://host:port)", "invalid")
    credential: str | tuple[str, str] | None = token or ((user, password) if user else None)
    if credential is None:
        raise SyncError("no Grafana credentials: set CITY_GRAFANA_TOKEN, or CITY_GRAFANA_USER and _PASSWORD", "auth")
    return GrafanaApi(url, credential, timeout_s)


def sync(api: GrafanaApi, datasource: dict[str, Any], dashboards: list[dict[str, Any]],
         folder_uid: str = "city", folder_title: str = "City", reset_secrets: bool = False) -> list[Change]:
    """Make Grafana hold exactly our datasource, folder and dashboards; return what changed."""
    if not re.fullmatch(FOLDER_UID_PATTERN, folder_uid):
        raise SyncError(f"folder uid must match {FOLDER_UID_PATTERN}: {folder_uid[:60]!r}", "invalid")
    try:
        changes = [_sync_datasource(api, datasource, reset_secrets), _sync_folder(api, folder_uid, folder_title)]
        changes += [_sync_dashboard(api, board, folder_uid) for board in dashboards]
    except GrafanaHTTPError as exc:
        if exc.status == 401:
            raise SyncError("Grafana refused the credentials (401): check CITY_GRAFANA_TOKEN or user/password",
                            "auth") from exc
        kind = "unavailable" if exc.status >= 500 else "conflict" if exc.status in (409, 412) else "failed"
        raise SyncError(f"Grafana request failed ({exc.status}): {exc.message}", kind) from exc
    except httpx.TransportError as exc:  # refused, timed out, DNS: one clear line, not the transport's exception
        raise SyncError(f"cannot reach Grafana at {api.http.base_url}: {_reason(exc)}", "unavailable") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SyncError(f"Grafana answered something unexpected (is that URL Grafana?): {exc!r}"[:300],
                        "unavailable") from exc
    return changes


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown"
    return type(exc).__name__


def _sync_datasource(api: GrafanaApi, wanted: dict[str, Any], reset_secrets: bool) -> Change:
    uid, name = wanted["uid"], wanted["name"]
    current = api.get_or_none(f"/api/datasources/uid/{uid}")
    if current is None:
        api.call("POST", "/api/datasources", wanted)
        return Change("datasource", name, "created")
    same = all(current.get(key) == wanted.get(key) for key in DATASOURCE_FIELDS) and all(
        (current.get("jsonData") or {}).get(key) == value for key, value in wanted["jsonData"].items())
    if same and not reset_secrets:
        return Change("datasource", name, "unchanged")
    body = dict(wanted)
    if not reset_secrets:
        body.pop("secureJsonData", None)  # Grafana keeps the stored password when none is sent
    api.call("PUT", f"/api/datasources/uid/{uid}", body)
    return Change("datasource", name, "updated")


def _sync_folder(api: GrafanaApi, uid: str, title: str) -> Change:
    if api.get_or_none(f"/api/folders/{uid}") is None:
        api.call("POST", "/api/folders", {"title": title, "uid": uid})
        return Change("folder", title, "created")
    return Change("folder", title, "unchanged")


def _comparable(board: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in board.items() if key not in SERVER_FIELDS}


def _sync_dashboard(api: GrafanaApi, board: dict[str, Any], folder_uid: str) -> Change:
    current = api.get_or_none(f"/api/dashboards/uid/{board['uid']}")
    if current is not None:
        in_folder = (current.get("meta") or {}).get("folderUid") == folder_uid
        if in_folder and _comparable(current["dashboard"]) == _comparable(board):
            return Change("dashboard", board["title"], "unchanged")
    body = _comparable(board) | {"id": None}
    api.call("POST", "/api/dashboards/db", {"dashboard": body, "folderUid": folder_uid, "overwrite": True,
                                            "message": "city grafana sync"})
    return Change("dashboard", board["title"], "created" if current is None else "updated")
