"""The fleet file's broker entry: TLS settings go together, and the name checked in the
broker's certificate is a host name given only with TLS; anything else is refused by name."""

import pytest
from fleetsim.fleetfile import FleetError, parse_fleet

DEVICE = {"id": "wtr-0001", "kind": "water", "district": "bukit-bestari", "lat": 0.92, "lon": 104.45,
          "password": "x"}


def fleet(**broker) -> dict:
    return {"devices": [DEVICE], "broker": {"host": "mosquitto", "port": 1883} | broker}


def test_a_tls_fleet_keeps_the_name_to_check() -> None:
    parsed = parse_fleet(fleet(tls_port=8883, ca_file="/etc/city-ca/ca.crt", server_hostname="mqtt.city.example"))
    assert (parsed.host, parsed.tls_port, parsed.server_hostname) == ("mosquitto", 8883, "mqtt.city.example")
    assert parse_fleet(fleet(tls_port=8883, ca_file="ca.crt")).server_hostname is None


@pytest.mark.parametrize(("broker", "message"), [
    ({"tls_port": 8883}, "tls_port and ca_file"),
    ({"ca_file": "ca.crt"}, "tls_port and ca_file"),
    ({"tls_port": 70000, "ca_file": "ca.crt"}, "tls_port: must be 1..65535"),
    ({"server_hostname": "mqtt.city.example"}, "server_hostname"),  # without TLS it would mean nothing
    ({"tls_port": 8883, "ca_file": "ca.crt", "server_hostname": ""}, "server_hostname"),
    ({"tls_port": 8883, "ca_file": "ca.crt", "server_hostname": "x" * 254}, "server_hostname"),
    ({"tls_port": 8883, "ca_file": "ca.crt", "server_hostname": ["a"]}, "server_hostname"),
])
def test_bad_tls_settings_are_refused_by_name(broker: dict, message: str) -> None:
    with pytest.raises(FleetError, match=message):
        parse_fleet(fleet(**broker))
