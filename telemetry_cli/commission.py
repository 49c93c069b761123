"""`city device commission`: judge a freshly installed device from its live
events (birth message, first readings) so the technician leaves the site
knowing the data arrives and makes sense."""

from dataclasses import dataclass, field

from edge import contract

MAX_CLOCK_SKEW_MS = 60_000  # a device clock further off than this files readings at the wrong time


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Commissioning:
    kind: str
    readings_needed: int = 3
    birth: dict | None = None
    readings: int = 0
    metrics_seen: set[str] = field(default_factory=set)
    rejects: list[list] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    worst_skew_ms: int = 0
    seqs: list[int] = field(default_factory=list)

    def feed(self, event: str, data: dict) -> None:
        """Take one event from the device's live stream."""
        if event == "status" and data.get("state") == "online":
            self.birth = data
        elif event == "telemetry" and not data.get("hist"):
            self.seqs.append(data["seq"])
            for t_ms, values, *_ in data["samples"]:
                self.readings += 1
                self.metrics_seen.update(values)
                self.worst_skew_ms = max(self.worst_skew_ms, abs(data["received_ms"] - t_ms))
            self.rejects.extend(data["rejects"])
        elif event == "invalid":
            self.invalid.append(f"{data.get('leaf')}: {data.get('reason')}")

    def done(self) -> bool:
        return self.birth is not None and self.readings >= self.readings_needed

    def checks(self) -> list[Check]:
        catalogue = contract.KINDS[self.kind]
        birth = self.birth
        return [
            Check("birth message", birth is not None,
                  f"online, firmware {birth.get('fw', '?')}" + _health(birth) if birth else "no birth message"),
            Check("readings arrive", self.readings >= self.readings_needed,
                  f"{self.readings} of {self.readings_needed} readings"),
            Check(f"{self.kind} metrics", bool(self.metrics_seen) and self.metrics_seen <= set(catalogue),
                  ", ".join(sorted(self.metrics_seen)) or "none"),
            Check("within bounds", not self.rejects and not self.invalid, _rejects(self.rejects, self.invalid)),
            Check("device clock", self.readings > 0 and self.worst_skew_ms <= MAX_CLOCK_SKEW_MS,
                  f"off by at most {self.worst_skew_ms / 1000:.1f} s" if self.readings else "no readings"),
            Check("sequence", self.seqs == sorted(self.seqs), "increasing" if self.seqs == sorted(self.seqs)
                  else f"out of order: {self.seqs[:10]}"),
            Check("encrypted link", bool(birth) and birth.get("tls") is True, _link(birth)),
        ]

    def passed(self) -> bool:
        return all(check.ok for check in self.checks())


def _link(birth: dict | None) -> str:
    """What the device says of its connection: TLS or plain, and why an earlier attempt failed."""
    if not birth:
        return "no birth message"
    if birth.get("tls") is True:
        text = "TLS, broker certificate and name checked against the pinned CA"
    elif birth.get("tls") is False:
        text = "plain MQTT: its password and readings cross the network in clear"
    else:
        text = "not reported (firmware without TLS support)"
    if birth.get("link_error"):
        text += f"; an earlier connection failed: {birth['link_error']}"
    return text


def _health(birth: dict) -> str:
    parts = []
    if "battery_v" in birth:
        parts.append(f"battery {birth['battery_v']} V")
    if "rssi_dbm" in birth:
        parts.append(f"RSSI {birth['rssi_dbm']} dBm")
    return (", " + ", ".join(parts)) if parts else ""


def _rejects(rejects: list[list], invalid: list[str]) -> str:
    if not rejects and not invalid:
        return "all readings within the kind's physical bounds"
    shown = [f"{metric}={value!r} ({reason})" for _, metric, value, reason in rejects[:5]] + invalid[:3]
    return f"{len(rejects) + len(invalid)} refused: " + "; ".join(shown)
