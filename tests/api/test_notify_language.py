"""Alert e-mails in the city's languages: the words from the same catalogues as the pages, readings by
their metric's resolution and unit, times in the city's zone; the language per rule, else the city's."""

import json

import pytest

from api.alerts.notify import Notifier, mail_text, parse_rules, subject
from api.alerts.store import Alert
from api.db import ApiDb
from telemetry_shared import i18n
from tests.conftest import make_settings

STARTED_MS = 1_773_979_200_000  # 2026-03-20 04:00 UTC: 11.00 WIB


def _alert() -> Alert:
    return Alert(id="inc-1", device="wtr-0001", kind="water", district="tanjungpinang-barat", metric="pressure_bar",
                 rule="pressure_low", state="active", severity="critical", source_severity="warning", escalation=1,
                 peak_severity="critical", score=0.99, observed=1.2, expected=3.4013067988169,
                 explanation="pressure 1.2 bar, 65 % below the usual 3.4 bar", started_ms=STARTED_MS,
                 updated_ms=STARTED_MS, received_ms=STARTED_MS, changed_ms=STARTED_MS, acknowledged=False,
                 acknowledged_by="", acknowledged_ms=None, assignee="", resolved=False, resolved_by="",
                 resolved_ms=None, escalated_ms=None)


def test_an_indonesian_mail_reads_as_indonesian():
    text = mail_text(_alert(), "id", "Asia/Jakarta", "Tanjungpinang Barat")
    assert text.startswith("tekanan rendah: tekanan 1,20 bar, biasanya 3,40 bar\n")
    assert "perangkat wtr-0001 (air) di Tanjungpinang Barat" in text
    assert "sejak 20-03-2026 11.00 WIB" in text and "3.4013" not in text
    assert subject(_alert(), "escalated", "id") == ("[KRITIS] tekanan rendah di wtr-0001 (tanjungpinang-barat): "
                                                    "dieskalasi, belum diterima")


def test_an_english_mail_keeps_the_engine_s_explanation():
    text = mail_text(_alert(), "en", "Pacific/Honolulu")
    assert text.startswith("pressure low: pressure 1.20 bar, expected 3.40 bar\npressure 1.2 bar, 65 % below")
    assert "since 2026-03-19 18:00 HST" in text


def test_numbers_in_local_form():
    assert i18n.number(1234.5, 1, "id") == "1.234,5" and i18n.number(1234.5, 1, "en") == "1,234.5"
    assert i18n.reading("voltage_v", 229.87, "id") == "229,9 V"


def test_the_rule_language_is_checked_and_defaults_to_the_city_s(tmp_path):
    with pytest.raises(ValueError, match=r"CITY_API_NOTIFY_RULES\[0\].language: 'fr'"):
        parse_rules([{"role": "operator", "email": "ops@example.org", "language": "fr"}])
    rules = [{"role": "operator", "min_severity": "info", "email": "ops@example.org"},
             {"role": "engineer", "min_severity": "info", "email": "eng@example.org", "language": "en"}]
    settings = make_settings(tmp_path, api_notify_rules=rules)
    notifier = Notifier(settings, ApiDb(tmp_path / "api.sqlite3"))
    assert len(notifier.submit(_alert(), "opened")) == 2
    mails = {row.target: json.loads(row.body) for row in notifier.outbox.claim(10, 60_000, set())}
    assert mails["ops@example.org"]["subject"].startswith("[KRITIS] tekanan rendah")  # Tanjungpinang: id first
    assert "Tanjungpinang Barat" in mails["ops@example.org"]["text"]
    assert mails["eng@example.org"]["subject"].startswith("[CRITICAL] pressure low")


def test_the_shell_locale_picks_indonesian(monkeypatch):
    monkeypatch.delenv("CITY_LANGUAGE", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "id_ID.UTF-8")
    assert i18n.language() == "id"
    monkeypatch.setenv("CITY_LANGUAGE", "en")
    assert i18n.language() == "en"


def _engine_alert(tmp_path, **params) -> Alert:
    """An alert as analytics sends it (its message, over the wire contract) and the API stores it."""
    from analytics.explain import explain
    from api.alerts.store import AlertStore
    from edge import contract

    message = explain("pressure_bar", "pressure_low", 0.62, 3.4, None, None, STARTED_MS)
    message["params"] |= params
    wire = {"id": "inc-9", "device": "wtr-0009", "kind": "water", "district": "tanjungpinang-barat",
            "metric": "pressure_bar", "rule": "pressure_low", "state": "active", "severity": "critical",
            "score": 0.97, "observed": 0.62, "expected": 3.4, "started_ms": STARTED_MS, "updated_ms": STARTED_MS,
            "explanation": "English words", "message": message}
    store = AlertStore(ApiDb(tmp_path / "api.sqlite3"))
    alert, _ = store.apply(contract.decode_alert(contract.encode_alert(wire)))
    return alert


def test_an_indonesian_reader_gets_the_engine_s_explanation_in_indonesian(tmp_path):
    alert = _engine_alert(tmp_path, affected=["pressure_bar", "peer:flow_lps"])
    assert alert.message["key"] == "explain.limit_below"
    text = mail_text(alert, "id", "Asia/Jakarta", "Tanjungpinang Barat")
    assert "tekanan 0,62 bar di bawah batas minimum 1,00 bar (Ofwat DG2" in text
    assert "sejak 20-03-2026 11.00 WIB." in text
    assert "Terdampak: tekanan, debit dibanding wilayahnya." in text
    assert "English words" not in text and "below the minimum" not in text
    english = mail_text(alert, "en", "Asia/Jakarta")
    assert "pressure 0.62 bar is below the minimum 1.00 bar (Ofwat DG2" in english
    assert "since 2026-03-20 11:00 WIB." in english and "Affected: pressure, flow against its district." in english


def test_an_alert_from_an_older_sender_has_no_message_and_keeps_its_english(tmp_path):
    from edge import contract

    old = {"v": 1, "id": "inc-1", "device": "wtr-0001", "kind": "water", "district": "x", "metric": "pressure_bar",
           "rule": "pressure_low", "state": "active", "severity": "warning", "score": 0.5, "observed": 1.0,
           "expected": 2.0, "started_ms": 1, "updated_ms": 2, "explanation": "old words"}
    assert contract.decode_alert(json.dumps(old).encode())["message"] is None
    assert "old words" in mail_text(_alert().model_copy(update={"explanation": "old words"}), "en")
    assert "old words" not in mail_text(_alert().model_copy(update={"explanation": "old words"}), "id")


@pytest.mark.parametrize("message", [
    "text", {"key": "Explain.X"}, {"key": "explain.x", "params": []}, {"key": "explain.x", "params": {"a": {}}},
    {"key": "explain.x", "params": {"a": [1]}}, {"key": "explain.x", "params": {"a": "x" * 201}},
    {"key": "explain.x", "params": {str(n): n for n in range(17)}}, {"key": "x" * 65},
])
def test_a_malformed_message_is_refused_by_the_contract(message):
    from edge import contract

    body = {"v": 1, "id": "inc-1", "device": "wtr-0001", "kind": "water", "district": "x", "metric": "m",
            "rule": "r", "state": "active", "severity": "warning", "score": 0.5, "started_ms": 1, "updated_ms": 2,
            "explanation": "", "message": message}
    with pytest.raises(contract.ContractError, match="bad_message"):
        contract.decode_alert(json.dumps(body).encode())


def test_the_indonesian_mail_in_the_outbox_carries_the_engine_s_indonesian_sentence(tmp_path):
    """What the operator's mailbox receives: the outbox body of a rule without a language (Tanjungpinang
    speaks Indonesian) holds the analytics sentence in Indonesian; an English rule's holds it in English."""
    rules = [{"role": "operator", "min_severity": "info", "email": "ops@example.org"},
             {"role": "engineer", "min_severity": "info", "email": "eng@example.org", "language": "en"}]
    notifier = Notifier(make_settings(tmp_path, api_notify_rules=rules), ApiDb(tmp_path / "notify.sqlite3"))
    assert len(notifier.submit(_engine_alert(tmp_path), "opened")) == 2
    mails = {row.target: json.loads(row.body) for row in notifier.outbox.claim(10, 60_000, set())}
    assert "tekanan 0,62 bar di bawah batas minimum 1,00 bar" in mails["ops@example.org"]["text"]
    assert "sejak 20-03-2026 11.00 WIB." in mails["ops@example.org"]["text"]
    assert "pressure 0.62 bar is below the minimum 1.00 bar" in mails["eng@example.org"]["text"]
