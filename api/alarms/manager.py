"""Alarm management beside the alert lifecycle: shelving and maintenance that end by themselves,
the board's state (flood, stale, chattering, shelved, under maintenance) and the KPIs, also
written to InfluxDB (`alarm_kpis`) for Grafana."""

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from pydantic import BaseModel

from api.alarms import kpis as k
from api.alarms.maintenance import Maintenance, MaintenanceStore
from api.alarms.tuning import TuningStore
from api.alerts.store import Alert
from api.db import ApiDb, now_ms
from telemetry_shared.detector_tuning import DetectorTuningStore
from telemetry_shared.influx import make_writer
from telemetry_shared.settings import Settings

if TYPE_CHECKING:
    from api.alerts.service import AlertService

log = logging.getLogger("api.alarms")
KPI_WINDOW_MS = 3_600_000  # the InfluxDB point carries the last hour


class Flood(BaseModel):
    active: bool
    new_alarms: int  # annunciated within the window
    threshold: int
    window_s: float


class BoardState(BaseModel):
    flood: Flood
    stale: list[Alert]
    chattering: list[Alert]
    shelved: list[Alert]
    suppressed: int
    advisories: list[Alert]  # not alarms (priority advisory): kept and listed, never on the board
    maintenance: list[Maintenance]
    shelve_max_s: float


class AlarmManager:
    def __init__(self, settings: Settings, db: ApiDb, service: "AlertService"):
        self.settings = settings
        self.db = db
        self.service = service
        self.maintenance = MaintenanceStore(db)
        # approved detector changes go to the registry file, which the analytics engines read
        self.tuning = TuningStore(db, DetectorTuningStore(settings.registry_file), settings.local_zone,
                                  settings.utc_offset_hours)
        self.tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ reads

    def flood(self, now: int) -> Flood:
        window_ms = int(self.settings.api_alarm_flood_window_s * 1000)
        n = k.recent_annunciated(self.db, window_ms, now)
        threshold = self.settings.api_alarm_flood_count
        return Flood(active=n > threshold, new_alarms=n, threshold=threshold,
                     window_s=self.settings.api_alarm_flood_window_s)

    def state(self, now: int) -> BoardState:
        store = self.service.store
        limit = 1000  # lists for people to read: a board with more is broken anyway
        stale_before = now - int(self.settings.api_alarm_stale_after_s * 1000)
        stale = [a for a in store.find(limit=limit, resolved=False, state="active")[0] if a.started_ms <= stale_before]
        chattering = [a for a in store.find(limit=limit, resolved=False)[0] if a.chattering]
        shelved, _ = store.find(limit=limit, resolved=False, shelved=True)
        advisories, _ = store.find(limit=limit, resolved=False, state="active", priority="advisory")
        suppressed = self.db.query("SELECT count(*) FROM alerts WHERE resolved_ms IS NULL AND suppressed = 1")[0][0]
        return BoardState(flood=self.flood(now), stale=stale, chattering=chattering, shelved=shelved,
                          suppressed=suppressed, advisories=advisories,
                          maintenance=list(self.maintenance.active(now).values()),
                          shelve_max_s=self.settings.api_alarm_shelve_max_s)

    def kpis(self, since_ms: int, until_ms: int, now: int) -> k.AlarmKpis:
        s = self.settings
        return k.kpis(self.db, since_ms, until_ms, now, s.api_alarm_operator_positions, s.api_alarm_flood_count,
                      int(s.api_alarm_stale_after_s * 1000))

    def kpi_line(self, now: int) -> str:
        return k.influx_line(self.kpis(now - KPI_WINDOW_MS, now, now), self.flood(now).active)

    # ------------------------------------------------------------ what ends by itself

    def expire(self, now: int) -> None:
        """Shelving and maintenance whose time is up; every alarm that comes back is told to the streams."""
        for alert in self.service.store.unshelve_due(now):
            self.service.changed(alert, ["unshelved"])
        for maintenance, ids in self.maintenance.expire_due(now):
            self.maintenance_changed(maintenance, ids, "returned_to_service")

    def maintenance_changed(self, maintenance: Maintenance, alert_ids: list[str], change: str) -> None:
        self.service.hub.publish("maintenance", maintenance.model_dump())
        for alert_id in alert_ids:
            self.service.changed(self.service.store.get(alert_id), [change])

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._expire_forever()), asyncio.create_task(self._kpis_forever())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.api_alarm_check_s)
            try:
                await asyncio.to_thread(self.expire, now_ms())
            except Exception:  # a failed round is logged; the next one tries again
                log.exception("alarm expiry round failed")

    async def _kpis_forever(self) -> None:
        """The last hour's KPIs as an `alarm_kpis` point, at start and every api_alarm_kpi_every_s."""
        writer = None
        try:
            while True:
                try:
                    writer = writer or make_writer(self.settings)
                    line = await asyncio.to_thread(self.kpi_line, now_ms())
                    await asyncio.to_thread(writer.write, [line])
                except Exception as exc:  # InfluxDB down: the KPIs are still at GET /alarms/kpis
                    log.debug("could not write alarm_kpis: %s", type(exc).__name__)
                await asyncio.sleep(self.settings.api_alarm_kpi_every_s)
        finally:
            if writer is not None:
                writer.close()
