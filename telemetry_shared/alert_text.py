"""An alert's explanation in a reader's language, from its message: a catalogue key and raw parameters.

Analytics sends each alert's sentence as {"key": "explain.<what>", "params": {...}} (edge/contract.py)
besides its English text; whoever shows it to a person (the e-mails, the CLI, the analytics' own
English `explanation`) renders it here, and the control room does the same in its JavaScript with
the same catalogues. Parameters are raw (numbers, Unix ms, metric names) and formatted by their name:
readings with their metric's resolution and unit, `since` in the city's zone, metric names through
the catalogue, so "1,20 bar" and "20-03-2026 11.00 WIB" in Indonesian.
"""

from typing import Any

from telemetry_shared import i18n

READINGS = ("observed", "expected", "scale", "bound", "median", "low", "high")  # in the metric's unit
DECIMALS = {"z": 1, "minutes": 1, "percent": 0, "factor": 0, "window_min": 0, "n": 0}


def zone_name(time_zone: str, utc_offset_h: int) -> str:
    """The zone to show times in: the city's, or a fixed offset as an Etc/GMT zone (whose sign is inverted)."""
    if time_zone:
        return time_zone
    return f"Etc/GMT{-utc_offset_h:+d}" if utc_offset_h else "UTC"


def render(message: dict[str, Any] | None, lang: str, zone: str, fallback: str = "") -> str:
    """The sentence of `message` in `lang` (times in `zone`); `fallback` when there is no message."""
    if not message or not message.get("key"):
        return fallback
    params = message.get("params") or {}
    metric = params.get("metric") or ""
    fields: dict[str, object] = {}
    for name, value in params.items():
        if name in READINGS:
            fields[name] = i18n.reading(metric, value, lang)
        elif name in DECIMALS:
            fields[name] = i18n.number(value, DECIMALS[name], lang)
        elif name == "since":
            fields[name] = i18n.local_time(int(value), zone, lang)
        elif name == "metric":
            fields[name] = _metric(value, lang)
        elif name == "rule":
            fields["words"] = i18n.t(f"explain.words.{value}", lang).replace(f"explain.words.{value}", str(value))
        elif name == "reasons":  # ["out_of_bounds:6", ...]: why the ingest refused, how often
            fields[name] = ", ".join(_reason(item, lang) for item in value)
        elif name not in ("also", "affected", "usual_pct"):
            fields[name] = value
    usual = params.get("usual_pct")
    fields["usual"] = "" if usual is None else i18n.t("explain.peer_usual", lang, usual_pct=f"{usual:+.0f}")
    text = i18n.t(message["key"], lang, **fields)
    if params.get("also"):
        text = i18n.t("explain.also", lang, text=text)
    if params.get("affected"):
        text += i18n.t("explain.affected", lang, metrics=", ".join(_metric(m, lang) for m in params["affected"]))
    return text


PEER_MEMBER = " against its district"  # analytics.peers.member: a meter's peer finding within its incident
PEER = "peer:"  # the same in a message's `affected`: "peer:power_kw"


def _reason(item: str, lang: str) -> str:
    reason, _, count = item.rpartition(":")
    text = i18n.t(f"reason.{reason}", lang)
    return f"{reason.replace('_', ' ') if text == f'reason.{reason}' else text} ×{count}"


def _metric(metric: str, lang: str) -> str:
    if metric.startswith(PEER):
        return i18n.t("explain.peer_member", lang, metric=_metric(metric.removeprefix(PEER), lang))
    text = i18n.t(f"metric.{metric}", lang)
    return metric if text == f"metric.{metric}" else text
