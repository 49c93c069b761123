"""The API client behind `city device`: every command goes through the API
(CITY_API_URL, CITY_API_TOKEN), so a technician in the field needs a token,
not the server's files."""

import json
from collections.abc import Iterator
from typing import Any

import httpx

from telemetry_cli.common import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    say,
)
from telemetry_shared.settings import Settings

_EXIT_BY_STATUS = {400: EXIT_INVALID, 401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT,
                   413: EXIT_INVALID, 422: EXIT_INVALID, 503: EXIT_UNAVAILABLE}


_PLURAL = {"water": "dmas", "power": "feeders"}  # the API's path for each utility's networks


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def exit_code(self) -> int:
        if self.status is None:
            return EXIT_UNAVAILABLE
        return _EXIT_BY_STATUS.get(self.status, EXIT_FAILED if self.status < 500 else EXIT_UNAVAILABLE)


class DeviceApi:
    def __init__(self, base_url: str, token: str, timeout_s: float = 30.0):
        if not token:
            raise ApiError(say("api.no_token"), 401)
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def from_settings(cls, settings: Settings) -> "DeviceApi":
        return cls(settings.api_url, settings.api_token)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(say("api.no_answer", url=self.http.base_url, error=exc)) from exc
        if response.is_error:
            raise ApiError(_message(response), response.status_code)
        return response.json()

    def add(self, fields: dict) -> dict:
        return self._call("POST", "/devices", json=fields)

    def list(self, **filters: Any) -> dict:
        return self._call("GET", "/devices", params={k: v for k, v in filters.items() if v is not None})

    def get(self, device_id: str) -> dict:
        return self._call("GET", f"/devices/{_quote(device_id)}")

    def rotate(self, device_id: str) -> dict:
        return self._call("POST", f"/devices/{_quote(device_id)}/rotate")

    def retire(self, device_id: str) -> dict:
        return self._call("POST", f"/devices/{_quote(device_id)}/retire")

    def set_config(self, device_id: str, config: dict) -> dict:
        return self._call("PUT", f"/devices/{_quote(device_id)}/config", json=config)

    def networks(self, utility: str) -> dict:
        """{data, count}: every DMA (utility water) or feeder (power)."""
        return self._call("GET", f"/network/{_PLURAL[utility]}")

    def network(self, utility: str, network_id: str) -> dict:
        return self._call("GET", f"/network/{_PLURAL[utility]}/{_quote(network_id)}")

    def set_network(self, utility: str, network_id: str, body: dict) -> dict:
        return self._call("PUT", f"/network/{_PLURAL[utility]}/{_quote(network_id)}", json=body)

    def remove_network(self, utility: str, network_id: str) -> dict:
        return self._call("DELETE", f"/network/{_PLURAL[utility]}/{_quote(network_id)}")

    def live(self, device_id: str, timeout_s: float, max_events: int = 0) -> Iterator[tuple[str, dict]]:
        """(event, data) pairs from the device's live stream, until `end`."""
        params = {"timeout_s": timeout_s, "max_events": max_events}
        try:
            with self.http.stream("GET", f"/devices/{_quote(device_id)}/live", params=params,
                                  timeout=httpx.Timeout(30.0, read=30.0)) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(_message(response), response.status_code)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ApiError(say("api.stream_broke", url=self.http.base_url, error=exc)) from exc


def _quote(device_id: str) -> str:
    from urllib.parse import quote

    return quote(device_id, safe="")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body.get("detail") or body)[:500]
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
