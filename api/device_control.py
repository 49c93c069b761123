"""The device side of the API: the provisioner and the one broker connection
(as svc-api-N's device-admin account) that publishes configs, reads retained
statuses and feeds live watchers. One per app, in ApiServices; the broker
link connects on first use, so an API without a broker still serves the rest."""

import threading

from fastapi import HTTPException

from telemetry_shared.device_link import DeviceLink, LinkError, admin_link
from telemetry_shared.provisioning import Provisioner
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings


class DeviceControl:
    def __init__(self, settings: Settings, registry: Registry):
        self.settings = settings
        self.lock = threading.Lock()
        self.link: DeviceLink | None = None
        self.provisioner = Provisioner(settings, registry, self._publish_config, self._control)

    def connected_link(self) -> DeviceLink:
        """The broker link, connected now if it was not; 503 when the broker cannot be reached."""
        with self.lock:
            if self.link is None:
                try:
                    self.link = admin_link(self.settings)
                except LinkError as exc:
                    raise HTTPException(503, f"the broker is not reachable for device admin: {exc}") from exc
            return self.link

    def _control(self, commands: list[dict]) -> list[dict]:
        """The broker's dynamic-security commands over the same link (provisioning maps the errors)."""
        try:
            link = self.connected_link()
        except HTTPException as exc:
            raise LinkError(str(exc.detail)) from exc
        return link.control(commands)

    def _publish_config(self, device_id: str, raw: bytes) -> None:
        try:
            self.connected_link().publish_config(device_id, raw)
        except LinkError as exc:
            raise HTTPException(503, str(exc)) from exc

    def stop(self) -> None:
        with self.lock:
            if self.link is not None:
                self.link.stop()
                self.link = None
