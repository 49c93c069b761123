"""What the routes share: settings, the registry, the key store, InfluxDB,
the alert store and its event hub. Built once per app, reached from a route
through the `Services` dependency."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from api.alerts.service import AlertService
from api.auth import KeyStore
from api.db import ApiDb
from telemetry_shared.influx import InfluxQL
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings


@dataclass
class ApiServices:
    settings: Settings
    db: ApiDb
    keys: KeyStore
    registry: Registry
    influx: InfluxQL
    alerts: AlertService
    extra: dict[str, Any] = field(default_factory=dict)  # room for other parts' shared objects

    @classmethod
    def open(cls, settings: Settings, subscribe: bool = True) -> "ApiServices":
        """subscribe=False: no MQTT alert subscriber (tools that only read the store)."""
        db = ApiDb(settings.api_db_file)
        return cls(settings=settings, db=db, keys=KeyStore(db), registry=Registry(settings.registry_file),
                   influx=InfluxQL.from_settings(settings), alerts=AlertService(settings, db, subscribe))

    async def start(self) -> None:
        await self.alerts.start()

    async def stop(self) -> None:
        await self.alerts.stop()

    def close(self) -> None:
        self.influx.close()
        self.registry.close()
        self.db.close()


def get_services(request: Request) -> ApiServices:
    return request.app.state.services


Services = Annotated[ApiServices, Depends(get_services)]
