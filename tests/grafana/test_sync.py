"""`city grafana sync` and `city grafana generate`, driven as a user would, over
real HTTP against a Grafana stand-in (tests/grafana/fake_grafana.py)."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grafana.boards import all_dashboards
from grafana.datasource import DATASOURCE_UID
from telemetry_cli.main import app
from telemetry_shared.settings import get_settings
from tests.grafana.fake_grafana import TOKEN, FakeGrafana

runner = CliRunner()
TITLES = {board.title for board in all_dashboards()}


@pytest.fixture
def grafana(monkeypatch) -> Iterator[FakeGrafana]:
    with FakeGrafana() as fake:
        monkeypatch.setenv("CITY_GRAFANA_URL", fake.url)
        monkeypatch.setenv("CITY_GRAFANA_TOKEN", TOKEN)
        monkeypatch.setenv("CITY_INFLUX_URL", "http://influxdb:8086")
        monkeypatch.setenv("CITY_INFLUX_USER", "grafana-reader")
        monkeypatch.setenv("CITY_INFLUX_PASSWORD", "reader-secret")
        get_settings.cache_clear()
        yield fake
    get_settings.cache_clear()


def sync_json(*args: str) -> list[dict]:
    result = runner.invoke(app, ["grafana", "sync", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def actions(changes: list[dict]) -> dict[str, str]:
    return {f"{c['what']}:{c['name']}": c["action"] for c in changes}


def test_first_sync_creates_everything_and_the_second_changes_nothing(grafana: FakeGrafana) -> None:
    first = sync_json()
    assert {c["action"] for c in first} == {"created"}
    assert {c["name"] for c in first if c["what"] == "dashboard"} == TITLES
    source = grafana.datasources[DATASOURCE_UID]
    assert source["url"] == "http://influxdb:8086" and source["secureJsonData"] == {"password": "reader-secret"}
    assert all(d["folderUid"] == "city" for d in grafana.dashboards.values())
    writes = len(grafana.writes)

    second = sync_json()
    assert {c["action"] for c in second} == {"unchanged"}
    assert len(grafana.writes) == writes, "an unchanged sync must not write"


def test_sync_puts_back_a_dashboard_edited_in_grafana_and_only_that_one(grafana: FakeGrafana) -> None:
    sync_json()
    grafana.dashboards["city-water"]["dashboard"]["panels"].pop()
    grafana.dashboards["city-water"]["dashboard"]["version"] = 7
    changes = actions(sync_json())
    assert changes["dashboard:Water network"] == "updated"
    assert [k for k, v in changes.items() if v != "unchanged"] == ["dashboard:Water network"]
    restored = grafana.dashboards["city-water"]["dashboard"]
    expected = next(b for b in all_dashboards() if b.uid == "city-water").to_json()
    assert restored["panels"] == expected["panels"] and restored["version"] == 8


def test_a_moved_influxdb_updates_the_datasource_and_keeps_its_password(grafana: FakeGrafana, monkeypatch) -> None:
    sync_json()
    monkeypatch.setenv("CITY_INFLUX_URL", "http://influx.internal:8086")
    get_settings.cache_clear()
    assert actions(sync_json())["datasource:City InfluxDB"] == "updated"
    source = grafana.datasources[DATASOURCE_UID]
    assert source["url"] == "http://influx.internal:8086" and source["secureJsonData"] == {"password": "reader-secret"}


def test_reset_secrets_rewrites_the_password(grafana: FakeGrafana, monkeypatch) -> None:
    sync_json()
    monkeypatch.setenv("CITY_INFLUX_PASSWORD", "rotated")
    get_settings.cache_clear()
    assert actions(sync_json())["datasource:City InfluxDB"] == "unchanged"  # Grafana never shows the password
    assert actions(sync_json("--reset-secrets"))["datasource:City InfluxDB"] == "updated"
    assert grafana.datasources[DATASOURCE_UID]["secureJsonData"] == {"password": "rotated"}


def test_table_output_says_what_changed(grafana: FakeGrafana) -> None:
    result = runner.invoke(app, ["grafana", "sync"])
    assert result.exit_code == 0, result.output
    assert "Water network" in result.stdout and f"{len(TITLES) + 2} changed, 0 unchanged" in result.stdout


def test_basic_auth_works_too(grafana: FakeGrafana, monkeypatch) -> None:
    monkeypatch.delenv("CITY_GRAFANA_TOKEN")
    monkeypatch.setenv("CITY_GRAFANA_USER", "admin")
    monkeypatch.setenv("CITY_GRAFANA_PASSWORD", "admin-pass")
    get_settings.cache_clear()
    assert len(sync_json()) == len(TITLES) + 2  # the data source, the folder and every board


@pytest.mark.parametrize(("env", "args", "message", "code"), [
    ({"CITY_GRAFANA_TOKEN": "wrong"}, [], "refused the credentials", 5),
    ({"CITY_GRAFANA_TOKEN": ""}, [], "no Grafana credentials", 5),
    ({}, ["--url", "not a url; rm -rf /"], "not a Grafana URL", 2),
    ({}, ["--url", "http://127.0.0.1:1"], "cannot reach Grafana at http://127.0.0.1:1", 6),  # no urllib3 repr
    ({}, ["--folder", "../../etc"], "folder uid must match", 2),
    ({}, ["--folder", "x" * 5000], "folder uid must match", 2),
])
def test_bad_settings_and_arguments_fail_clearly_and_write_nothing(grafana: FakeGrafana, monkeypatch, env, args,
                                                                     message, code) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    result = runner.invoke(app, ["grafana", "sync", *args])
    assert result.exit_code == code  # the table in telemetry_cli/README.md
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output and "ConnectError" not in result.output and "urllib3" not in result.output
    assert grafana.writes == []


@pytest.mark.parametrize(("mode", "message"), [("error", "(500)"), ("garbage", "unexpected")])
def test_a_broken_grafana_is_reported_not_crashed_on(grafana: FakeGrafana, mode: str, message: str) -> None:
    grafana.mode = mode
    result = runner.invoke(app, ["grafana", "sync"])
    assert result.exit_code == 6 and message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output


def test_generate_writes_and_check_catches_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "boards"
    result = runner.invoke(app, ["grafana", "generate", "--out", str(out), "--json"])
    assert result.exit_code == 0 and set(json.loads(result.stdout).values()) == {"created"}
    assert runner.invoke(app, ["grafana", "generate", "--out", str(out), "--check"]).exit_code == 0
    (out / "city-power.json").write_text('{"title": "hand edited"}')
    result = runner.invoke(app, ["grafana", "generate", "--out", str(out), "--check", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout) == {"stale": ["city-power.json"]}


def test_generate_into_an_unwritable_place_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["grafana", "generate", "--out", str(blocker / "sub")])
    assert result.exit_code == 1 and "cannot write" in result.stderr
