"""Registry.add_many: a whole fleet in one transaction (the city-scale bench registers 100,000 devices)."""

import time

import pytest

from telemetry_shared.registry import DeviceExists, DeviceNew, Registry, RegistryCache

DISTRICT = "tanjungpinang-timur"


def fleet(n: int, start: int = 0) -> list[DeviceNew]:
    return [DeviceNew(id=f"pwr-{i:06d}", kind="power", district=DISTRICT) for i in range(start, start + n)]


def test_add_many_registers_a_fleet_that_the_hot_path_finds(registry):
    version = registry.version()
    started = time.monotonic()
    assert registry.add_many(fleet(20_000), credential_hash="h") == 20_000
    took = time.monotonic() - started
    assert registry.list(limit=1)[1] == 20_000 and registry.get("pwr-019999").credential_hash == "h"
    assert registry.version() > version  # ingest's and analytics' caches see the new devices
    assert RegistryCache(registry).get("pwr-012345").kind == "power"
    assert took < 30, took  # one commit, not 20,000 (those take minutes on this disk under load)


def test_add_many_adds_all_or_nothing(registry, tmp_path):
    registry.add_many(fleet(10))
    with pytest.raises(DeviceExists):
        registry.add_many(fleet(10, start=5))  # pwr-000005..9 exist
    assert registry.list(limit=1)[1] == 10
    again = Registry(tmp_path / "registry.sqlite3")  # the rollback is in the file, not only in this connection
    try:
        assert again.list(limit=1)[1] == 10 and registry.add_many(fleet(5, start=10)) == 5
    finally:
        again.close()
    assert registry.add_many([]) == 0
