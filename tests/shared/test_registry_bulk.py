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


def test_a_first_message_or_a_silence_does_not_reload_every_cache(registry, tmp_path):
    """The hot path's caches reload the whole registry when its version moves (100,000 devices: seconds a
    process): a device's first message (provisioned -> active) and silent <-> active leave it alone; a
    retirement, a new kind or district, a new credential and a new device move it."""
    registry.add_many(fleet(3))
    version = registry.version()
    cache = RegistryCache(registry, check_s=0)
    assert cache.get("pwr-000001").state == "provisioned"
    registry.seen_many([("pwr-000000", 1, "1.0"), ("pwr-000001", 2, "1.0")])  # first messages: now active
    assert registry.get("pwr-000000").state == "active" and registry.version() == version
    registry.update("pwr-000000", state="silent")
    registry.update("pwr-000000", state="active")
    assert registry.version() == version
    assert cache.get("pwr-000001").state == "provisioned"  # not reloaded: "not retired" is all the hot path asks
    registry.update("pwr-000001", state="retired")
    assert registry.version() > version and cache.get("pwr-000001").state == "retired"
    for change in ({"district": "bukit-bestari"}, {"credential_hash": "new"}):
        version = registry.version()
        registry.update("pwr-000002", **change)
        assert registry.version() > version, change
    version = registry.version()
    registry.update("pwr-000001", state="active")  # back from retirement
    assert registry.version() > version and cache.get("pwr-000001").state == "active"


def test_a_registry_made_before_keeps_its_devices_and_gets_the_new_trigger(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = Registry(path)
    old.add_many(fleet(2))
    old.db.executescript("""DROP TRIGGER devices_version_update_2;
CREATE TRIGGER devices_version_update AFTER UPDATE ON devices WHEN old.state IS NOT new.state
BEGIN UPDATE registry_meta SET value = value + 1 WHERE key = 'devices_version'; END;""")  # as files were
    old.close()
    registry = Registry(path)
    try:
        triggers = {r[0] for r in registry.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert "devices_version_update" not in triggers and "devices_version_update_2" in triggers
        version = registry.version()
        registry.seen_many([("pwr-000000", 1, "1.0")])
        assert registry.version() == version and registry.list(limit=1)[1] == 2
    finally:
        registry.close()
