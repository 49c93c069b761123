"""District x hour cells: the open data's aggregated rows, stored when the rollups are made.

A cell is one metric's devices in one district and hour, summed from the hourly rollups (`<kind>_1h`):
the sum of the devices' hourly means, how many devices reported (`devices`), the lowest minimum, the
highest maximum and the readings counted. It is NOT a published row: whether a cell may be published
(k devices or more, the hour complete, the dataset open) is decided at read time by the publication
policy (api/opendata/policy.py), which is why the device count is stored with every cell.

Stored in the `rollups` retention policy (kept for ever) as `<kind>_district_1h`, tag `district` (absent
for devices without one), fields `<metric>_sum`, `<metric>_min`, `<metric>_max` (floats),
`<metric>_devices`, `<metric>_readings` (integers), stamped at the hour's start. `city rollup` writes them
each time it writes an hour's rollups (`write_cells`, reading back the stored rollups, so a cell holds every
device of its hour whichever run wrote it: a late reading is in the cell once the rollup ran again).

Coverage: the cells of the hours rolled up before this existed are written once by `backfill` (the first
`city rollup run` after an upgrade does it), which then records `district_cells from_ms=<ms>` (one point at
time 0): every hour from `from_ms` on has its cells. Readers use the cells only from there
(`covered_from`), and sum the rollups themselves before it (`accumulate`/`finish`, the very same code).

Sums use math.fsum: exact, so a cell does not depend on the order InfluxDB returned the devices in.
"""

import math
from collections.abc import Iterator
from typing import Any

from edge import contract
from telemetry_shared.influx import InfluxQL, LineWriter, quote_ident
from telemetry_shared.lineproto import escape_key

ROLLUP_RP = "rollups"
HOUR_MS = 3_600_000
WINDOW_MS = 24 * HOUR_MS  # one read of the rollups per kind and day
PAGE = 20_000  # rollup points a query
MARKER = "district_cells"
NEVER = 2**62  # a from_ms no hour reaches: the cells are not used


def measurement(kind: str) -> str:
    return f"{kind}_district_1h"


def accumulate(cells: dict[str, list], district: str, mean: float, low: float | None, high: float | None,
               count: int | None) -> None:
    """Add one device's hourly rollup to its district's cell ([means], devices, min, max, readings)."""
    cell = cells.get(district)
    if cell is None:
        cells[district] = [[mean], 1, low, high, count or 0]
        return
    cell[0].append(mean)
    cell[1] += 1
    cell[2] = low if cell[2] is None or (low is not None and low < cell[2]) else cell[2]
    cell[3] = high if cell[3] is None or (high is not None and high > cell[3]) else cell[3]
    cell[4] += count or 0


def finish(cell: list) -> tuple[float, int, float | None, float | None, int]:
    """(sum of the means, devices, min, max, readings) of an accumulated cell."""
    return math.fsum(cell[0]), cell[1], cell[2], cell[3], cell[4]


def _rollup_query(kind: str, start_ms: int, end_ms: int, offset: int) -> str:
    fields = [quote_ident(f"{m}_{s}") for m in contract.KINDS[kind] for s in ("mean", "min", "max", "count")]
    return (f'SELECT {", ".join(fields)}, "district" FROM {quote_ident(ROLLUP_RP)}.{quote_ident(kind + "_1h")}'
            f" WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms LIMIT {PAGE} OFFSET {offset}")


def _rollup_rows(influx: InfluxQL, kind: str, start_ms: int, end_ms: int) -> Iterator[list]:
    for lo in range(start_ms, end_ms, WINDOW_MS):
        hi = min(end_ms, lo + WINDOW_MS)
        offset = 0
        while True:
            found = influx.series(_rollup_query(kind, lo, hi, offset))
            values = found[0]["values"] if found else []
            yield from values
            if len(values) < PAGE:
                break
            offset += PAGE


def _lines(kind: str, t_ms: int, by_metric: dict[str, dict[str, list]]) -> list[str]:
    fields: dict[str, list[str]] = {}
    for metric, cells in by_metric.items():
        for district, cell in cells.items():
            total, devices, low, high, readings = finish(cell)
            out = fields.setdefault(district, [])
            out += [f"{metric}_sum={total!r}", f"{metric}_devices={devices}i", f"{metric}_readings={readings}i"]
            if low is not None:
                out.append(f"{metric}_min={float(low)!r}")
            if high is not None:
                out.append(f"{metric}_max={float(high)!r}")
    head = measurement(kind)
    return [f"{head}{',district=' + escape_key(d) if d else ''} {','.join(f)} {t_ms}"
            for d, f in sorted(fields.items())]


def write_cells(influx: InfluxQL, writer: LineWriter, kind: str, start_ms: int, end_ms: int) -> int:
    """(Re)write the cells of the whole hours in [start_ms, end_ms) from the stored hourly rollups; the number
    of points written. One hour's cells are held at a time."""
    start_ms = start_ms // HOUR_MS * HOUR_MS
    metrics = list(contract.KINDS[kind])
    written, batch = 0, []
    hour: int | None = None
    by_metric: dict[str, dict[str, list]] = {}
    for row in _rollup_rows(influx, kind, start_ms, end_ms):
        t_ms, district = row[0], row[-1] or ""
        if t_ms != hour:
            if by_metric:
                batch += _lines(kind, hour, by_metric)  # type: ignore[arg-type]
            hour, by_metric = t_ms, {}
        for n, metric in enumerate(metrics):
            mean, low, high, count = row[1 + 4 * n: 5 + 4 * n]
            if mean is not None:
                accumulate(by_metric.setdefault(metric, {}), district, mean, low, high, count)
        if len(batch) >= 5000:
            writer.write(batch)
            written, batch = written + len(batch), []
    if by_metric:
        batch += _lines(kind, hour, by_metric)  # type: ignore[arg-type]
    writer.write(batch)
    return written + len(batch)


def covered_from(influx: InfluxQL) -> int:
    """The hour from which every rolled-up hour has its cells (NEVER when the backfill has not run)."""
    found = influx.series(f'SELECT "from_ms" FROM {quote_ident(ROLLUP_RP)}.{quote_ident(MARKER)}')
    values = found[0]["values"] if found else []
    return int(values[-1][1]) if values and values[-1][1] is not None else NEVER


def mark(writer: LineWriter, from_ms: int) -> None:
    writer.write([f"{MARKER} from_ms={int(from_ms)}i 0"])


def _first_rollup_ms(influx: InfluxQL, kind: str) -> int | None:
    found = influx.series(f'SELECT * FROM {quote_ident(ROLLUP_RP)}.{quote_ident(kind + "_1h")}'
                          " ORDER BY time ASC LIMIT 1")
    values = found[0]["values"] if found else []
    return int(values[0][0]) if values else None


def backfill(influx: InfluxQL, writer: LineWriter, end_ms: int) -> dict[str, Any]:
    """Once: the cells of every hour rolled up before `end_ms`, then the coverage mark (from the first hour
    on). Nothing when the mark is already there. {"points", "from_ms"}."""
    if covered_from(influx) != NEVER:
        return {"points": 0, "from_ms": None}
    points, first_all = 0, end_ms
    for kind in contract.KINDS:
        first = _first_rollup_ms(influx, kind)
        if first is not None and first < end_ms:
            points += write_cells(influx, writer, kind, first, end_ms)
            first_all = min(first_all, first)
    mark(writer, 0)  # every hour before the first rollup has nothing to sum either
    return {"points": points, "from_ms": first_all // HOUR_MS * HOUR_MS}
