"""The open-data routes' own rate limit: a CKAN harvester walking the whole catalogue (package_list, every
package_show, one download each) is never answered 429 at the default limits, while a flood still is."""

import time

from tests.api.opendata_seed import HOUR_MS, readings, roll_up, write_readings


def test_a_harvester_walks_everything_but_a_flood_gets_429(make_api):
    api = make_api(api_public_rate_per_min=10)  # open data: the default (600 a minute)
    now = int(time.time() * 1000)
    start, end = (now // HOUR_MS - 4) * HOUR_MS, (now // HOUR_MS - 1) * HOUR_MS
    write_readings(api.services.influx, [line for n in range(4) for line in readings(
        "water", "flow_lps", f"wtr-{n:04d}", "bukit-bestari", start, end, 600_000, 2.0 + n)])
    roll_up(api.services.influx, start, end)
    statuses = []
    with api.client() as c:
        names = c.get("/api/3/action/package_list").json()["result"]
        for name in names:
            package = c.get("/api/3/action/package_show", params={"id": name})
            statuses.append(package.status_code)
            for url in [r["url"] for r in package.json()["result"]["resources"] if r["format"] == "CSV"][:1]:
                statuses.append(c.get(url.removeprefix(api.url)).status_code)  # no data yet: no resource
        assert len(statuses) > api.settings.api_public_rate_per_min  # past the public limit
        assert 429 not in statuses and set(statuses) <= {200, 404}, statuses
        refused = flood_until_refused(c, "/api/3/action/package_list", 4 * api.settings.api_opendata_rate_per_min)
    assert refused is not None, "a flood of 4x the limit was never refused"
    assert int(refused.headers["Retry-After"]) >= 1 and "try again in 0 s" not in refused.text


def flood_until_refused(client, path: str, most: int):
    """Ask as fast as one client can until the first 429 (the bucket refills while the flood runs, so a
    flood of exactly the limit is not enough), at most `most` times; the 429 or None."""
    for _ in range(most):
        answer = client.get(path)
        if answer.status_code == 429:
            return answer
    return None
