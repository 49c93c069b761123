"""What an operator reads in an alert: what, observed against expected, how unusual, since when.

`explain` returns the sentence as a catalogue message ({"key", "params"}: edge/contract.py), so the
control room, the e-mails and the CLI render it in their reader's language
(telemetry_shared/alert_text.py); the alert's English `explanation` is rendered from the same message.
"""

from typing import Any

from analytics import peers
from analytics.config import DOMAIN_LIMITS, DetectorParams

# The statistical detectors' words (catalogue explain.words.<rule>); any other rule is a limit's or named.
DETECTOR_RULES = ("unusual_value", "level_shift", "off_daily_profile", "stuck_sensor", "drift")


def explain(metric: str, rule: str, observed: float | None, expected: float | None, scale: float | None,
            z: float | None, started_ms: int) -> dict[str, Any]:
    """The message of a finding: a catalogue key (explain.*) and its raw parameters.

    metric: the series ('' for a device-wide rule); rule: the rule behind the
    finding (a limit's, a statistical detector's, silent, clock_offset,
    night_flow_rise or the peer rule); observed, expected, scale, z: the
    finding's numbers (None when unknown: the sentence says less); started_ms:
    when the incident began (shown in the reader's local time).
    """
    def message(key: str, **params: Any) -> dict[str, Any]:
        return {"key": f"explain.{key}", "params": {"since": int(started_ms)} | params}

    if rule == "silent":
        return message("silent", factor=DetectorParams().silence_factor)
    if rule == "night_flow_rise":
        return message("night_flow_rise", metric="flow_lps", observed=observed, expected=expected)
    if rule == "clock_offset":
        return message("clock_offset", minutes=(observed or 0.0) / 60000)
    if observed is None:
        return message("normal", metric=metric)
    if rule == peers.RULE:  # expected: the district's median; scale: the meter's usual departure from it
        return _explain_peer(metric, observed, expected, scale, message)
    for limit in DOMAIN_LIMITS.get(metric, []):
        if limit.rule == rule:
            if limit.low is not None and observed < limit.low:
                return message("limit_below", metric=metric, observed=observed, bound=limit.low, source=limit.source)
            return message("limit_above", metric=metric, observed=observed, bound=limit.high, source=limit.source)
    if expected is None or scale is None or z is None:
        return message("detector", metric=metric, observed=observed, rule=rule)
    return message("detector_expected", metric=metric, observed=observed, expected=expected, scale=scale,
                   z=abs(z), rule=rule)


def _explain_peer(metric: str, observed: float, median: float | None, usual: float | None,
                  message: Any) -> dict[str, Any]:
    if median is None or median == 0:
        return message("peer_nomedian", metric=metric, observed=observed)
    departure = (observed - median) / abs(median)
    return message("peer_below" if departure < 0 else "peer_above", metric=metric, observed=observed,
                   median=median, percent=abs(departure) * 100,
                   usual_pct=None if usual is None else usual * 100)
