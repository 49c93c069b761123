"""The numba-compiled recursions give the numpy path's results, bit for bit, on everything the detectors see."""

import numpy as np
import pytest

from analytics import compiled
from analytics import detectors as d
from analytics.config import DAY_MS

START = 1_767_546_000_000


def both_paths(fn):
    if not compiled.AVAILABLE:
        pytest.fail("numba is not installed: pip install numba (a dependency in pyproject.toml)")
    assert compiled.active()
    fast = fn()
    with compiled.disabled():
        assert not compiled.active()
        slow = fn()
    assert compiled.active()  # switched back on
    return fast, slow


def test_score_series_is_identical_with_and_without_numba():
    """Four days at 10 minutes (the daily profile runs), gaps, a spike, a stuck stretch, a shift, a dead series."""
    rng = np.random.default_rng(3)
    n = 4 * 144
    times = START + np.arange(n) * 600_000
    x = 50 + 10 * np.sin(2 * np.pi * (times % DAY_MS) / DAY_MS)[None] + rng.normal(0, 1, (6, n))
    x = np.round(x, 1)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 500] = 100.0  # a spike
    x[1, 450:480] = 55.0
    x[2, 520:] += 6
    x[3] = np.nan  # never reported
    x[4, :300] = np.nan  # started late
    fast, slow = both_paths(lambda: d.score_series(x, times, with_evidence=True))
    assert (fast.evidence["seasonal"] > 0).any()  # the daily profile took part
    assert fast.evidence["flatline"][1, 470:480].max() > 4  # the stuck stretch is found
    np.testing.assert_array_equal(fast.combined, slow.combined)
    np.testing.assert_array_equal(fast.winner, slow.winner)
    for name in d.DETECTORS:
        np.testing.assert_array_equal(fast.evidence[name], slow.evidence[name])
    for part in ("expected", "scale", "z"):
        np.testing.assert_array_equal(getattr(fast.baseline, part), getattr(slow.baseline, part))


@pytest.mark.parametrize("values", [np.zeros((0, 5)), np.zeros((3, 0)), np.full((2, 7), np.nan), np.ones((1, 1)),
                                    np.array([[1e300, -1e300, 1e300, 0.0] * 10])])
def test_edge_shapes_and_extreme_values_agree(values):
    fast, slow = both_paths(lambda: d.robust_baseline(values))
    for part in ("expected", "scale", "z"):
        np.testing.assert_array_equal(getattr(fast, part), getattr(slow, part))
    fast_sides, slow_sides = both_paths(lambda: d.cusum_sides(fast.z))
    for a, b in zip(fast_sides, slow_sides, strict=True):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_and_integer_input_is_taken_as_float():
    x = np.arange(400, dtype=np.int64).reshape(4, 100)[:, ::2]  # a strided view of integers
    fast, slow = both_paths(lambda: d.robust_baseline(x))
    np.testing.assert_array_equal(fast.expected, slow.expected)
    assert fast.expected.dtype == np.float64


def test_without_numba_installed_the_numpy_path_runs():
    """A machine without numba: the import fails, analytics still scores (and says which path it took)."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys; sys.modules['numba'] = None\n"  # makes `import numba` raise ImportError
        "import numpy as np\n"
        "from analytics import compiled, detectors as d\n"
        "x = np.r_[np.random.default_rng(0).normal(50, 1, 200), 90.0][None]\n"
        "s = d.score_series(x)\n"
        "print(compiled.AVAILABLE, compiled.active(), round(float(s.combined[0, -1]), 3))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    available, active, spike = done.stdout.split()
    assert (available, active) == ("False", "False") and float(spike) > 0.9
