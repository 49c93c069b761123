"""The publication policy: the one place that decides what of a dataset the public may see.

Modes (per metric, from the city profile's `open_data` section, telemetry_shared/city.py):
- `raw`: every reading, `delay_hours` after it was taken (nothing newer leaves);
- `aggregated`: district x hour cells (mean, min, max, sum of the devices' hourly means), and only the
  cells where at least `k` devices contributed (a cell of one or two devices is one household's meter);
- `closed`: nothing, not even the dataset's name in the catalogue.
A metric the profile does not name is aggregated; building occupancy and CO2 (per room) are closed.
Citizens' complaints are only ever published as counts per district, day and category, with the same k.

Public functions (names kept stable; api/opendata/datasets.py and the open-data page build on them):
- `policy_for(profile, kind, metric) -> MetricPolicy`: the policy of one metric.
- `complaints_policy(profile) -> MetricPolicy`: the policy of the complaints' counts (aggregated, k).
- `publish(policy, columns, rows, now_ms) -> Iterator[dict]`: the rows the public may see, each reduced
  to exactly `columns` (a field not named there never leaves, whatever the source put in the row).
  Raises `Closed` for a closed policy. Aggregated rows must carry `count_field` (devices, or complaints).
- `fingerprint(profile) -> str`: changes whenever the profile's open_data section does (cache keys carry it,
  so a dataset closed a moment ago is never served from a cache).
- `visible_until_ms(policy, now_ms) -> int`: the newest moment a row may have (raw: now - delay; aggregated:
  the start of the current hour, so a cell is never published half full).
"""

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from telemetry_shared.city import CityProfile

HOUR_MS = 3_600_000
Mode = Literal["raw", "aggregated", "closed"]


class Closed(LookupError):
    """The dataset is closed: nothing of it is published."""


@dataclass(frozen=True)
class MetricPolicy:
    mode: Mode
    k: int  # aggregated: a cell needs at least k contributors (devices, or complaints)
    delay_ms: int  # raw: published this long after the reading
    count_field: str = "devices"  # the row field holding a cell's contributors

    @property
    def open(self) -> bool:
        return self.mode != "closed"


def policy_for(profile: CityProfile, kind: str, metric: str) -> MetricPolicy:
    mode, k, delay_hours = profile.open_data.rule(kind, metric)
    return MetricPolicy(mode=mode, k=k, delay_ms=delay_hours * HOUR_MS)  # type: ignore[arg-type]


def complaints_policy(profile: CityProfile) -> MetricPolicy:
    """Complaints: counts per district x day x category only, a cell with fewer than k complaints left out
    (three complaints about one street could name the household); contacts and texts never."""
    return MetricPolicy(mode="aggregated", k=profile.open_data.k, delay_ms=0, count_field="received")


def fingerprint(profile: CityProfile) -> str:
    return hashlib.sha256(profile.open_data.model_dump_json().encode()).hexdigest()[:16]


def visible_until_ms(policy: MetricPolicy, now_ms: int) -> int:
    if policy.mode == "raw":
        return now_ms - policy.delay_ms
    return now_ms // HOUR_MS * HOUR_MS


def publish(policy: MetricPolicy, columns: tuple[str, ...], rows: Iterable[dict[str, Any]],
            now_ms: int) -> Iterator[dict[str, Any]]:
    """The rows the public may see (see the module docstring). Rows carry `t_ms` (the start of their
    cell or the reading's time), which is checked and then dropped unless `columns` names it."""
    if not policy.open:
        raise Closed("this dataset is not published")
    until = visible_until_ms(policy, now_ms)
    for row in rows:
        if row["t_ms"] >= until:
            continue
        if policy.mode == "aggregated" and not (row.get(policy.count_field) or 0) >= policy.k:
            continue
        yield {column: row.get(column) for column in columns}
