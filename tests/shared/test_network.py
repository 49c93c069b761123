"""Network topology in the registry: DMAs and feeders are stored whole, refused with the reason when
wrong (a meter in two networks, a loop of parent DMAs, no inlet, no transformer, unknown or
wrong-kind meters), and read back as arrays for analytics."""

import numpy as np
import pytest

from telemetry_shared.network import NetworkSpec, TopologyError
from telemetry_shared.registry import DeviceNew, Registry
from telemetry_shared.settings import get_settings


def _add(registry: Registry, kind: str, *ids: str) -> None:
    district = get_settings().city.slugs[0]
    for device_id in ids:
        registry.add(DeviceNew(id=device_id, kind=kind, district=district))


def dma(dma_id: str, inlets: list[str], customers: list[str], parent: str | None = None) -> NetworkSpec:
    return NetworkSpec(id=dma_id, utility="water", parent=parent, meters={"inlet": inlets, "customer": customers})


def feeder(feeder_id: str, transformer: list[str], customers: list[str]) -> NetworkSpec:
    return NetworkSpec(id=feeder_id, utility="power", meters={"transformer": transformer, "customer": customers})


@pytest.fixture
def net(registry: Registry) -> Registry:
    _add(registry, "water", "wtr-in1", "wtr-in2", "wtr-c1", "wtr-c2", "wtr-c3")
    _add(registry, "power", "pwr-tx1", "pwr-c1", "pwr-c2")
    return registry


def refused(registry: Registry, spec: NetworkSpec) -> TopologyError:
    before = registry.networks()
    with pytest.raises(TopologyError) as caught:
        registry.set_network(spec)
    assert registry.networks() == before, "a refused network changed the registry"
    return caught.value


def test_a_dma_and_a_feeder_are_stored_and_read_back_as_arrays(net):
    net.set_network(dma("dma-a", ["wtr-in1"], ["wtr-c1", "wtr-c2"]))
    net.set_network(dma("dma-b", ["wtr-in2"], ["wtr-c3"], parent="dma-a"))
    net.set_network(feeder("fdr-1", ["pwr-tx1"], ["pwr-c2", "pwr-c1"]))
    water = net.topology("water")
    assert list(water.ids) == ["dma-a", "dma-b"] and list(water.parent) == [-1, 0]
    assert list(water.meters_of("dma-a", "customer")) == ["wtr-c1", "wtr-c2"]
    assert list(water.rows_of(["wtr-c3", "wtr-c1", "nope", "pwr-c1"])) == [1, 0, -1, -1]
    power = net.topology("power")
    assert list(power.transformer) == ["pwr-tx1"]
    assert list(power.meters_of("fdr-1", "customer")) == ["pwr-c1", "pwr-c2"]
    assert net.network("fdr-1").meters == {"transformer": ["pwr-tx1"], "customer": ["pwr-c1", "pwr-c2"]}


def test_setting_a_dma_again_replaces_its_meters(net):
    net.set_network(dma("dma-a", ["wtr-in1"], ["wtr-c1", "wtr-c2"]))
    net.set_network(dma("dma-a", ["wtr-in1"], ["wtr-c3"]))
    assert net.network("dma-a").meters["customer"] == ["wtr-c3"]
    net.set_network(dma("dma-b", ["wtr-in2"], ["wtr-c1"]))  # wtr-c1 left dma-a: free for another
    assert list(net.topology("water").rows_of(["wtr-c1"])) == [1]


def test_a_meter_in_two_dmas_is_refused_naming_the_other(net):
    net.set_network(dma("dma-a", ["wtr-in1"], ["wtr-c1"]))
    error = refused(net, dma("dma-b", ["wtr-in2"], ["wtr-c1"]))
    assert error.reason == "meter_elsewhere" and "wtr-c1 is in dma dma-a" in str(error)
    error = refused(net, dma("dma-b", ["wtr-in2"], ["wtr-c2", "wtr-c2"]))
    assert error.reason == "duplicate_meter" and "wtr-c2" in str(error)
    error = refused(net, dma("dma-b", ["wtr-c2"], ["wtr-c2"]))
    assert error.reason == "duplicate_meter"


def test_a_meter_in_two_feeders_is_refused(net):
    net.set_network(feeder("fdr-1", ["pwr-tx1"], ["pwr-c1"]))
    error = refused(net, feeder("fdr-2", ["pwr-c2"], ["pwr-c1"]))
    assert error.reason == "meter_elsewhere" and "pwr-c1 is in feeder fdr-1" in str(error)


def test_a_loop_of_parent_dmas_is_refused_with_the_loop(net):
    net.set_network(dma("dma-a", ["wtr-in1"], []))
    net.set_network(dma("dma-b", ["wtr-in2"], [], parent="dma-a"))
    net.set_network(dma("dma-c", ["wtr-c1"], [], parent="dma-b"))
    error = refused(net, dma("dma-a", ["wtr-in1"], [], parent="dma-c"))
    assert error.reason == "loop" and "dma-a -> dma-c -> dma-b -> dma-a" in str(error)
    assert refused(net, dma("dma-a", ["wtr-in1"], [], parent="dma-a")).reason == "loop"
    assert refused(net, dma("dma-d", ["wtr-c2"], [], parent="nowhere")).reason == "unknown_parent"


def test_a_dma_without_an_inlet_and_a_feeder_without_a_transformer_are_refused(net):
    error = refused(net, dma("dma-a", [], ["wtr-c1"]))
    assert error.reason == "no_inlet" and "dma-a has no inlet meter" in str(error)
    assert refused(net, feeder("fdr-1", [], ["pwr-c1"])).reason == "no_transformer"
    assert refused(net, feeder("fdr-1", ["pwr-tx1", "pwr-c2"], ["pwr-c1"])).reason == "no_transformer"


def test_unknown_and_wrong_kind_meters_are_refused(net):
    error = refused(net, dma("dma-a", ["wtr-in1"], ["wtr-c1", "wtr-ghost"]))
    assert error.reason == "unknown_device" and "wtr-ghost" in str(error)
    error = refused(net, dma("dma-a", ["wtr-in1"], ["pwr-c1"]))
    assert error.reason == "wrong_kind" and "pwr-c1 (power)" in str(error)
    assert refused(net, feeder("fdr-1", ["wtr-in1"], [])).reason == "wrong_kind"
    assert refused(net, feeder("fdr-1", ["pwr-tx1"], ["x"])).reason == "bad_id"


def test_a_dma_and_a_feeder_cannot_share_an_id(net):
    net.set_network(dma("net-1", ["wtr-in1"], []))
    assert refused(net, feeder("net-1", ["pwr-tx1"], [])).reason == "id_taken"


def test_a_dma_holding_sub_dmas_is_not_removed(net):
    net.set_network(dma("dma-a", ["wtr-in1"], ["wtr-c1"]))
    net.set_network(dma("dma-b", ["wtr-in2"], [], parent="dma-a"))
    with pytest.raises(TopologyError, match="still holds sub-dmas dma-b"):
        net.remove_network("dma-a")
    net.remove_network("dma-b")
    net.remove_network("dma-a")
    assert net.networks() == [] and net.get("wtr-c1").kind == "water"
    with pytest.raises(TopologyError) as caught:
        net.remove_network("dma-a")
    assert caught.value.status == 404


def test_rows_of_is_vectorised_over_many_meters(registry):
    ids = [f"wtr-{i:05d}" for i in range(3000)]
    _add(registry, "water", *ids)
    registry.set_network(dma("dma-big", ids[:10], ids[10:2000]))
    rows = registry.topology("water").rows_of(np.array(ids))
    assert (rows[:2000] == 0).all() and (rows[2000:] == -1).all()
