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
