"""Open-data files rendered by the rollup job (api/opendata/prerender.py) on the live API with real influxd:
the first request for a month or a day after the job ran is served from the cache, byte for byte what the
API makes on request; a late reading the rollup re-ran over is in the next download (the job re-renders,
and a file the API had made before the change is not served again); a policy change never serves a file
rendered under the old policy."""

import json
import time
from pathlib import Path

import pytest

from api.opendata import prerender
from tests.api.opendata_seed import HOUR_MS, roll_up, write_readings
from tests.api.test_opendata_cells import FULL, SPARSE, _readings

PROFILE = Path(__file__).resolve().parents[2] / "cities" / "tanjungpinang.yaml"
DATASET = "water-flow_lps"


def _write_profile(path: Path, section: dict) -> None:
    text = PROFILE.read_text(encoding="utf-8").split("\nopen_data:")[0]
    path.write_text(text + "\nopen_data: " + json.dumps(section) + "\n", encoding="utf-8")


@pytest.fixture
def city(make_api, tmp_path):
    profile = tmp_path / "city.yaml"
    _write_profile(profile, {"k": 3})
    api = make_api(profile=profile, api_public_rate_per_min=100_000, api_opendata_rate_per_min=100_000)
    influx = api.services.influx
    end = (int(time.time() * 1000) // HOUR_MS) * HOUR_MS
    start = end - 6 * HOUR_MS
    write_readings(influx, _readings(start, end))
    roll_up(influx, start, end)
    report = prerender.after_rollup(api.settings, influx, start, end)
    assert report["rendered"] > 0 and report["bytes"] > 0
    return api, influx, profile, start, end


def _periods(api, start: int, end: int) -> list[str]:
    return prerender.periods_between(api.settings.city, start, end)


def _get(api, dataset: str, period: str, fmt: str):
    with api.client() as c:
        return c.get(f"/opendata/download/{dataset}/{period}.{fmt}")


def _drop_cells(influx) -> None:
    """Nothing left to read a download from: only a cached file can answer now."""
    for name in ("water_district_1h", "water_1h"):
        influx.raw(f'DROP MEASUREMENT "{name}"', method="POST")


def test_the_first_download_after_the_rollup_job_is_the_prerendered_file(city, make_api):
    api, influx, profile, start, end = city
    cold_api = make_api(profile=profile, api_public_data_cache_mb=0, api_opendata_rate_per_min=100_000)
    periods = _periods(api, start, end)
    expected = {(p, f): _get(cold_api, DATASET, p, f).content for p in periods for f in prerender.PRERENDER_FORMATS}
    assert any(FULL.encode() in body for body in expected.values())
    _drop_cells(influx)
    for (period, fmt), body in expected.items():
        answer = _get(api, DATASET, period, fmt)
        assert answer.status_code == 200 and answer.content == body, (period, fmt)
    assert all(SPARSE.encode() not in body for body in expected.values())  # k applied in the files too


def test_a_late_reading_is_in_the_first_download_after_the_rollup_job_ran_again(city):
    api, influx, profile, start, end = city
    periods = _periods(api, start, end)
    day = next(p for p in periods if len(p) == 10 and start < prerender.datasets.period_bounds(
        api.settings.city, p)[1])
    before_json = _get(api, DATASET, day, "json").content  # not pre-rendered: made by the API, and cached
    assert SPARSE.encode() not in _get(api, DATASET, day, "csv").content
    late_hour = start + 2 * HOUR_MS  # a third SPARSE device, back online, sends an hour it had kept
    write_readings(influx, [f"water,device=wtr-s9,district={SPARSE} flow_lps=1000.0 {late_hour + m * 60_000}"
                            for m in range(0, 60, 5)])
    roll_up(influx, start, end)  # `city rollup run` re-runs its lookback hours ...
    prerender.after_rollup(api.settings, influx, start, end)  # ... and renders what changed
    _drop_cells(influx)  # so the answers below can only come from the cache
    for period in periods:
        body = _get(api, DATASET, period, "csv").content.decode()
        if prerender.datasets.period_bounds(api.settings.city, period)[0] <= late_hour < \
                prerender.datasets.period_bounds(api.settings.city, period)[1]:
            late = [line for line in body.splitlines() if SPARSE in line]
            assert len(late) == 1, body
            assert float(late[0].split(",")[4]) == 1000.0 and late[0].split(",")[6] == "3"  # max, devices
    # the JSON file the API made before the change is not served: made again (from no cells now)
    assert _get(api, DATASET, day, "json").content != before_json


def test_a_file_rendered_under_an_older_policy_is_never_served(city):
    api, influx, profile, start, end = city
    period = _periods(api, start, end)[0]
    assert _get(api, DATASET, period, "csv").content.count(FULL.encode()) > 0
    _write_profile(profile, {"k": 3, "metrics": {"water.flow_lps": {"mode": "closed"}}})
    assert _get(api, DATASET, period, "csv").status_code == 404  # closed: the pre-rendered file is not served
    _write_profile(profile, {"k": 5})  # FULL's cells have 3-4 devices: none published at k 5
    assert FULL.encode() not in _get(api, DATASET, period, "csv").content
    report = prerender.after_rollup(api.settings, influx, start, end)  # the job deletes the old policy's files
    assert report["deleted"] > 0
    files = list((api.settings.data_dir / "opendata-cache" / DATASET).iterdir())
    assert files and all(FULL.encode() not in f.read_bytes() for f in files if f.suffix == ".csv")


def test_the_prerendered_share_of_the_cache_is_bounded(city, monkeypatch):
    api, influx, profile, start, end = city
    monkeypatch.setattr(prerender, "PRERENDER_SHARE", 1e-9)  # room for one month only
    cache = api.settings.data_dir / "opendata-cache"
    for folder in cache.iterdir():
        if folder.is_dir():
            for f in folder.iterdir():
                f.unlink()
    report = prerender.after_rollup(api.settings, influx, start, end)
    rendered = [f for folder in cache.iterdir() if folder.is_dir() for f in folder.iterdir()]
    months = {f.name.split(".")[0] for f in rendered if len(f.name.split(".")[0]) == 7}
    assert len(months) == 1 and report["rendered"] == len(rendered)
    assert (cache / ".cells-changed.json").exists()
