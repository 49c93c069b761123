"""`city device commission`: judge a freshly installed device from its live
events (birth message, first readings) so the technician leaves the site
knowing the data arrives and makes sense."""

from dataclasses import dataclass, field

from edge import contract
from telemetry_cli.common import decimal, number, say

MAX_CLOCK_SKEW_MS = 60_000  # a device clock further off than this files readings at the wrong time


# The checks' names are ids in --json (stable for scripts); the table words them (catalogue commission.<name_>).
# not for people:
BIRTH, ARRIVE, BOUNDS, CLOCK, SEQUENCE, LINK = ("birth message", "readings arrive", "within bounds", "device clock",
                                                "sequence", "encrypted link")


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
            Check(BIRTH, birth is not None,
                  say("commission.online", fw=birth.get("fw", "?")) + _health(birth) if birth
                  else say("commission.no_birth")),
            Check(ARRIVE, self.readings >= self.readings_needed,
                  say("commission.readings_of", got=self.readings, n=self.readings_needed)),
            Check(f"{self.kind} metrics", bool(self.metrics_seen) and self.metrics_seen <= set(catalogue),
                  ", ".join(sorted(self.metrics_seen)) or say("commission.none")),
            Check(BOUNDS, not self.rejects and not self.invalid, _rejects(self.rejects, self.invalid)),
            Check(CLOCK, self.readings > 0 and self.worst_skew_ms <= MAX_CLOCK_SKEW_MS,
                  say("commission.clock_off", s=number(self.worst_skew_ms / 1000, 1)) if self.readings
                  else say("commission.no_readings")),
            Check(SEQUENCE, self.seqs == sorted(self.seqs), say("commission.increasing")
                  if self.seqs == sorted(self.seqs) else say("commission.out_of_order", seqs=self.seqs[:10])),
            Check(LINK, bool(birth) and birth.get("tls") is True, _link(birth)),
        ]

    def passed(self) -> bool:
        return all(check.ok for check in self.checks())


def _link(birth: dict | None) -> str:
    """What the device says of its connection: TLS or plain, and why an earlier attempt failed."""
    if not birth:
        return say("commission.no_birth")
    if birth.get("tls") is True:
        text = say("commission.tls")
    elif birth.get("tls") is False:
        text = say("commission.plain")
    else:
        text = say("commission.tls_unknown")
    if birth.get("link_error"):
        text += say("commission.link_error", error=birth["link_error"])
    return text


def _health(birth: dict) -> str:
    parts = []
    if "battery_v" in birth:
        parts.append(say("commission.battery", v=decimal(birth["battery_v"])))
    if "rssi_dbm" in birth:
        parts.append(say("commission.rssi", dbm=birth["rssi_dbm"]))
    return (", " + ", ".join(parts)) if parts else ""


def _rejects(rejects: list[list], invalid: list[str]) -> str:
    if not rejects and not invalid:
        return say("commission.all_within")
    shown = [f"{metric}={value!r} ({reason})" for _, metric, value, reason in rejects[:5]] + invalid[:3]
    return say("commission.refused", n=len(rejects) + len(invalid), shown="; ".join(shown))
