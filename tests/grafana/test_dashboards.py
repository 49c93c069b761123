"""The dashboards as files: committed JSON is what the code generates, and
every dashboard is well formed for Grafana and the city's data."""

import json
import re
from pathlib import Path

import pytest
import yaml

from edge import contract
from grafana.boards import all_dashboards
from grafana.datasource import DATASOURCE_REF, DATASOURCE_UID
from grafana.generate import DASHBOARD_DIR, rendered, stale_files, write_all
from grafana.units import GRAFANA_UNITS

PROVISIONING = Path(__file__).resolve().parents[2] / "grafana" / "provisioning"
BOARDS = {board.uid: board.to_json() for board in all_dashboards()}
UTILITY_BOARDS = ("city-water", "city-power", "city-buildings", "city-traffic")


def test_committed_json_is_what_the_code_generates() -> None:
    assert stale_files() == [], "run `city grafana generate` and commit grafana/dashboards/"
    for name, text in rendered().items():
        assert json.loads((DASHBOARD_DIR / name).read_text()) == json.loads(text)


def test_generate_reports_created_updated_and_unchanged(tmp_path: Path) -> None:
    assert set(write_all(tmp_path).values()) == {"created"}
    assert set(write_all(tmp_path).values()) == {"unchanged"}
    (tmp_path / "city-water.json").write_text("{}")
    (tmp_path / "old-board.json").write_text("{}")
    assert stale_files(tmp_path) == ["city-water.json", "old-board.json"]
    assert write_all(tmp_path)["city-water.json"] == "updated"


def test_the_seven_dashboards_have_unique_uids_and_titles() -> None:
    titles = [b["title"] for b in BOARDS.values()]
    assert len(BOARDS) == 7 and len(set(titles)) == 7
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in BOARDS)


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_panels_have_unique_ids_units_and_the_fixed_datasource(uid: str) -> None:
    panels = BOARDS[uid]["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], f"{panel['title']} has no unit"
        assert panel["description"], f"{panel['title']} has no description"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF
            assert target["rawQuery"] and "$timeFilter" in target["query"], panel["title"]


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_panels_fit_the_grid_without_overlapping(uid: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in BOARDS[uid]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_variables_and_alert_annotations(uid: str) -> None:
    board = BOARDS[uid]
    names = [v["name"] for v in board["templating"]["list"]]
    assert "district" in names
    if uid != "city-overview":
        assert names == ["district", "device"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE_REF and variable["includeAll"] and variable["multi"]
    alerts = [a for a in board["annotations"]["list"] if a.get("name") == "Analytics alerts"]
    assert len(alerts) == 1 and alerts[0]["datasource"] == DATASOURCE_REF and alerts[0]["enable"]
    assert 'FROM "alerts"' in alerts[0]["query"]


def test_no_environment_variable_or_secret_in_dashboard_json() -> None:
    for name, text in rendered().items():
        assert "${" not in text and "CITY_" not in text, name
        assert not re.search(r"password|token|secret", text, re.I), name


def test_every_contract_metric_is_on_its_utilitys_dashboard() -> None:
    kind_board = {"water": "city-water", "power": "city-power", "building": "city-buildings",
                  "traffic": "city-traffic"}
    for kind, metrics in contract.KINDS.items():
        text = json.dumps(BOARDS[kind_board[kind]]["panels"])
        for metric in metrics:
            assert f'\\"{metric}\\"' in text, f"{metric} is on no panel of {kind_board[kind]}"


def test_every_contract_unit_has_a_grafana_unit() -> None:
    units = {unit for _, unit, _, _ in contract.METRICS.values()}
    assert units <= set(GRAFANA_UNITS)


def test_timezone_is_the_citys() -> None:
    assert {b["timezone"] for b in BOARDS.values()} == {"Asia/Jakarta"}


def test_datasource_provisioning_has_the_fixed_uid_and_takes_credentials_from_the_environment() -> None:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    for value in (source["url"], source["user"], source["jsonData"]["dbName"], source["secureJsonData"]["password"]):
        assert re.fullmatch(r"\$\{INFLUX_[A-Z_]+\}", value), value


def test_dashboard_provider_loads_the_generated_folder() -> None:
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "city.yaml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards/city"
