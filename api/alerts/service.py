"""The alert parts wired together: a change from anywhere (analytics over
MQTT, a person through a route, the escalation task) goes to the store, then
to the SSE streams and to the notifier."""

import asyncio
import logging
import time
from contextlib import suppress

from api.alarms.manager import AlarmManager
from api.alarms.policy import AlarmPolicy
from api.alerts.hub import AlertHub
from api.alerts.notify import Notifier
from api.alerts.sensorfault import SensorFaultWatcher
from api.alerts.store import Alert, AlertStore
from api.alerts.subscriber import AlertSubscriber
from api.db import ApiDb, now_ms
from telemetry_shared.influx import LineWriter, make_writer
from telemetry_shared.lineproto import alert_line
from telemetry_shared.registry import Registry
from telemetry_shared.settings import Settings

log = logging.getLogger("api.alerts")

ANNOTATION_RETRY_S = 30.0  # after InfluxDB failed, annotations wait this long rather than stall every round


class AlertService:
    def __init__(self, settings: Settings, db: ApiDb, subscribe: bool = True, registry: Registry | None = None):
        self.settings = settings
        self.store = AlertStore(db, AlarmPolicy(settings))
        self.alarms = AlarmManager(settings, db, self)
        self.hub = AlertHub()
        self.notifier = Notifier(settings, db)
        self.subscriber = AlertSubscriber(settings, self.store, self.changed) if subscribe else None
        self.sensor_faults = SensorFaultWatcher(
            settings.deadletter_file, registry, db, self.apply, settings.api_sensor_fault_rejects,
            settings.api_sensor_fault_window_s) if subscribe and registry is not None else None
        self.annotations: LineWriter | None = None
        self.annotation_retry_at = 0.0
        self.listeners: list = []  # called with (alert, changes) after each change (the complaint linker)
        self.escalation_task: asyncio.Task | None = None
        self.sensor_fault_task: asyncio.Task | None = None

    def changed(self, alert: Alert, changes: list[str]) -> None:
        """Tell the streams and the notifier; safe from any thread. An alarm held back (suppressed,
        chattering, shelved, grouped under a root) notifies no one: its root or its return does."""
        self.hub.publish("alert", {"changes": changes, "alert": alert.model_dump()})
        if alert.on_board or alert.resolved:
            for change in changes:
                self.notifier.submit(alert, change)
        if alert.chattering and {"opened", "reopened", "reactivated"} & set(changes):
            for held in self.store.hold_source(alert):
                self.hub.publish("alert", {"changes": ["chattering"], "alert": held.model_dump()})
        if "resolved" in changes and alert.resolution_cause:  # the cause is the group's: its children share it
            for child in self.store.resolve_group(alert):
                self.changed(child, ["resolved"])
                self.alarms.tuning.learn(child, now_ms())
        elif "resolved" in changes:
            for child in self.store.release_group(alert.id):
                self.changed(child, ["ungrouped"])
        for listener in self.listeners:
            try:
                listener(alert, changes)
            except Exception:  # a listener's failure never loses the alert
                log.exception("alert listener failed on %s", alert.id)

    def apply(self, message: dict) -> None:
        """An alert raised inside the API (a sensor fault): stored and told like one from analytics."""
        result = self.store.apply(message)
        if result is not None:
            self.changed(*result)
            self._annotate(message)

    def _annotate(self, message: dict) -> None:
        """The alert as a point of InfluxDB's `alerts` measurement, as analytics writes its own: best effort."""
        if time.monotonic() < self.annotation_retry_at:
            return
        try:
            self.annotations = self.annotations or make_writer(self.settings)
            self.annotations.write([alert_line(message)])
        except Exception as exc:  # the board and the notifications have it already; the annotation can wait
            self.annotation_retry_at = time.monotonic() + ANNOTATION_RETRY_S
            log.warning("alert %s not written to InfluxDB: %s", message["id"], type(exc).__name__)

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        await self.notifier.start()
        if self.subscriber:
            self.subscriber.start()
        self.escalation_task = asyncio.create_task(self._escalate_forever())
        await self.alarms.start()
        if self.sensor_faults:
            self.sensor_fault_task = asyncio.create_task(self._watch_sensor_faults_forever())

    async def stop(self) -> None:
        await self.alarms.stop()
        for task in (self.escalation_task, self.sensor_fault_task):
            if task:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self.sensor_faults:
            self.sensor_faults.close()
        if self.annotations is not None:
            self.annotations.close()
        if self.subscriber:
            await asyncio.to_thread(self.subscriber.stop)
        await self.notifier.stop()

    def escalate_now(self) -> list[Alert]:
        escalated = self.store.escalate_due(int(self.settings.api_escalate_after_s * 1000))
        for alert in escalated:
            self.changed(alert, ["escalated"])
        return escalated

    async def _watch_sensor_faults_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.api_sensor_fault_check_s)
            try:
                await asyncio.to_thread(self.sensor_faults.check, now_ms())
            except Exception:  # a failed round (the dead-letter file busy or damaged) is logged; the next one tries
                log.exception("sensor-fault round failed")

    async def _escalate_forever(self) -> None:
        period_s = min(30.0, max(0.2, self.settings.api_escalate_after_s / 4))
        while True:
            await asyncio.sleep(period_s)
            try:
                await asyncio.to_thread(self.escalate_now)
            except Exception:  # a failed round is logged; the next one tries again
                log.exception("escalation round failed")
