"""Notifications by webhook and e-mail, per recipient role and severity, through a persistent outbox.

Rules come from CITY_API_NOTIFY_RULES, a JSON list such as
    [{"role": "operator", "min_severity": "warning", "webhook": "https://ops.example/hook", "secret": "..."},
     {"role": "engineer", "min_severity": "critical", "email": "water-eng@example.org"}]
and are checked when the app starts, with errors that name the rule and key.
A notification goes out when an alert opens, reopens, rises in severity or
escalates, to every rule whose min_severity it reaches.

Every notification is first written `pending` in the outbox (api/alerts/outbox.py)
with the exact body to send; a delivery loop then tries it, and on failure again
with doubling delays capped at CITY_API_NOTIFY_RETRY_MAX_S, until it is sent or
CITY_API_NOTIFY_GIVE_UP_S have passed since it was written (then `failed`). A
restarted API carries on with what is pending. Delivery is at least once: a
receiver that must act once keys on the notification id (X-City-Notification-Id,
`notification_id` in the body, the Message-ID of an e-mail).

A webhook body is signed with its rule's secret:
    X-City-Signature: sha256=<hex HMAC-SHA256 of the raw request body, keyed with the rule's secret>
"""

import asyncio
import hashlib
import hmac
import json
import logging
import smtplib
from contextlib import suppress
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from api.alerts.outbox import Claimed, Delivery, Outbox
from api.alerts.store import SEVERITIES, Alert, rank
from api.auth import ROLES
from api.db import ApiDb, now_ms
from telemetry_shared import alert_text, i18n
from telemetry_shared.influx import make_writer
from telemetry_shared.settings import Settings

log = logging.getLogger("api.notify")

NOTIFY_ON = ("opened", "reopened", "severity_raised", "escalated")
RULE_KEYS = {"role", "min_severity", "webhook", "email", "secret", "language"}
SIGNATURE_HEADER = "X-City-Signature"
ID_HEADER = "X-City-Notification-Id"
CONCURRENCY = 8  # tries in flight at once; the rest wait their turn in the outbox
IDLE_POLL_S = 5.0  # a second API process's new rows are seen within this
STATS_EVERY_S = 15.0  # how often the counts go to InfluxDB (`notify_stats`)
PRUNE_EVERY_S = 3600.0  # how often ended notifications past CITY_API_NOTIFY_KEEP_DAYS are deleted

__all__ = ["Delivery", "Notifier", "NotifyRule", "mask", "parse_rules", "sign", "verify"]


class NotifyRule(BaseModel):
    role: str
    min_severity: str = "warning"
    webhook: str = ""
    email: str = ""
    secret: str = ""
    language: str = ""  # of the e-mail: id or en; empty: the city profile's default language


def parse_rules(raw: list[dict[str, str]], production: bool = False) -> list[NotifyRule]:
    """Validate CITY_API_NOTIFY_RULES once, naming the rule and key at fault (never a secret's value)."""
    rules = []
    for index, item in enumerate(raw):
        where = f"CITY_API_NOTIFY_RULES[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be an object with keys {sorted(RULE_KEYS)}")
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
        if rule.language and rule.language not in i18n.LANGUAGES:
            raise ValueError(f"{where}.language: {rule.language!r} is not one of {', '.join(i18n.LANGUAGES)}")
        if rule.webhook and production and len(rule.secret) < 16:
            raise ValueError(f"{where}.secret: a webhook needs a signing secret of 16 characters or more "
                             "in production")
        rules.append(rule)
    return rules


def sign(secret: str, body: bytes) -> str:
    """The X-City-Signature value: `sha256=` and the hex HMAC-SHA256 of the body keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute over the raw body and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


def mask(target: str) -> str:
    """Webhook URLs often carry a token: show and log only where they go."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"
    return target


def subject(alert: Alert, reason: str, lang: str = "en") -> str:
    return i18n.t("mail.subject", lang, severity=i18n.t(f"severity.{alert.severity}", lang).upper(),
                  rule=_rule(alert.rule, lang), device=alert.device, district=alert.district,
                  reason=i18n.t(f"mail.reason.{reason}", lang))


def _rule(rule: str, lang: str) -> str:
    text = i18n.t(f"rule.{rule}", lang)
    return rule.replace("_", " ") if text == f"rule.{rule}" else text


def payload(alert: Alert, reason: str, role: str) -> dict[str, Any]:
    return {"reason": reason, "role": role, "subject": subject(alert, reason), "alert": alert.model_dump()}


def mail_text(alert: Alert, lang: str = "en", zone: str = "UTC", district_name: str = "") -> str:
    """The e-mail's body in lang: readings with their metric's resolution and unit, times in the city's zone."""
    fields = {
        "rule": _rule(alert.rule, lang), "device": alert.device, "kind": i18n.t(f"kind.{alert.kind}", lang),
        "district": district_name or alert.district, "metric": i18n.t(f"metric.{alert.metric}", lang),
        "observed": i18n.reading(alert.metric, alert.observed, lang),
        "expected": i18n.reading(alert.metric, alert.expected, lang),
        "severity": i18n.t(f"severity.{alert.severity}", lang),
        "source_severity": i18n.t(f"severity.{alert.source_severity}", lang), "escalation": alert.escalation,
        "state": i18n.t(f"state.{alert.state}", lang), "since": i18n.local_time(alert.started_ms, zone, lang),
        "acknowledged": alert.acknowledged_by or i18n.t("mail.no", lang),
        # the engine's sentence in the reader's language; an alert from an older sender has only its English
        "explanation": alert_text.render(alert.message, lang, zone, alert.explanation if lang == "en" else ""),
    }
    return i18n.t("mail.body", lang, **fields).strip() + "\n"


def backoff_s(attempts: int, first_s: float, cap_s: float) -> float:
    """The wait after the `attempts`-th failed try: first_s, doubling, never more than cap_s."""
    return min(cap_s, first_s * 2 ** min(attempts - 1, 40))


class Notifier:
    """Writes notifications to the outbox and delivers them from one asyncio task."""

    def __init__(self, settings: Settings, db: ApiDb):
        self.settings = settings
        self.rules = parse_rules(settings.api_notify_rules, production=settings.environment == "production")
        self.outbox = Outbox(db)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self.tasks: set[asyncio.Task] = set()
        self.in_flight: set[int] = set()
        self.http: httpx.AsyncClient | None = None
        self.pruned_ms = 0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.http = httpx.AsyncClient(timeout=self.settings.api_notify_timeout_s, follow_redirects=False)
        self._spawn(self._deliver_forever())
        self._spawn(self._stats_forever())

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http:
            await self.http.aclose()

    # ------------------------------------------------------------ writing

    def submit(self, alert: Alert, reason: str) -> list[int]:
        """Write what the rules ask for this change to the outbox; safe from any thread.
        Returns the new notifications' ids. The delivery loop is woken, not awaited."""
        if reason not in NOTIFY_ON:
            return []
        added = []
        for rule in self.rules:
            if rank(alert.severity) < rank(rule.min_severity):
                continue
            if rule.webhook:
                added.append(self.outbox.add(alert.id, reason, rule.role, "webhook", rule.webhook,
                                             self._webhook_body(alert, reason, rule)))
            if rule.email:
                added.append(self.outbox.add(alert.id, reason, rule.role, "email", rule.email,
                                             self._mail_body(alert, reason, rule)))
        if added:
            self._wake()
        return added

    def _webhook_body(self, alert: Alert, reason: str, rule: NotifyRule) -> Any:
        def render(seq: int, t_ms: int) -> tuple[str, str]:
            body = json.dumps({"notification_id": seq, "created_ms": t_ms} | payload(alert, reason, rule.role))
            return body, sign(rule.secret, body.encode()) if rule.secret else ""
        return render

    def _mail_body(self, alert: Alert, reason: str, rule: NotifyRule) -> Any:
        city = self.settings.city
        lang = rule.language or city.spec.default_language
        try:
            district = city.district(alert.district).name(lang)
        except KeyError:
            district = alert.district
        def render(seq: int, t_ms: int) -> tuple[str, str]:
            return json.dumps({"notification_id": seq, "subject": subject(alert, reason, lang),
                               "text": mail_text(alert, lang, city.spec.time_zone, district)}), ""
        return render

    def _wake(self) -> None:
        loop, wake = self.loop, self.wake
        if loop is None or wake is None or loop.is_closed():
            return  # no delivery loop in this process: a running API picks the rows up
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _spawn(self, coroutine: Any) -> asyncio.Task:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ------------------------------------------------------------ delivering

    @property
    def lease_ms(self) -> int:
        """How long a claimed row is ours: longer than any one try can take (SMTP may wait twice)."""
        return int((3 * self.settings.api_notify_timeout_s + 30) * 1000)

    async def _deliver_forever(self) -> None:
        while True:
            self.wake.clear()
            try:
                claimed = await asyncio.to_thread(self.outbox.claim, CONCURRENCY - len(self.in_flight),
                                                  self.lease_ms, set(self.in_flight))
                for row in claimed:
                    self.in_flight.add(row.seq)
                    self._spawn(self._try(row))
                wait_s = await asyncio.to_thread(self._idle_s)
            except Exception:  # a failed round (the disk, the database) is logged; the next one tries again
                log.exception("notification round failed")
                wait_s = IDLE_POLL_S
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait_s)

    def _idle_s(self) -> float:
        """Sleep until the next row is due, a try ends, or a new row arrives (whichever is first)."""
        if len(self.in_flight) >= CONCURRENCY:
            return IDLE_POLL_S
        due = self.outbox.next_due_ms()
        if due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, (due - now_ms()) / 1000))

    async def _try(self, row: Claimed) -> None:
        s = self.settings
        try:
            if row.channel == "webhook":
                await self._post(row)
            else:
                await asyncio.to_thread(self._mail, row)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.outbox.release, row.seq)
            raise
        except Exception as exc:  # any failure of the far end is retried until the give-up window ends
            error = f"{type(exc).__name__}: {exc}"[:300]
            age_s = (now_ms() - row.t_ms) / 1000
            delay_s = backoff_s(row.attempts, s.api_notify_retry_first_s, s.api_notify_retry_max_s)
            if age_s + delay_s > s.api_notify_give_up_s:
                log.error("notification %d by %s to %s failed for good after %d tries: %s", row.seq, row.channel,
                          mask(row.target), row.attempts, error)
                await asyncio.to_thread(self.outbox.failed, row.seq, error)
            else:
                log.warning("notification %d by %s to %s failed (try %d, next in %.1f s): %s", row.seq,
                            row.channel, mask(row.target), row.attempts, delay_s, error)
                await asyncio.to_thread(self.outbox.retry_at, row.seq, now_ms() + int(delay_s * 1000), error)
        else:
            await asyncio.to_thread(self.outbox.sent, row.seq)
        finally:
            self.in_flight.discard(row.seq)
            self.wake.set()

    async def _post(self, row: Claimed) -> None:
        headers = {"Content-Type": "application/json", ID_HEADER: str(row.seq)}
        if row.signature:
            headers[SIGNATURE_HEADER] = row.signature
        response = await self.http.post(row.target, content=row.body.encode(), headers=headers)
        if response.status_code >= 300:
            # not raise_for_status(): its message holds the URL, and with it the hook's token
            raise RuntimeError(f"webhook answered {response.status_code}")

    def _mail(self, row: Claimed) -> None:
        s = self.settings
        if not s.smtp_host:
            raise RuntimeError("CITY_SMTP_HOST is not set")
        body = json.loads(row.body)
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = row.target
        message["Subject"] = body["subject"]
        # the same id on every try: a relay or mailbox that saw it already can drop the repeat
        message["Message-ID"] = f"<notification-{row.seq}-{row.t_ms}@{s.smtp_from.rpartition('@')[2] or 'city'}>"
        message.set_content(body["text"])
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.api_notify_timeout_s) as smtp:
            smtp.send_message(message)

    # ------------------------------------------------------------ counting

    def counts(self) -> dict[str, Any]:
        return self.outbox.counts()

    def deliveries(self, alert_id: str) -> list[Delivery]:
        return self.outbox.deliveries(alert_id)

    def _prune_now_and_then(self) -> None:
        """Once an hour, delete ended notifications older than the keep window."""
        now = now_ms()
        if now - self.pruned_ms < PRUNE_EVERY_S * 1000:
            return
        self.pruned_ms = now
        try:
            gone = self.outbox.prune(now - int(self.settings.api_notify_keep_days * 86_400_000))
        except Exception:  # the disk or the database: the next hour tries again
            log.exception("could not prune the notification outbox")
            return
        if gone:
            log.info("pruned %d ended notifications older than %g days", gone, self.settings.api_notify_keep_days)

    async def _stats_forever(self) -> None:
        """The counts as `notify_stats` in InfluxDB, for the Device health dashboard."""
        writer = None
        try:
            while True:
                await asyncio.sleep(STATS_EVERY_S)
                await asyncio.to_thread(self._prune_now_and_then)
                try:
                    writer = writer or make_writer(self.settings)
                    await asyncio.to_thread(writer.write, [stats_line(self.counts(), now_ms())])
                except Exception as exc:  # InfluxDB down: the counts are still in /ready and /metrics
                    log.debug("could not write notify_stats: %s", type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()


def stats_line(counts: dict[str, Any], t_ms: int) -> str:
    return (f"notify_stats pending={counts['pending']}i,sent={counts['sent']}i,failed={counts['failed']}i,"
            f"oldest_pending_s={float(counts['oldest_pending_s'])} {t_ms}")
