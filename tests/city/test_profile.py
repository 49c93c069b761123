"""The city profile: both shipped profiles load, a bad one is refused naming its line and field,
devices in a district the profile lacks stop a service from starting, and the grid limits of
the analytics come from the profile (a 60 Hz city's frequency is normal there, not in a 50 Hz one)."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analytics.config import city_limits
from analytics.rules import score_metric
from telemetry_shared.city import ProfileError, load_profile
from telemetry_shared.registry import DeviceNew, Registry

ROOT = Path(__file__).resolve().parents[2]
CITIES = ROOT / "cities"
TANJUNGPINANG = CITIES / "tanjungpinang.yaml"
HONOLULU = CITIES / "honolulu.yaml"


def test_both_profiles_load_with_their_districts_zone_and_grid():
    tpi = load_profile(TANJUNGPINANG)
    assert tpi.slugs == ("bukit-bestari", "tanjungpinang-kota", "tanjungpinang-barat", "tanjungpinang-timur")
    assert tpi.district("tanjungpinang-barat").name("id") == "Tanjungpinang Barat"
    assert tpi.spec.time_zone == "Asia/Jakarta" and tpi.utc_offset_hours == 7 and tpi.spec.default_language == "id"
    assert (tpi.grid.nominal_voltage_v, tpi.grid.nominal_frequency_hz) == (230, 50)
    # the old town on the peninsula, the east inland
    assert tpi.district_at(0.92, 104.445) == "tanjungpinang-barat"
    assert tpi.district_at(0.90, 104.55) == "tanjungpinang-timur"
    assert tpi.district_at(1.5, 104.5) is None
    hnl = load_profile(HONOLULU)
    assert hnl.utc_offset_hours == -10 and (hnl.grid.nominal_voltage_v, hnl.grid.nominal_frequency_hz) == (120, 60)
    assert hnl.district_at(21.28, -157.83) == "waikiki"


def _broken(tmp_path: Path, old: str, new: str, source: Path = TANJUNGPINANG) -> Path:
    text = source.read_text()
    assert old in text
    path = tmp_path / "city.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("old", "new", "needle", "field", "says"), [
    ("time_zone: Asia/Jakarta", "time_zone: Asia/Tanjungpinang", "time_zone:", "time_zone", "unknown IANA time zone"),
    ("default_language: id ", "default_language: ms ", "default_language:", "default_language", "'id' or 'en'"),
    ("voltage_limits_v: [207, 253]", "voltage_limits_v: [240, 253]", "voltage_limits_v", "grid.voltage_limits_v",
     "must bracket the nominal"),
    ("public_holidays: ID ", "public_holidays: XX ", "public_holidays:", "calendar.public_holidays", "no calendar"),
    ("  - slug: tanjungpinang-kota", "  - slug: Tanjungpinang Kota", "slug: Tanjungpinang Kota", "districts[1].slug",
     "a slug is"),
    ("working_days: [mon, tue, wed, thu, fri]", "working_days: [mon, tue, wed, thu, fry]", "working_days",
     "calendar.working_days[4]", "'mon'"),
    ("{date: 2026-02-16,", "{date: 2026-02-30,", "2026-02-30", "calendar.days_off[0].date", "date"),
])
def test_a_bad_field_is_named_with_its_line(tmp_path, old, new, needle, field, says):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert f"{path}:{_line(path, needle)}: {field}: " in message, message
    assert says in message, message


def test_overlapping_boundaries_are_refused_naming_both_districts(tmp_path):
    # Downtown's north edge pushed into Kalihi
    path = _broken(tmp_path, "[-157.845, 21.315], [-157.870, 21.315]", "[-157.845, 21.330], [-157.870, 21.330]",
                   HONOLULU)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    boundary_line = _line(path, "slug: downtown") + 2
    assert f"{path}:{boundary_line}: districts[1].boundary: overlaps 'kalihi' (districts[0])" in message, message


def test_a_self_crossing_boundary_is_refused(tmp_path):
    bowtie = "[[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]"
    path = _broken(tmp_path, "coordinates: [[[-157.900, 21.315], [-157.865, 21.315], [-157.865, 21.350], "
                   "[-157.900, 21.350],\n                     [-157.900, 21.315]]]", f"coordinates: {bowtie}", HONOLULU)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert "districts[0].boundary: invalid boundary: Self-intersection" in str(caught.value)


def test_a_missing_file_and_broken_yaml_say_what(tmp_path):
    with pytest.raises(ProfileError, match="cannot be read.*CITY_PROFILE"):
        load_profile(tmp_path / "nowhere.yaml")
    path = tmp_path / "city.yaml"
    path.write_text("name: X\ndistricts: [\n")
    with pytest.raises(ProfileError, match=r"city.yaml:3: not YAML"):
        load_profile(path)
    with pytest.raises(ProfileError, match="larger than 8 MB"):
        load_profile("/dev/zero")
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(ProfileError, match="utf-8"):
        load_profile(path)
    path.write_text("name: X\n")
    with pytest.raises(ProfileError, match=r"city.yaml:1: time_zone: Field required"):
        load_profile(path)


def test_a_district_outside_the_profile_is_refused_naming_the_allowed_slugs():
    with pytest.raises(ValidationError) as caught:
        DeviceNew(id="wtr-0001", kind="water", district="atlantis")
    assert "unknown district 'atlantis'" in str(caught.value)
    assert "bukit-bestari, tanjungpinang-kota, tanjungpinang-barat, tanjungpinang-timur" in str(caught.value)
    assert DeviceNew(id="wtr-0001", kind="water", district="tanjungpinang-kota").district == "tanjungpinang-kota"


@pytest.mark.parametrize("service", ["api", "ingest", "analytics"])
def test_a_registered_device_in_a_district_the_profile_lacks_stops_the_service(tmp_path, service):
    registry = Registry(tmp_path / "registry.sqlite3")
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    registry.close()
    env = dict(os.environ, CITY_DATA_DIR=str(tmp_path), CITY_PROFILE=str(HONOLULU), CITY_ENVIRONMENT="test",
               CITY_INGEST_METRICS_PORT="0", CITY_MQTT_PORT="1", CITY_API_PORT="1")
    done = subprocess.run([sys.executable, "-m", service], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "wtr-0001 in 'bukit-bestari'" in done.stderr and "allowed: kalihi, downtown, waikiki, kaimuki" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_bad_profile_stops_the_service_naming_line_and_field(tmp_path):
    path = _broken(tmp_path, "time_zone: Asia/Jakarta", "time_zone: Mars/Olympus")
    env = dict(os.environ, CITY_DATA_DIR=str(tmp_path), CITY_PROFILE=str(path), CITY_ENVIRONMENT="test")
    done = subprocess.run([sys.executable, "-m", "api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and f"{path}:{_line(path, 'time_zone')}: time_zone: unknown IANA" in done.stderr


@pytest.mark.parametrize("old,new,says", [
    ("[-157.845, 21.315], [-157.870, 21.315]", "[-157.845, 21.330], [-157.870, 21.330]", "overlaps 'kalihi'"),
    ("public_holidays: US-HI", "public_holidays: XX", "no calendar 'XX'"),
])
def test_the_ingest_worker_checks_geometry_and_calendar_although_it_loads_light(tmp_path, old, new, says):
    # The worker skips shapely and holidays for its own memory (use_light_profiles); the checks
    # that need them run in a child process, so a bad boundary or calendar still stops it.
    path = _broken(tmp_path, old, new, HONOLULU)
    env = dict(os.environ, CITY_DATA_DIR=str(tmp_path), CITY_PROFILE=str(path), CITY_ENVIRONMENT="test",
               CITY_INGEST_METRICS_PORT="0", CITY_MQTT_PORT="1")
    done = subprocess.run([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and says in done.stderr and f"{path}:" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_light_profile_imports_neither_shapely_nor_holidays_until_used():
    code = ("import sys; from telemetry_shared.city import load_profile; p = load_profile(sys.argv[1], full=False); "
            "print(sorted(m for m in ('shapely', 'holidays', 'numpy') if m in sys.modules)); "
            "print(p.district_at(21.33, -157.88), sorted(m for m in ('shapely', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(HONOLULU)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.splitlines() == ["[]", "kalihi ['numpy', 'shapely']"], done.stdout + done.stderr


def _rules(limits, metric: str, values: list[float]) -> list[str]:
    x = np.array([values], dtype=float)
    scores = score_metric(metric, x, None, limits=limits)
    return [rule if score >= 1.0 else "" for rule, score in zip(scores.rule[0], scores.score[0], strict=True)]


def test_grid_limits_come_from_the_profile():
    fifty, sixty = city_limits(load_profile(TANJUNGPINANG)), city_limits(load_profile(HONOLULU))
    assert _rules(sixty, "frequency_hz", [60.0, 60.02, 50.0]) == ["", "", "frequency_out_of_range"]
    assert _rules(fifty, "frequency_hz", [50.0, 49.98, 60.0]) == ["", "", "frequency_out_of_range"]
    assert _rules(sixty, "voltage_v", [120.0, 118.0, 230.0, 105.0]) == ["", "", "voltage_out_of_range",
                                                                        "voltage_out_of_range"]
    assert _rules(fifty, "voltage_v", [230.0, 120.0]) == ["", "voltage_out_of_range"]
    # under 10 % of the nominal the supply is lost, a different consequence (high, not medium)
    assert _rules(fifty, "voltage_v", [22.0, 24.0, 0.0]) == ["supply_lost", "voltage_out_of_range", "supply_lost"]
    assert _rules(sixty, "turbidity_ntu", [0.5, 2.0]) == ["", "turbidity_high"]
    assert _rules(fifty, "turbidity_ntu", [0.5, 2.0]) == ["", ""]


def test_the_configured_profile_is_the_one_the_settings_name(monkeypatch):
    from telemetry_shared.settings import Settings

    monkeypatch.setenv("CITY_PROFILE", str(HONOLULU))
    settings = Settings()
    assert settings.city_name == "Honolulu" and settings.utc_offset_hours == -10
    assert settings.city.slugs == ("kalihi", "downtown", "waikiki", "kaimuki")


def test_the_stored_registry_is_read_even_after_the_profile_changed(tmp_path):
    """A device stored earlier reads back (so `city device` can move it), only new ones are checked."""
    path = tmp_path / "registry.sqlite3"
    registry = Registry(path)
    registry.add(DeviceNew(id="wtr-0001", kind="water", district="bukit-bestari"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE devices SET district = 'atlantis'")
    assert registry.get("wtr-0001").district == "atlantis"
    assert [d.district for d in registry.list()[0]] == ["atlantis"]
