"""Numba's cache follows the kernels' source: a compiled kernel that calls a kernel of another file is compiled
again when that other file changes (numba alone keeps the old machine code: it looks at its own file only)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import analytics.jitcache

CALLEE = """import numba
from pkg import jitcache  # noqa: F401
@numba.njit(cache=True)
def step(x):
    return x + {increment}
"""
CALLER = """import numba
from pkg import jitcache  # noqa: F401
from pkg.callee import step
@numba.njit(cache=True)
def twice(x):
    return step(step(x))
"""


def _package(root: Path) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(analytics.jitcache.__file__, package / "jitcache.py")
    (package / "callee.py").write_text(CALLEE.format(increment=1))
    (package / "caller.py").write_text(CALLER)
    return package


def _twice_of_zero(root: Path, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", "from pkg.caller import twice; print(twice(0))"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return env | extra


def test_a_change_to_a_called_kernel_in_another_file_is_compiled_again(tmp_path):
    package = _package(tmp_path)
    assert _twice_of_zero(tmp_path, _env()) == 2
    assert _twice_of_zero(tmp_path, _env()) == 2  # from the cache
    caller_stamp = (package / "caller.py").stat().st_mtime_ns
    (package / "callee.py").write_text(CALLEE.format(increment=5))  # the caller's file is left as it was
    assert (package / "caller.py").stat().st_mtime_ns == caller_stamp
    assert _twice_of_zero(tmp_path, _env()) == 10
    folders = [p.name for p in (package / "__pycache__").iterdir() if p.name.startswith("numba-")]
    assert len(folders) == 1, folders  # the older sources' folder is gone


def test_a_shared_cache_base_keeps_checkouts_apart(tmp_path):
    shared = tmp_path / "shared"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    _package(first), _package(second)
    (second / "pkg" / "callee.py").write_text(CALLEE.format(increment=3))
    env = _env(NUMBA_CACHE_DIR=str(shared))
    assert _twice_of_zero(first, env) == 2
    assert _twice_of_zero(second, env) == 6
    assert _twice_of_zero(first, env) == 2  # the second checkout did not remove (or take) the first's kernels
    assert len(list((shared / "city-telemetry").iterdir())) == 2


def test_the_engine_kernels_use_the_source_keyed_folder():
    import numba

    import analytics.detectors.stream_kernels  # noqa: F401

    folder = Path(numba.config.CACHE_DIR)
    assert folder.name == "numba-" + analytics.jitcache.source_key()
    assert folder == analytics.jitcache.CACHE_FOLDER
