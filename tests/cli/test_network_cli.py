"""`city network ...` end to end: CLI -> API (uvicorn, engineer key) -> the registry. A bad topology is
refused with the reason (exit 4) and nothing changes; tables and --json; hostile input fails cleanly."""

import json

import pytest
from typer.testing import CliRunner

from telemetry_shared.registry import DeviceNew
from telemetry_shared.settings import get_settings


@pytest.fixture
def net(city):
    district = get_settings().city.slugs[0]
    for device_id, kind in [("wtr-in1", "water"), ("wtr-in2", "water"), ("wtr-c1", "water"), ("wtr-c2", "water"),
                            ("pwr-tx1", "power"), ("pwr-c1", "power")]:
        city.registry.add(DeviceNew(id=device_id, kind=kind, district=district))
    engineer = city.key("engineer")
    runner = CliRunner()

    def run(*args: str, token: str = engineer, input: str | None = None):
        from telemetry_cli.main import app

        return runner.invoke(app, ["network", *args], env=city.env(CITY_API_TOKEN=token, CITY_LANGUAGE="en"),
                             input=input, catch_exceptions=False)

    run.city = city
    return run


def test_set_list_show_and_remove_a_dma_and_a_feeder(net, tmp_path):
    customers = tmp_path / "customers.txt"
    customers.write_text("# DMA north\nwtr-c1\n\nwtr-c2  # corner shop\n")
    done = net("dma", "dma-north", "--inlet", "wtr-in1", "--customers-file", str(customers), "--name", "North")
    assert done.exit_code == 0, done.output
    assert "DMA dma-north saved" in done.stdout and "wtr-c2" in done.stdout
    done = net("feeder", "fdr-1", "--transformer", "pwr-tx1", "--customer", "pwr-c1", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["meters"] == {"transformer": ["pwr-tx1"], "customer": ["pwr-c1"]}
    table = net("list")
    assert table.exit_code == 0 and "1 DMAs, 1 feeders" in table.stdout and "dma-north" in table.stdout
    listed = json.loads(net("list", "--json").stdout)
    assert [d["id"] for d in listed["dmas"]] == ["dma-north"] and listed["feeders"][0]["id"] == "fdr-1"
    shown = json.loads(net("show", "dma-north", "--json").stdout)
    assert shown["meters"]["customer"] == ["wtr-c1", "wtr-c2"] and shown["name"] == "North"
    assert net("remove", "fdr-1", input="n\n").exit_code == 1
    assert net("remove", "fdr-1", "--yes").exit_code == 0
    assert net("show", "fdr-1").exit_code == 3
    assert net.city.registry.networks("power") == []


def test_bad_topology_is_refused_with_the_reason_and_changes_nothing(net):
    assert net("dma", "dma-a", "--inlet", "wtr-in1", "--customer", "wtr-c1").exit_code == 0
    cases = [
        (["dma", "dma-b", "--inlet", "wtr-in2", "--customer", "wtr-c1"], "wtr-c1 is in dma dma-a"),
        (["dma", "dma-a", "--inlet", "wtr-in1", "--parent", "dma-a"], "would make a loop: dma-a -> dma-a"),
        (["dma", "dma-b", "--customer", "wtr-c2"], "at least one inlet meter"),
        (["dma", "dma-b", "--inlet", "wtr-in2", "--customer", "pwr-c1"], "pwr-c1 (power) is not a water meter"),
        (["dma", "dma-b", "--inlet", "wtr-in2", "--customer", "wtr-ghost"], "no device wtr-ghost"),
        (["feeder", "fdr-1", "--transformer", "wtr-in2"], "wtr-in2 (water) is not a power meter"),
        (["dma", "dma-b", "--inlet", "wtr-in2", "--parent", "nowhere"], "no dma nowhere"),
    ]
    for args, reason in cases:
        refused = net(*args)
        assert refused.exit_code in (2, 4), (args, refused.output)
        assert reason in " ".join(refused.output.split()), (args, refused.output)
    assert [n.id for n in net.city.registry.networks()] == ["dma-a"]
    assert net.city.registry.network("dma-a").meters == {"inlet": ["wtr-in1"], "customer": ["wtr-c1"]}


def test_a_loop_through_sub_dmas_is_refused(net):
    assert net("dma", "dma-a", "--inlet", "wtr-in1").exit_code == 0
    assert net("dma", "dma-b", "--inlet", "wtr-in2", "--parent", "dma-a").exit_code == 0
    refused = net("dma", "dma-a", "--inlet", "wtr-in1", "--parent", "dma-b")
    assert refused.exit_code == 4 and "dma-a -> dma-b -> dma-a" in " ".join(refused.output.split())
    refused = net("remove", "dma-a", "--yes")
    assert refused.exit_code == 4 and "still holds sub-dmas dma-b" in " ".join(refused.output.split())


def test_only_engineers_change_the_topology_and_hostile_input_fails_cleanly(net, tmp_path):
    technician = net.city.token
    refused = net("dma", "dma-a", "--inlet", "wtr-in1", token=technician)
    assert refused.exit_code == 5 and net.city.registry.networks() == []
    assert net("list", token=technician).exit_code == 0  # every staff role reads
    assert net("dma", "dma-a", "--inlet", "WTR; DROP TABLE").exit_code == 2
    assert net("dma", "Bad Id!", "--inlet", "wtr-in1").exit_code in (2, 3)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00wtr")
    assert net("dma", "dma-a", "--inlet", "wtr-in1", "--customers-file", str(binary)).exit_code == 2
    assert net.city.registry.networks() == []


def test_the_api_answers_reasons_and_refuses_wrong_shapes(net):
    import httpx

    city = net.city
    headers = {"Authorization": f"Bearer {city.key('engineer')}"}
    with httpx.Client(base_url=city.api.url, headers=headers, timeout=10) as http:
        assert http.put("/network/dmas/dma-a", json={"inlets": ["wtr-in1"], "customers": ["wtr-c1"]}).status_code == 200
        answer = http.put("/network/dmas/dma-b", json={"inlets": ["wtr-in2"], "customers": ["wtr-c1"]})
        assert answer.status_code == 409 and "wtr-c1 is in dma dma-a" in answer.json()["message"]
        answer = http.put("/network/dmas/dma-b", json={"inlets": [], "customers": []})
        assert answer.status_code == 422 and "inlet" in answer.json()["message"]
        assert http.put("/network/dmas/dma-b", json={"inlets": ["wtr-in2"], "extra": 1}).status_code == 422
        assert http.put("/network/feeders/dma-a", json={"transformer": "pwr-tx1"}).status_code == 409
        assert http.get("/network/feeders/dma-a").status_code == 404
        assert http.delete("/network/feeders/dma-a").status_code == 404
        assert http.put("/network/dmas/dma-b", json={"inlets": ["wtr-in2"] * 20_001}).status_code == 422
        assert http.get("/network/dmas").json()["count"] == 1
