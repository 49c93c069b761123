"""Notifications by webhook and e-mail, per recipient role and severity, with retries.

Rules come from CITY_API_NOTIFY_RULES, a JSON list such as
    [{"role": "operator", "min_severity": "warning", "webhook": "http://ops.example/hook"},
     {"role": "engineer", "min_severity": "critical", "email": "water-eng@example.org"}]
and are checked when the app starts, with errors that name the rule and key.
A notification goes out when an alert opens, reopens, rises in severity or
escalates, to every rule whose min_severity it reaches. Every delivery (sent
or failed after its retries) is recorded in `notifications`.
"""

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from api.alerts.store import SEVERITIES, Alert, rank
from api.auth import ROLES
from api.db import ApiDb, now_ms
from telemetry_shared.settings import Settings

log = logging.getLogger("api.notify")

NOTIFY_ON = ("opened", "reopened", "severity_raised", "escalated")
RULE_KEYS = {"role", "min_severity", "webhook", "email"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    t_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    role TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications (alert_id, seq);
"""


class NotifyRule(BaseModel):
    role: str
    min_severity: str = "warning"
    webhook: str = ""
    email: str = ""


class Delivery(BaseModel):
    seq: int
    alert_id: str
    t_ms: int
    reason: str
    role: str
    channel: str
    target: str
    status: str
    attempts: int
    error: str


def parse_rules(raw: list[dict[str, str]]) -> list[NotifyRule]:
    """Validate CITY_API_NOTIFY_RULES once, naming the rule and key at fault."""
    rules = []
    for index, item in enumerate(raw):
        where = f"CITY_API_NOTIFY_RULES[{index}]"
        unknown = set(item) - RULE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(RULE_KEYS)}")
        rule = NotifyRule(**item)
        if rule.role not in ROLES:
            raise ValueError(f"{where}.role: {rule.role!r} is not one of {', '.join(ROLES)}")
        if rule.min_severity not in SEVERITIES:
            raise ValueError(f"{where}.min_severity: {rule.min_severity!r} is not one of {', '.join(SEVERITIES)}")
        if not rule.webhook and not rule.email:
            raise ValueError(f"{where}: give a webhook, an email, or both")
        if rule.webhook and not rule.webhook.startswith(("http://", "https://")):
            raise ValueError(f"{where}.webhook: must be an http(s) URL")
        if rule.email and "@" not in rule.email:
            raise ValueError(f"{where}.email: {rule.email!r} is not an address")
        rules.append(rule)
    return rules


def mask(target: str) -> str:
    """Webhook URLs often carry a token: show and log only where they go."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"
    return target


def subject(alert: Alert, reason: str) -> str:
    return (f"[{alert.severity.upper()}] {alert.rule} at {alert.device} ({alert.district}): "
            f"{reason.replace('_', ' ')}")


def payload(alert: Alert, reason: str, role: str) -> dict[str, Any]:
    return {"reason": reason, "role": role, "subject": subject(alert, reason), "alert": alert.model_dump()}


class Notifier:
    def __init__(self, settings: Settings, db: ApiDb, attempts: int = 3, first_delay_s: float = 0.5):
        self.settings = settings
        self.rules = parse_rules(settings.api_notify_rules)
        self.db = db
        self.attempts = attempts
        self.first_delay_s = first_delay_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task] = set()
        self.http: httpx.AsyncClient | None = None
        db.script(SCHEMA)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.http = httpx.AsyncClient(timeout=5.0)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http:
            await self.http.aclose()

    def submit(self, alert: Alert, reason: str) -> None:
        """Send what the rules ask for this change; safe from any thread, returns at once."""
        if reason not in NOTIFY_ON or self.loop is None or self.loop.is_closed():
            return
        for rule in self.rules:
            if rank(alert.severity) < rank(rule.min_severity):
                continue
            if rule.webhook:
                self._spawn(self._deliver(alert, reason, rule.role, "webhook", rule.webhook))
            if rule.email:
                self._spawn(self._deliver(alert, reason, rule.role, "email", rule.email))

    def _spawn(self, coroutine: Any) -> None:
        def create() -> None:
            task = self.loop.create_task(coroutine)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            create()
        else:
            self.loop.call_soon_threadsafe(create)

    async def _deliver(self, alert: Alert, reason: str, role: str, channel: str, target: str) -> None:
        error = ""
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            try:
                if channel == "webhook":
                    await self._post(target, payload(alert, reason, role))
                else:
                    await asyncio.to_thread(self._mail, target, alert, reason)
                self._record(alert.id, reason, role, channel, target, "sent", attempt, "")
                return
            except Exception as exc:  # any failure of the far end is retried, then recorded
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("notification %s to %s failed (attempt %d): %s", channel, mask(target), attempt, error)
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
        self._record(alert.id, reason, role, channel, target, "failed", self.attempts, error)

    async def _post(self, url: str, body: dict[str, Any]) -> None:
        response = await self.http.post(url, json=body)
        if response.status_code >= 300:
            # not raise_for_status(): its message holds the URL, and with it the hook's token
            raise RuntimeError(f"webhook answered {response.status_code}")

    def _mail(self, to: str, alert: Alert, reason: str) -> None:
        s = self.settings
        if not s.smtp_host:
            raise RuntimeError("CITY_SMTP_HOST is not set")
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = to
        message["Subject"] = subject(alert, reason)
        message.set_content(
            f"{alert.explanation or alert.rule}\n\n"
            f"device {alert.device} ({alert.kind}) in {alert.district}\n"
            f"metric {alert.metric}: observed {alert.observed}, expected {alert.expected}\n"
            f"severity {alert.severity} (analytics said {alert.source_severity}, escalations {alert.escalation})\n"
            f"state {alert.state}, acknowledged: {alert.acknowledged_by or 'no'}\n")
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=5) as smtp:
            smtp.send_message(message)

    def _record(self, alert_id: str, reason: str, role: str, channel: str, target: str, status: str,
                attempts: int, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO notifications (alert_id, t_ms, reason, role, channel, target, status, attempts,"
                         " error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (alert_id, now_ms(), reason, role, channel, target, status, attempts, error))

    def deliveries(self, alert_id: str) -> list[Delivery]:
        rows = self.db.query("SELECT * FROM notifications WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [Delivery(**dict(row)) for row in rows]
