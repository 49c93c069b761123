"""Before the first `city rollup`: raw readings exist but no `rollups` retention policy. The catalogue and
downloads answer without InfluxDB's "retention policy not found" (never a 422 or 5xx)."""

import time
from datetime import datetime

from tests.api.opendata_seed import HOUR_MS, readings, write_readings


def test_no_rollups_yet_is_an_empty_catalogue_entry_not_an_error(make_api):
    api = make_api(api_public_rate_per_min=100_000)
    now = int(time.time() * 1000)
    start, end = (now // HOUR_MS - 4) * HOUR_MS, (now // HOUR_MS - 1) * HOUR_MS
    write_readings(api.services.influx, [line for n in range(4) for line in readings(
        "water", "flow_lps", f"wtr-{n:04d}", "bukit-bestari", start, end, 600_000, 2.0 + n)])
    month = datetime.fromtimestamp((end - HOUR_MS) / 1000, api.settings.city.zone).strftime("%Y-%m")
    with api.client() as c:
        answers = [c.get("/api/3/action/package_list"), c.get("/api/3/action/package_show?id=water-flow_lps"),
                   c.get("/opendata/datasets"), c.get("/opendata/datasets/water-flow_lps"),
                   c.get("/opendata/catalog.jsonld")]
        download = c.get(f"/opendata/download/water-flow_lps/{month}.csv")
    assert [a.status_code for a in answers] == [200] * 5, [a.text[:200] for a in answers]
    assert download.status_code == 200, download.text  # no rows yet: a header-only file, never 404, 422 or 5xx
    assert "retention policy" not in download.text
    assert download.text.strip().splitlines() == ["time,district,value,min,max,sum,devices,readings"]
