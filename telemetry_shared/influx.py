"""InfluxDB access: writes as line protocol, reads as InfluxQL.

Two writers behind one small interface: V1Writer posts to /write (InfluxDB 1.x,
and the v1 compatibility API of 2.x and 3.x); V2Writer uses influxdb-client's
v2 write path for deployments with token auth. Errors are sorted by what they
mean, so the caller knows whether to retry, split or dead-letter.

Credentials never travel in a URL (where access logs, proxies and httpx's own
INFO line would show them): a user and password go as HTTP basic auth, which
every InfluxDB 1.x release and the v1 compatibility API of 2.x/3.x accept, a
token as an `Authorization: Token ...` header.
"""

import gzip
from typing import Any, Protocol

import httpx
import orjson

from telemetry_shared.settings import Settings


class InfluxError(Exception):
    """A write or query InfluxDB did not accept."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class InfluxUnavailable(InfluxError):
    """Worth retrying: not reachable, timed out, 429, 5xx."""


class InfluxRejected(InfluxError):
    """The request itself is at fault (4xx other than 413 and 429): do not retry.
    A 400 from 1.x (422 from 2.x) is a partial write: the good lines were kept."""


class InfluxTooLarge(InfluxError):
    """413: split the batch."""


def _auth(user: str, password: str) -> httpx.BasicAuth | None:
    return httpx.BasicAuth(user, password) if user else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 300:
        return
    message = f"InfluxDB answered {response.status_code}: {response.text[:300]}"
    if response.status_code == 413:
        raise InfluxTooLarge(message, 413)
    if response.status_code == 429 or response.status_code >= 500:
        raise InfluxUnavailable(message, response.status_code, _retry_after(response))
    raise InfluxRejected(message, response.status_code)


class LineWriter(Protocol):
    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


class V1Writer:
    """POST /write?db=...&precision=ms, gzip-compressed."""

    def __init__(self, url: str, db: str, user: str = "", password: str = "", timeout_s: float = 10.0,
                 gzip_level: int = 1, rp: str = ""):
        self.params = {"db": db, "precision": "ms"}
        if rp:  # a named retention policy (e.g. the rollups'), else the database's default
            self.params["rp"] = rp
        self.gzip_level = gzip_level
        self.http = httpx.Client(base_url=url, timeout=timeout_s, auth=_auth(user, password))

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level:
            body = gzip.compress(body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self.http.post("/write", params=self.params, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB not reachable: {exc!r}") from exc
        _raise_for(response)

    def close(self) -> None:
        self.http.close()


class V2Writer:
    """influxdb-client's synchronous v2 write of pre-formatted lines (InfluxDB 2.x/3.x, token auth)."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_s: float = 10.0):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000), enable_gzip=True)
        self.api = self.client.write_api(write_options=SYNCHRONOUS)
        self.bucket = bucket

    def write(self, lines: list[str]) -> None:
        from influxdb_client.rest import ApiException

        try:
            self.api.write(bucket=self.bucket, record=lines, write_precision="ms")
        except ApiException as exc:
            status = exc.status or 0
            message = f"InfluxDB answered {status}: {str(exc.body)[:300]}"
            retry_after = None
            if exc.headers and exc.headers.get("Retry-After"):
                retry_after = float(exc.headers["Retry-After"])
            if status == 413:
                raise InfluxTooLarge(message, 413) from exc
            if status == 429 or status >= 500 or status == 0:
                raise InfluxUnavailable(message, status, retry_after) from exc
            raise InfluxRejected(message, status) from exc
        except Exception as exc:  # urllib3 connection and timeout errors
            raise InfluxUnavailable(f"InfluxDB not reachable: {exc!r}") from exc

    def close(self) -> None:
        self.client.close()


def make_writer(settings: Settings) -> LineWriter:
    if settings.influx_token:
        return V2Writer(settings.influx_url, settings.influx_token, settings.influx_org,
                        settings.influx_bucket or settings.influx_db, settings.influx_timeout_s)
    return V1Writer(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password,
                    settings.influx_timeout_s)


class InfluxQL:
    """Reads through /query (every InfluxDB release serves it)."""

    def __init__(self, url: str, db: str, user: str = "", password: str = "", token: str = "", timeout_s: float = 10.0):
        # a token (2.x/3.x) is the whole credential; a user and password otherwise
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.db = db
        self.http = httpx.Client(base_url=url, timeout=timeout_s, headers=headers,
                                 auth=None if token else _auth(user, password))

    @classmethod
    def from_settings(cls, settings: Settings) -> "InfluxQL":
        return cls(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password,
                   settings.influx_token, settings.influx_timeout_s)

    def raw(self, q: str, method: str = "GET", epoch: str = "ms") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the `results` list. Raises InfluxError on any error."""
        params = {"db": self.db, "q": q, "epoch": epoch}
        try:
            if method == "POST":
                response = self.http.post("/query", params=params)
            else:
                response = self.http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB not reachable: {exc!r}") from exc
        _raise_for(response)
        # orjson: the open-data downloads' rollup points parse several times faster than with json
        results = orjson.loads(response.content).get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxRejected(f"InfluxQL error: {result['error']}", response.status_code)
        return results

    def series(self, q: str) -> list[dict[str, Any]]:
        """All series of the first statement: [{name, tags, columns, values}]."""
        results = self.raw(q)
        return results[0].get("series", []) if results else []

    def rows(self, q: str) -> list[dict[str, Any]]:
        """Rows of the first statement as dicts, with each series' tags merged in."""
        out = []
        for series in self.series(q):
            tags = series.get("tags", {})
            for values in series.get("values", []):
                out.append(dict(zip(series["columns"], values, strict=False)) | tags)
        return out

    def create_database(self, name: str | None = None) -> None:
        self.raw(f'CREATE DATABASE "{name or self.db}"', method="POST")

    def ping(self) -> bool:
        try:
            return self.http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.http.close()


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
