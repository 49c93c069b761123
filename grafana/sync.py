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

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

FOLDER_UID_PATTERN = r"[A-Za-z0-9_-]{1,40}"
# Datasource fields this command owns; Grafana adds others (id, orgId, readOnly...) that we leave alone.
DATASOURCE_FIELDS = ("name", "type", "access", "url", "database", "user", "basicAuth", "isDefault")
# Dashboard fields Grafana sets on save, not part of what we generate.
SERVER_FIELDS = ("id", "version")


class SyncError(RuntimeError):
    """Grafana could not be reached, refused us, or answered something we cannot use."""


@dataclass(frozen=True)
class Change:
    what: str  # datasource, folder, dashboard
    name: str
    action: str  # created, updated, unchanged


def connect(url: str, token: str = "", user: str = "", password: str = "", timeout_s: float = 10.0) -> GrafanaApi:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url or ""):
        raise SyncError(f"not a Grafana URL: {url[:80]!r} (expected http://host:port)")
    credential: str | tuple[str, str] | None = token or ((user, password) if user else None)
    if credential is None:
        raise SyncError("no Grafana credentials: set CITY_GRAFANA_TOKEN, or CITY_GRAFANA_USER and _PASSWORD")
    return GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)


def sync(api: GrafanaApi, datasource: dict[str, Any], dashboards: list[dict[str, Any]],
         folder_uid: str = "city", folder_title: str = "City", reset_secrets: bool = False) -> list[Change]:
    """Make Grafana hold exactly our datasource, folder and dashboards; return what changed."""
    if not re.fullmatch(FOLDER_UID_PATTERN, folder_uid):
        raise SyncError(f"folder uid must match {FOLDER_UID_PATTERN}: {folder_uid[:60]!r}")
    try:
        changes = [_sync_datasource(api, datasource, reset_secrets), _sync_folder(api, folder_uid, folder_title)]
        changes += [_sync_dashboard(api, board, folder_uid) for board in dashboards]
    except GrafanaUnauthorizedError as exc:
        raise SyncError("Grafana refused the credentials (401): check CITY_GRAFANA_TOKEN or user/password") from exc
    except GrafanaException as exc:
        status = f" ({exc.status_code})" if exc.status_code else ""
        raise SyncError(f"Grafana request failed{status}: {str(exc.message)[:300]}") from exc
    except OSError as exc:  # niquests' connection errors are OSErrors; grafana-client lets them through
        raise SyncError(f"cannot reach Grafana: {str(exc)[:200]}") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SyncError(f"Grafana answered something unexpected: {exc!r}"[:300]) from exc
    return changes


def _get_or_none(call, *args) -> dict[str, Any] | None:
    try:
        found = call(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise
    if not isinstance(found, dict):
        raise ValueError(f"expected a JSON object, got {str(found)[:80]!r}")
    return found


def _sync_datasource(api: GrafanaApi, wanted: dict[str, Any], reset_secrets: bool) -> Change:
    uid, name = wanted["uid"], wanted["name"]
    current = _get_or_none(api.datasource.get_datasource_by_uid, uid)
    if current is None:
        api.datasource.create_datasource(wanted)
        return Change("datasource", name, "created")
    same = all(current.get(key) == wanted.get(key) for key in DATASOURCE_FIELDS) and all(
        (current.get("jsonData") or {}).get(key) == value for key, value in wanted["jsonData"].items())
    if same and not reset_secrets:
        return Change("datasource", name, "unchanged")
    body = dict(wanted)
    if not reset_secrets:
        body.pop("secureJsonData", None)  # Grafana keeps the stored password when none is sent
    api.datasource.update_datasource_by_uid(uid, body)
    return Change("datasource", name, "updated")


def _sync_folder(api: GrafanaApi, uid: str, title: str) -> Change:
    if _get_or_none(api.folder.get_folder, uid) is None:
        api.folder.create_folder(title, uid=uid)
        return Change("folder", title, "created")
    return Change("folder", title, "unchanged")


def _comparable(board: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in board.items() if key not in SERVER_FIELDS}


def _sync_dashboard(api: GrafanaApi, board: dict[str, Any], folder_uid: str) -> Change:
    current = _get_or_none(api.dashboard.get_dashboard, board["uid"])
    if current is not None:
        in_folder = (current.get("meta") or {}).get("folderUid") == folder_uid
        if in_folder and _comparable(current["dashboard"]) == _comparable(board):
            return Change("dashboard", board["title"], "unchanged")
    body = _comparable(board) | {"id": None}
    api.dashboard.update_dashboard({"dashboard": body, "folderUid": folder_uid, "overwrite": True,
                                    "message": "city grafana sync"})
    return Change("dashboard", board["title"], "created" if current is None else "updated")
