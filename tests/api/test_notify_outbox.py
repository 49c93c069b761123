"""The notification outbox against real far ends that go away: a local webhook
server and an aiosmtpd SMTP relay on loopback are both down for an outage,
the API is restarted in the middle of it, and every notification must reach
each of them exactly once after they return, signed.

What is scaled: the outage lasts CITY_TEST_OUTAGE_S seconds (default 6; the
issue's case is 600, run it with CITY_TEST_OUTAGE_S=600), and the settings
scale with it: the backoff cap is a tenth of the outage (60 s for 600 s), the
first retry 0.2 s, the give-up window five outages. The code path is the one a
deployment runs: the same outbox rows, claims, backoff and restart."""

import os
import time

from api.alerts.notify import ID_HEADER, SIGNATURE_HEADER, verify
from tests.api.harness import alert, wait_for
from tests.helpers.far_ends import SmtpInbox, WebhookReceiver

OUTAGE_S = float(os.environ.get("CITY_TEST_OUTAGE_S", "6"))
SECRET = "hook-signing-secret-0123456789"


def message_id(content: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in content.splitlines()
                if line.lower().startswith("message-id:"))


def test_webhook_and_smtp_down_and_api_restarted_every_notification_arrives_once(make_api, analytics, tmp_path):
    hook, inbox = WebhookReceiver(), SmtpInbox()
    rules = [{"role": "operator", "min_severity": "warning", "webhook": hook.url("/hook?t=x"), "secret": SECRET},
             {"role": "engineer", "min_severity": "warning", "email": "water-eng@tanjungpinang.example"}]
    settings = dict(api_notify_rules=rules, smtp_host="127.0.0.1", smtp_port=inbox.port,
                    api_db_path=tmp_path / "api.sqlite3", api_notify_retry_first_s=0.2,
                    api_notify_retry_max_s=OUTAGE_S / 10, api_notify_give_up_s=OUTAGE_S * 5,
                    api_notify_timeout_s=2.0, api_escalate_after_s=3600,
                    api_alarm_group_window_s=0)  # three alarms of one district would group: one notification
    try:
        start = time.monotonic()
        first = make_api(**settings)  # both far ends are down from the start
        for n in range(3):
            analytics.publish(alert(f"inc-out-{n}", device=f"wtr-000{n + 1}", severity="critical"))
        store = first.services.alerts.store
        wait_for(lambda: store.find()[1] == 3)
        notifier = first.services.alerts.notifier
        wait_for(lambda: notifier.counts()["pending"] == 6)  # written before any try
        wait_for(lambda: all(d.attempts >= 2 for n in range(3) for d in notifier.deliveries(f"inc-out-{n}")),
                 timeout_s=OUTAGE_S)

        time.sleep(max(0.0, OUTAGE_S / 2 - (time.monotonic() - start)))
        first.stop()  # the API goes away in the middle of the outage
        second = make_api(**settings)
        with second.client() as c:
            assert c.get("/ready").json()["notifications"]["pending"] == 6

        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - start)))
        hook.up()
        inbox.start()

        notifier = second.services.alerts.notifier
        wait_for(lambda: notifier.counts()["sent"] == 6, timeout_s=OUTAGE_S / 10 + 15)
        time.sleep(1.0)  # a duplicate would arrive now
    finally:
        hook.down()
        inbox.stop()

    ids = [int(post.headers[ID_HEADER]) for post in hook.received]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 3, ids  # each webhook notification exactly once
    for post in hook.received:
        signature = post.headers[SIGNATURE_HEADER]
        assert verify(SECRET, post.body, signature), "the signature must check with the rule's secret"
        assert not verify("another-secret-0123456789", post.body, signature)
        assert post.json()["notification_id"] == int(post.headers[ID_HEADER])
    alerts = sorted(post.json()["alert"]["id"] for post in hook.received)
    assert alerts == ["inc-out-0", "inc-out-1", "inc-out-2"]
    mail_ids = [message_id(m) for m in inbox.messages]
    assert len(mail_ids) == 3 and len(set(mail_ids)) == 3, mail_ids  # each e-mail exactly once
    assert sorted("wtr-0001" in m for m in inbox.messages) == [False, False, True]

    with second.client() as c:
        ready = c.get("/ready").json()
        detail = c.get("/alerts/inc-out-0", headers={"Authorization": f"Bearer {second.keys['operator']}"}).json()
    assert (ready["notifications"]["pending"], ready["notifications"]["sent"], ready["notifications"]["failed"]) == \
        (0, 6, 0)
    sent = {(n["channel"], n["status"]) for n in detail["notifications"]}
    assert sent == {("webhook", "sent"), ("email", "sent")}
    assert all(n["attempts"] >= 3 for n in detail["notifications"])  # tried while down, before and after restart


def test_a_hanging_webhook_times_out_and_the_retry_carries_the_same_id_and_body(make_api, analytics):
    hook = WebhookReceiver(slow_first_s=5).up()  # hangs past the API's timeout on its first call
    try:
        api = make_api(api_notify_rules=[{"role": "operator", "min_severity": "info", "secret": SECRET,
                                          "webhook": hook.url()}],
                       api_notify_timeout_s=1.0, api_notify_retry_first_s=0.2)
        analytics.publish(alert("inc-slow", severity="warning"))
        notifier = api.services.alerts.notifier
        delivery = wait_for(lambda: [d for d in notifier.deliveries("inc-slow") if d.status == "sent"], timeout_s=15)[0]
    finally:
        hook.down()
    assert delivery.attempts >= 2  # the hung try timed out after 1 s, a retry was answered
    assert len(hook.received) == delivery.attempts
    assert {post.headers[ID_HEADER] for post in hook.received} == {str(delivery.seq)}  # repeats can be dropped
    assert len({post.body for post in hook.received}) == 1


def test_a_row_claimed_by_a_process_that_died_is_due_again_when_its_lease_ends(tmp_path):
    from api.alerts.outbox import Outbox
    from api.db import ApiDb

    db = ApiDb(tmp_path / "api.sqlite3")
    outbox = Outbox(db)
    seq = outbox.add("inc-crash", "opened", "operator", "webhook", "http://x/hook", lambda seq, t: ("{}", ""))
    first = outbox.claim(8, lease_ms=300, skip=set())  # a process takes it ... and dies mid-try
    assert [c.seq for c in first] == [seq]
    assert outbox.claim(8, lease_ms=300, skip=set()) == []  # no one else sends it while the lease runs
    assert outbox.counts()["pending"] == 1
    time.sleep(0.35)
    again = outbox.claim(8, lease_ms=300, skip=set())  # the next process retries it
    assert [(c.seq, c.attempts) for c in again] == [(seq, 2)]
    outbox.sent(seq)
    outbox.sent(seq)  # a late second "sent" changes nothing
    assert outbox.counts() | {"oldest_pending_s": 0} == {"pending": 0, "sent": 1, "failed": 0, "oldest_pending_s": 0}
    db.close()


def test_ended_notifications_past_the_keep_window_are_pruned_and_pending_ones_stay(tmp_path):
    from api.alerts.notify import Notifier
    from api.db import ApiDb, now_ms
    from telemetry_shared.settings import Settings

    db = ApiDb(tmp_path / "api.sqlite3")
    notifier = Notifier(Settings(data_dir=tmp_path, api_notify_keep_days=30), db)
    outbox = notifier.outbox
    body = lambda seq, t: ("{}", "")  # noqa: E731
    old_sent, old_failed, old_pending, new_sent = (
        outbox.add(f"inc-{n}", "opened", "operator", "webhook", "http://x/hook", body) for n in range(4))
    outbox.sent(old_sent)
    outbox.failed(old_failed, "gave up")
    outbox.sent(new_sent)
    forty_days_ago = now_ms() - 40 * 86_400_000
    with db.transaction() as conn:  # three rows written 40 days ago; one still owed
        conn.execute("UPDATE notifications SET t_ms = ? WHERE seq IN (?, ?, ?)",
                     (forty_days_ago, old_sent, old_failed, old_pending))
    notifier._prune_now_and_then()
    kept = [row["seq"] for row in db.query("SELECT seq FROM notifications ORDER BY seq")]
    assert kept == [old_pending, new_sent]  # an old row still owed is never dropped
    assert outbox.counts()["pending"] == 1
    with db.transaction() as conn:
        conn.execute("UPDATE notifications SET t_ms = ? WHERE seq = ?", (forty_days_ago, new_sent))
    notifier._prune_now_and_then()  # within the hour: no second pass
    assert len(db.query("SELECT seq FROM notifications")) == 2
    db.close()
