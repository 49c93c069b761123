"""Nothing outside the city profiles names a district, the city or a grid nominal value: the code
serves any city by its profile (CITY_PROFILE). The firmware (edge/) is held to the same rule for
names; its synthetic source's fallback grid serves a bare board that was given no config."""

import re
import subprocess
from pathlib import Path

import pytest

from telemetry_shared.city import load_profile

ROOT = Path(__file__).resolve().parents[2]
CODE = (".py", ".js", ".html", ".css", ".sh")
# tests name the shipped cities on purpose; the profiles are where the city lives; vendored libraries are not ours
SKIP = ("tests/", "cities/", "api/static/vendor/")
NOMINAL_CONTEXT = re.compile(r"volt|freq|nominal|\bhz\b|\d ?V\b", re.IGNORECASE)
PROFILE_PATH = re.compile(r"cities/[\w.-]+\.yaml")  # naming a profile file is how code finds the city


def _code_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed if name.endswith(CODE) and not name.startswith(SKIP)
            and (ROOT / name).is_file()]


def _names(profile) -> set[str]:
    names = {profile.name, profile.spec.time_zone, *profile.slugs}
    for district in profile.districts:
        names.update(district.names.values())
    return {name for name in names if len(name) >= 5}


@pytest.mark.parametrize("profile_file", sorted((ROOT / "cities").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_city_district_or_nominal_value_in_code(profile_file):
    profile = load_profile(profile_file)
    names = re.compile("|".join(re.escape(n) for n in sorted(_names(profile), key=len, reverse=True)), re.IGNORECASE)
    nominals = {profile.grid.nominal_voltage_v, profile.grid.nominal_frequency_hz, *profile.grid.voltage_limits_v,
                *profile.grid.frequency_limits_hz}
    number = re.compile(r"(?<![\w.])(" + "|".join(re.escape(f"{v:g}") for v in nominals) + r")(\.0+)?(?![\w.])")
    found = []
    for path in _code_files():
        rel = path.relative_to(ROOT).as_posix()
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            line = PROFILE_PATH.sub("", line)
            nominal = (not rel.startswith("edge/hw/synthetic.py") and NOMINAL_CONTEXT.search(line)
                       and number.search(line))
            if names.search(line) or nominal:
                found.append(f"{rel}:{lineno}: {line.strip()}")
    assert not found, f"{profile.name} in code (move it to the profile):\n" + "\n".join(found)
