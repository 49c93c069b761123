"""The sentence an operator reads in an alert: what, observed against expected, how unusual, since when."""

from datetime import UTC, datetime, timedelta

from analytics import peers
from analytics.config import DOMAIN_LIMITS, DetectorParams
from edge import contract


def local_time(t_ms: int, utc_offset_h: int) -> str:
    """`t_ms` (Unix ms) as local 'YYYY-MM-DD HH:MM (UTC+h)'."""
    moment = datetime.fromtimestamp(t_ms / 1000, UTC) + timedelta(hours=utc_offset_h)
    return moment.strftime("%Y-%m-%d %H:%M") + f" (UTC{utc_offset_h:+d})"


def explain(metric: str, rule: str, observed: float | None, expected: float | None, scale: float | None,
            z: float | None, started_ms: int, utc_offset_h: int) -> str:
    """A sentence an operator can act on: what, observed against expected, how unusual, since when.

    metric: the series ('' for a device-wide rule); rule: the rule behind the
    finding (a limit's, a statistical detector's, silent, clock_offset,
    night_flow_rise or the peer rule); observed, expected, scale, z: the
    finding's numbers (None when unknown: the sentence says less); started_ms:
    when the incident began; utc_offset_h: local time for the sentence.
    Returns one or two sentences (the alert message keeps the first 1,000 characters).
    """
    since = local_time(started_ms, utc_offset_h)
    if rule == "silent":
        return f"No data from this device since {since}, past {DetectorParams().silence_factor:g} intervals."
    if rule == "night_flow_rise":
        usual = f"{expected:.3g} L/s" if expected is not None else "unknown"
        return f"Minimum night flow {observed:.3g} L/s against a usual {usual} on earlier nights " \
               f"(02:00-04:00 local): a new leak? Night ending {since}."
    if rule == "clock_offset":
        return f"The device's clock jumped: its readings arrive {observed / 60000:.1f} min off their usual delay " \
               f"(since {since})."
    unit = contract.METRICS.get(metric, ("", "", 0, 0))[1]
    if observed is None:
        return f"{metric} back to normal or unusual on another metric; since {since}."
    if rule == peers.RULE:  # expected: the district's median; scale: the meter's usual departure from it
        return _explain_peer(metric, unit, observed, expected, scale, since)
    observed_text = f"{metric} {observed:.4g} {unit}".strip()
    for limit in DOMAIN_LIMITS.get(metric, []):
        if limit.rule == rule:
            bound = f"below the minimum {limit.low:g}" if limit.low is not None and observed < limit.low else \
                f"above the maximum {limit.high:g}"
            return f"{observed_text} is {bound} {unit} ({limit.source}); since {since}."
    words = {"unusual_value": "unusual against its recent level and daily profile",
             "level_shift": "shifted away from its usual level",
             "off_daily_profile": "off its usual daily profile",
             "stuck_sensor": "stuck: the same reading over and over",
             "drift": "drifting away from its usual daily profile"}.get(rule, rule)
    if expected is None or scale is None or z is None:
        return f"{observed_text}: {words}; since {since}."
    return f"{observed_text}, expected {expected:.4g} ± {scale:.2g}: {words} ({abs(z):.1f} sigma); since {since}."


def _explain_peer(metric: str, unit: str, observed: float, median: float | None, usual: float | None,
                  since: str) -> str:
    observed_text = f"{metric} {observed:.4g} {unit}".strip()
    if median is None or median == 0:
        return f"{observed_text}, away from the median of its district's meters: tampering or a failing meter? " \
               f"Since {since}."
    departure = (observed - median) / abs(median)
    side = "below" if departure < 0 else "above"
    usual_text = f" (usual: {usual * 100:+.0f} %)" if usual is not None else ""
    return f"{observed_text}, {abs(departure) * 100:.0f} % {side} the median of its district's meters " \
           f"{median:.4g} {unit}{usual_text}: tampering or a failing meter? Since {since}."
