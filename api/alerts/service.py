"""The alert parts wired together: a change from anywhere (analytics over
MQTT, a person through a route, the escalation task) goes to the store, then
to the SSE streams and to the notifier."""

import asyncio
import logging
from contextlib import suppress

from api.alerts.hub import AlertHub
from api.alerts.notify import Notifier
from api.alerts.store import Alert, AlertStore
from api.alerts.subscriber import AlertSubscriber
from api.db import ApiDb
from telemetry_shared.settings import Settings

log = logging.getLogger("api.alerts")


class AlertService:
    def __init__(self, settings: Settings, db: ApiDb, subscribe: bool = True):
        self.settings = settings
        self.store = AlertStore(db)
        self.hub = AlertHub()
        self.notifier = Notifier(settings, db)
        self.subscriber = AlertSubscriber(settings, self.store, self.changed) if subscribe else None
        self.escalation_task: asyncio.Task | None = None

    def changed(self, alert: Alert, changes: list[str]) -> None:
        """Tell the streams and the notifier; safe from any thread."""
        self.hub.publish("alert", {"changes": changes, "alert": alert.model_dump()})
        for change in changes:
            self.notifier.submit(alert, change)

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        await self.notifier.start()
        if self.subscriber:
            self.subscriber.start()
        self.escalation_task = asyncio.create_task(self._escalate_forever())

    async def stop(self) -> None:
        if self.escalation_task:
            self.escalation_task.cancel()
            with suppress(asyncio.CancelledError):
                await self.escalation_task
        if self.subscriber:
            await asyncio.to_thread(self.subscriber.stop)
        await self.notifier.stop()

    def escalate_now(self) -> list[Alert]:
        escalated = self.store.escalate_due(int(self.settings.api_escalate_after_s * 1000))
        for alert in escalated:
            self.changed(alert, ["escalated"])
        return escalated

    async def _escalate_forever(self) -> None:
        period_s = min(30.0, max(0.2, self.settings.api_escalate_after_s / 4))
        while True:
            await asyncio.sleep(period_s)
            try:
                await asyncio.to_thread(self.escalate_now)
            except Exception:  # a failed round is logged; the next one tries again
                log.exception("escalation round failed")
