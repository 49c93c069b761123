"""What the routes share: settings, the registry, the key store, InfluxDB,
the alert service, the latest-readings snapshot, the public answers' cache
and the device control (provisioner and broker link). Built once per app,
reached from a route through the `Services` dependency."""

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.alerts.service import AlertService
from api.auth import KeyStore
from api.citizens.complaints import ComplaintStore
from api.citizens.hospitals import HospitalStore
from api.citizens.linking import Linker
from api.citizens.protect import ContactVault
from api.db import ApiDb, now_ms
from api.device_control import DeviceControl
from api.latest_cache import LatestCache
from api.opendata.downloads import DownloadCache
from api.public_cache import PublicCache
from api.rights import StreamRights
from telemetry_shared.influx import InfluxQL
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

PUBLIC_CACHE_S = 10.0
EXPIRE_EVERY_S = 3600.0  # how often photos and closed complaints' contacts past their retention are deleted
log = logging.getLogger(__name__)


@dataclass
class ApiServices:
    settings: Settings
    db: ApiDb
    keys: KeyStore
    registry: Registry
    influx: InfluxQL
    alerts: AlertService
    latest: LatestCache
    public: PublicCache
    devices: DeviceControl
    rights: StreamRights
    hospitals: HospitalStore
    complaints: ComplaintStore
    linker: Linker
    downloads: DownloadCache
    rights_task: asyncio.Task | None = field(default=None, repr=False)
    expire_task: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings, subscribe: bool = True) -> "ApiServices":
        """subscribe=False: no MQTT alert subscriber (tools that only read the store)."""
        registry = Registry(settings.registry_file)
        registry.check_districts(settings.city)  # a device in a district the profile lacks: refuse to start
        db = ApiDb(settings.api_db_file)
        keys = KeyStore(db)
        influx = InfluxQL.from_settings(settings)
        alerts = AlertService(settings, db, subscribe, registry)
        old_keys = [k.strip() for k in settings.api_citizen_contact_old_keys.split(",") if k.strip()]
        complaints = ComplaintStore(db, ContactVault(settings.api_citizen_contact_key,
                                                settings.environment == "production", old_keys),
                                    settings.api_citizen_per_address_per_hour, settings.api_citizen_per_contact_per_day)
        linker = Linker(alerts, complaints, settings.api_citizen_link_window_s, settings.api_citizen_cluster_count,
                        settings.api_citizen_cluster_window_s)
        return cls(settings=settings, db=db, keys=keys, registry=registry, influx=influx,
                   alerts=alerts, latest=LatestCache(influx), complaints=complaints, linker=linker,
                   public=PublicCache(PUBLIC_CACHE_S), devices=DeviceControl(settings, registry),
                   rights=StreamRights(keys), hospitals=HospitalStore(db),
                   downloads=DownloadCache.of(settings))

    async def start(self) -> None:
        await self.alerts.start()
        self.rights_task = asyncio.create_task(self.rights.run())
        self.expire_task = asyncio.create_task(self._expire_forever())

    def expire_citizen_data(self) -> tuple[int, int]:
        """Retention of citizens' data now: (photos, contacts) deleted."""
        day_ms = 86_400_000
        photos, contacts = self.complaints.expire(now_ms(), int(self.settings.api_citizen_photo_keep_days * day_ms),
                                                  int(self.settings.api_citizen_contact_keep_days * day_ms))
        if photos or contacts:
            log.info("retention: %d complaint photos and %d closed complaints' contacts deleted", photos, contacts)
        return photos, contacts

    async def _expire_forever(self) -> None:
        while True:  # at start, then hourly: retention is counted in days
            try:
                await asyncio.to_thread(self.expire_citizen_data)
            except Exception:  # a locked or full database: next hour; the API serves on
                log.exception("retention of citizens' data failed")
            await asyncio.sleep(EXPIRE_EVERY_S)

    async def stop(self) -> None:
        for task in (self.rights_task, self.expire_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        await self.alerts.stop()
        self.devices.stop()

    def close(self) -> None:
        self.influx.close()
        self.registry.close()
        self.db.close()


async def get_services(request: Request) -> ApiServices:  # async: no worker-thread hop to read a field
    return request.app.state.services


Services = Annotated[ApiServices, Depends(get_services)]
