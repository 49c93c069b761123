"""Every panel, variable and annotation query, with its variables filled in as
Grafana would, runs against a real influxd holding simulated city data and
returns series."""

import secrets
import time
from collections.abc import Iterator

import pytest

from grafana.boards import all_dashboards
from grafana.queries import fill_variables, panel_span_ms
from ingest.rollup import ROLLUP_RP, run_rollup
from telemetry_shared.influx import InfluxQL, V1Writer
from telemetry_shared.settings import get_settings
from tests.grafana import simdata

NOW_MS = int(time.time() * 1000)
BOARDS = {board.uid: board.to_json() for board in all_dashboards()}


@pytest.fixture(scope="module")
def city_db(shared_influxd) -> Iterator[InfluxQL]:
    name = f"grafana_{secrets.token_hex(4)}"
    client = InfluxQL(shared_influxd.url, name)
    client.create_database()
    writer = V1Writer(shared_influxd.url, name)
    writer.write(simdata.lines(NOW_MS))
    writer.close()
    # The rollup panels read what the real rollup job (ingest/rollup.py) makes of that data.
    client.raw(f'CREATE RETENTION POLICY "{ROLLUP_RP}" ON "{name}" DURATION INF REPLICATION 1', method="POST")
    rollups = V1Writer(shared_influxd.url, name, rp=ROLLUP_RP)
    for period in ("1h", "1d"):
        assert run_rollup(client, rollups, period, NOW_MS - simdata.SPAN_MS - 86_400_000, NOW_MS,
                          get_settings().utc_offset_hours, get_settings().local_zone).points
    rollups.close()
    yield client
    client.raw(f'DROP DATABASE "{name}"', method="POST")
    client.close()


def grafana_values(uid: str, district: str = ".*", device: str = ".*") -> dict[str, str]:
    """What Grafana substitutes for a 2-day range at a 10-minute interval: its built-ins and ONLY the board's
    own variables, so a query naming a variable its board does not define fails (fill_variables refuses)."""
    start = NOW_MS - 2 * 86_400_000
    chosen = {"district": district, "device": device}
    own = {v["name"] for v in BOARDS[uid]["templating"]["list"]}
    return {"timeFilter": f"time >= {start}ms and time <= {NOW_MS}ms", "__interval": "10m"} | {
        name: value for name, value in chosen.items() if name in own}


def panel_targets() -> list[tuple[str, str, str]]:
    return [(uid, panel["title"], target["query"])
            for uid, board in BOARDS.items() for panel in board["panels"] for target in panel["targets"]]


def has_values(series: list[dict]) -> bool:
    """Some value that is neither missing nor zero (a count panel full of zeros shows nothing)."""
    return any(v not in (None, 0) for s in series for row in s.get("values", []) for v in row[1:])


@pytest.mark.parametrize(("uid", "title", "query"), panel_targets(),
                         ids=[f"{uid}:{title}" for uid, title, _ in panel_targets()])
def test_panel_query_returns_series_for_all(city_db: InfluxQL, uid: str, title: str, query: str) -> None:
    series = city_db.series(fill_variables(query, grafana_values(uid)))
    assert has_values(series), f"{uid} / {title}: no data from {query}"


def test_a_panel_naming_a_variable_its_board_lacks_is_caught() -> None:
    overview = next(p for p in BOARDS["city-overview"]["panels"] if p["title"] == "Water flow by district")
    assert "$device" not in overview["targets"][0]["query"]  # the overview has no device variable
    with pytest.raises(ValueError, match="device"):
        fill_variables(BOARDS["city-water"]["panels"][0]["targets"][0]["query"], grafana_values("city-overview"))


def variable_values(db: InfluxQL, board: dict, name: str, values: dict[str, str]) -> list[str]:
    variable = next(v for v in board["templating"]["list"] if v["name"] == name)
    series = db.series(fill_variables(variable["query"], values))
    return sorted({row[1] for s in series for row in s["values"]})


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_variables_list_districts_and_devices_and_filter_every_panel(city_db: InfluxQL, uid: str) -> None:
    board = BOARDS[uid]
    districts = variable_values(city_db, board, "district", grafana_values(uid))
    assert districts == sorted(simdata.DISTRICTS)
    names = [v["name"] for v in board["templating"]["list"]]
    chosen = grafana_values(uid, district=districts[0])
    if "device" in names:
        devices = variable_values(city_db, board, "device", chosen)
        assert devices, f"{uid}: no devices in {districts[0]}"
        assert all(simdata.DEVICES[d][1] == districts[0] for d in devices)
        chosen["device"] = devices[0]
    for panel in board["panels"]:
        for target in panel["targets"]:
            series = city_db.series(fill_variables(target["query"], chosen))
            assert has_values(series), f"{uid} / {panel['title']}: nothing for {chosen}"
            for s in series:  # a filtered panel shows only the chosen district and device
                tags = s.get("tags", {})
                assert tags.get("district", districts[0]) == districts[0], panel["title"]
                assert tags.get("device", chosen.get("device")) == chosen.get("device"), panel["title"]


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_alert_annotations_return_the_alerts(city_db: InfluxQL, uid: str) -> None:
    alerts = [a for a in BOARDS[uid]["annotations"]["list"] if a.get("name") == "Analytics alerts"]
    assert len(alerts) == 1
    rows = city_db.rows(fill_variables(alerts[0]["query"], grafana_values(uid)))
    assert rows and all(row["explanation"] and row["severity"] in ("warning", "critical") for row in rows)
    kinds = {simdata.DEVICES[row["device"]][0] for row in rows}
    if uid in ("city-overview", "city-devices"):
        assert len(kinds) == 4
    else:
        assert len(kinds) == 1, f"{uid} shows another utility's alerts: {kinds}"


def test_a_district_with_no_data_shows_nothing_rather_than_everything(city_db: InfluxQL) -> None:
    query = BOARDS["city-water"]["panels"][0]["targets"][0]["query"]
    assert city_db.series(fill_variables(query, grafana_values("city-water", district="tanjungpinang-timur"))) == []


def test_fill_variables_refuses_to_leave_a_variable_unfilled() -> None:
    with pytest.raises(ValueError, match="device"):
        fill_variables('SELECT 1 FROM "x" WHERE $timeFilter AND "device" =~ /^$device$/', {"timeFilter": "true"})


def test_two_districts_selected_as_grafana_writes_them(city_db: InfluxQL) -> None:
    # A multi-value variable in a regex: Grafana writes (a|b) with regex characters escaped.
    chosen = "(" + "|".join(d.replace("-", "\\-") for d in simdata.DISTRICTS) + ")"
    panel = next(p for p in BOARDS["city-power"]["panels"] if p["title"] == "Voltage by district")
    query = panel["targets"][0]["query"]
    series = city_db.series(fill_variables(query, grafana_values("city-power", district=chosen)))
    assert sorted(s["tags"]["district"] for s in series) == sorted(simdata.DISTRICTS)


def _panel(uid: str, title: str) -> dict:
    return next(p for p in BOARDS[uid]["panels"] if p["title"] == title)


def _per_tag(series: list[dict], tag: str, measure) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in series:
        key = s["tags"][tag]
        out[key] = out.get(key, 0) + measure([row[1] for row in s["values"]])
    return out


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_backfilled_readings_are_counted_apart_from_live_ones(city_db: InfluxQL, uid: str) -> None:
    # simdata stores BACKFILLED_STEPS of each device's 156 readings with hist=true: a panel that ignored
    # hist would count all 156, one that read a tag would count none.
    panel = _panel(uid, "Backfilled readings")
    by = "district" if uid == "city-overview" else "device"
    counts = _per_tag(city_db.series(fill_variables(panel["targets"][0]["query"], grafana_values(uid))), by, sum)
    kinds = {"water": ("city-water",), "power": ("city-power", "city-power-quality"), "building": ("city-buildings",),
             "traffic": ("city-traffic",)}
    utility_boards = {u for boards in kinds.values() for u in boards}
    devices = [d for d, (kind, _) in simdata.DEVICES.items() if uid not in utility_boards or uid in kinds[kind]]
    expected: dict[str, int] = {}
    for device in devices:
        key = device if by == "device" else simdata.DEVICES[device][1]
        expected[key] = expected.get(key, 0) + simdata.BACKFILLED_STEPS
    assert counts == expected


@pytest.mark.parametrize(("uid", "title"), [(uid, p["title"]) for uid, board in BOARDS.items()
                                            for p in board["panels"] if len(p["targets"]) == 2
                                            and p["targets"][1].get("alias", "").endswith(" (backfilled)")])
def test_readings_panels_mark_the_backfilled_intervals_and_only_those(city_db: InfluxQL, uid: str, title: str) -> None:
    panel = _panel(uid, title)
    everything, backfill = (city_db.series(fill_variables(t["query"], grafana_values(uid))) for t in panel["targets"])
    known = _per_tag(everything, "device", lambda values: sum(v is not None for v in values))
    dots = _per_tag(backfill, "device", lambda values: sum(v is not None for v in values))
    # One reading per 10-minute interval: the dots are the device's backfilled intervals, the line all of them.
    assert dots == {d: simdata.BACKFILLED_STEPS for d in known}
    assert all(n == simdata.SPAN_MS // simdata.STEP_MS for n in known.values()), known
    assert panel["fieldConfig"]["overrides"][0]["properties"][0] == {"id": "custom.drawStyle", "value": "points"}


def test_a_panel_is_queried_over_its_own_range_as_grafana_does() -> None:
    daily = _panel("city-power", "Daily voltage extremes, 90 days")
    assert panel_span_ms(daily, 27 * 3_600_000) == 90 * 86_400_000  # not the dashboard's day
    assert panel_span_ms(_panel("city-power", "Voltage per feeder"), 27 * 3_600_000) == 27 * 3_600_000
    with pytest.raises(ValueError, match="timeFrom"):
        panel_span_ms({"title": "x", "timeFrom": "now-90d"}, 1)
