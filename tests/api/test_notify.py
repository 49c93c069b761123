"""Escalation and notifications with a real SMTP server (aiosmtpd) and a
local webhook receiver that fails its first calls, to prove the retries."""

from collections.abc import Iterator

import pytest

from api.alerts.notify import parse_rules
from tests.api.harness import alert, wait_for
from tests.helpers.far_ends import SmtpInbox, WebhookReceiver


@pytest.fixture
def smtp() -> Iterator[SmtpInbox]:
    inbox = SmtpInbox().start()
    yield inbox
    inbox.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().up()
    yield receiver
    receiver.down()


def url(receiver: WebhookReceiver) -> str:
    return receiver.url("/hook?token=s3cret")


def test_escalation_raises_severity_and_sends_reminders_by_webhook_and_mail(make_api, analytics, smtp, webhook):
    inbox = smtp
    webhook.fail_first = 1  # the first call fails: the retry delivers it
    rules = [{"role": "operator", "min_severity": "warning", "webhook": url(webhook)},
             {"role": "engineer", "min_severity": "critical", "email": "water-eng@tanjungpinang.example",
              "language": "en"}]
    api = make_api(api_escalate_after_s=0.6, api_notify_rules=rules, smtp_host="127.0.0.1",
                   smtp_port=inbox.port, api_notify_retry_first_s=0.1)
    analytics.publish(alert("inc-esc", severity="warning"))
    # opened (warning): webhook only; escalated once -> critical: webhook and mail
    wait_for(lambda: api.services.alerts.store.find(severity="critical")[1] == 1, timeout_s=5)
    wait_for(lambda: len(inbox.messages) >= 1 and len(webhook.received) >= 2, timeout_s=10)
    bodies = [post.json() for post in webhook.received]
    assert [body["reason"] for body in bodies][:2] == ["opened", "escalated"]
    assert bodies[1]["alert"]["severity"] == "critical"
    assert bodies[1]["alert"]["source_severity"] == "warning"
    recipients, content = inbox.recipients[0], inbox.messages[0]
    assert recipients == ["water-eng@tanjungpinang.example"]
    assert "Subject: [CRITICAL] pressure low at wtr-0001 (bukit-bestari): escalated" in content
    with api.client("operator") as c:
        detail = c.get("/alerts/inc-esc").json()
    assert "escalated" in [e["action"] for e in detail["audit"]]
    sent = [(n["channel"], n["reason"], n["status"], n["attempts"]) for n in detail["notifications"]]
    assert ("webhook", "opened", "sent", 2) in sent  # one failure, then delivered
    assert ("email", "escalated", "sent", 1) in sent
    assert all("s3cret" not in n["target"] for n in detail["notifications"])  # webhook tokens are not shown


def test_acknowledged_alerts_do_not_escalate(make_api, analytics):
    api = make_api(api_escalate_after_s=0.3)
    analytics.publish(alert("inc-quiet", severity="info"))
    wait_for(lambda: api.services.alerts.store.find()[1] == 1)
    with api.client("operator") as c:
        assert c.post("/alerts/inc-quiet/ack", json={"note": "on it"}).status_code == 200
    before = api.services.alerts.store.get("inc-quiet")  # it may have escalated before the ack on a busy machine
    import time
    time.sleep(1.0)
    after = api.services.alerts.store.get("inc-quiet")
    assert (after.escalation, after.severity) == (before.escalation, before.severity)


def test_a_dead_receiver_is_retried_with_capped_backoff_then_failed_for_good(make_api, analytics, webhook):
    webhook.fail_first = 1000
    api = make_api(api_notify_rules=[{"role": "operator", "min_severity": "info", "webhook": url(webhook)}],
                   api_notify_retry_first_s=0.05, api_notify_retry_max_s=0.2, api_notify_give_up_s=1.5)
    analytics.publish(alert("inc-dead", severity="critical"))
    notifier = api.services.alerts.notifier
    wait_for(lambda: notifier.deliveries("inc-dead") and notifier.deliveries("inc-dead")[0].status == "pending")
    deliveries = wait_for(lambda: [d for d in notifier.deliveries("inc-dead") if d.status == "failed"], timeout_s=10)
    # 0.05, 0.1, 0.2, 0.2, ... within 1.5 s: 8 or 9 tries, the waits capped at 0.2 s (fewer on a busy machine)
    assert 4 <= deliveries[0].attempts <= 11, deliveries[0].attempts
    assert webhook.calls == deliveries[0].attempts
    assert "503" in deliveries[0].error and "s3cret" not in deliveries[0].error
    assert notifier.counts() | {"oldest_pending_s": 0} == {"pending": 0, "sent": 0, "failed": 1,
                                                            "oldest_pending_s": 0}
    with api.client() as c:
        ready = c.get("/ready").json()
        metrics = c.get("/metrics").text
    assert ready["notifications"]["failed"] == 1 and ready["status"] == "ready"  # a far end down is not unready
    assert 'city_api_notifications{status="failed"} 1' in metrics


@pytest.mark.parametrize("rules,message", [
    ([{"role": "mayor", "webhook": "http://x"}], "CITY_API_NOTIFY_RULES[0].role"),
    ([{"role": "operator", "min_severity": "doom", "webhook": "http://x"}], "min_severity"),
    ([{"role": "operator"}], "give a webhook, an email, or both"),
    ([{"role": "operator", "webhook": "ftp://x"}], "must be an http(s) URL"),
    ([{"role": "operator", "email": "nobody"}], "is not an address"),
    ([{"role": "operator", "email": "a@b", "sms": "+62"}], "unknown keys ['sms']"),
    ([{"role": "operator", "webhook": "https://x", "secret": "short-MARKER"}], "CITY_API_NOTIFY_RULES[0].secret"),
])
def test_bad_notification_rules_fail_at_start_naming_the_key(rules, message):
    with pytest.raises(ValueError) as caught:
        parse_rules(rules, production=True)
    assert message in str(caught.value)
    assert "MARKER" not in str(caught.value)  # a secret's value is never in the error


def test_outbox_counts_reach_influxdb_for_the_dashboard(make_api, analytics, webhook, influx_db, monkeypatch):
    from api.alerts import notify

    monkeypatch.setattr(notify, "STATS_EVERY_S", 0.2)  # 15 s in service
    api = make_api(api_notify_rules=[{"role": "operator", "min_severity": "info", "webhook": url(webhook)}])
    analytics.publish(alert("inc-stats", severity="critical"))
    wait_for(lambda: api.services.alerts.notifier.counts()["sent"] == 1)
    rows = wait_for(lambda: [r for r in influx_db.rows('SELECT last("sent") AS sent, last("pending") AS pending, '
                                                       'last("failed") AS failed FROM "notify_stats"')
                             if r["sent"] == 1], timeout_s=10)
    assert (rows[0]["pending"], rows[0]["failed"]) == (0, 0)  # what the Device health panel plots
