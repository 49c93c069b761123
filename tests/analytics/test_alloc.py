"""analytics.alloc: the engine hands the memory glibc keeps after freeing its temporaries back to the system."""

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from analytics import alloc


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_trim_gives_back_the_freed_temporaries_glibc_keeps():
    """As in the engine: once an array above glibc's mmap threshold is freed, arrays up to its size come from the
    heap and stay resident when freed (here 200 arrays of 1 MB, freed but one in ten kept, so the heap cannot just
    shrink from its top); trim() returns most of them."""
    big = np.ones(2_000_000)  # 16 MB: mapped; freeing it raises the threshold to its size (up to 32 MB)
    del big
    arrays = [np.ones(131_072) for _ in range(200)]  # 1 MB each, from the heap now
    kept = arrays[::10]
    del arrays
    before = rss_mb()
    assert alloc.trim()
    assert before - rss_mb() > 100  # of the ~180 MB freed
    assert all(float(a[0]) == 1.0 for a in kept)  # what is still in use is untouched


def test_trim_is_safe_beside_threads_that_allocate():
    """The service trims on the stream's thread while the peer check and the saver allocate on theirs."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            np.ones((64, 4096)).sum()

    workers = [threading.Thread(target=churn) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(50):
            alloc.trim()
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)


_CHURN = """
import resource, sys
import numpy as np
from analytics import alloc
if sys.argv[1] == "keep":
    assert alloc.keep_freed_memory()
for _ in range(2):  # the heap grows once
    arrays = [np.ones(1_000_000) for _ in range(4)]
    del arrays
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # 32 MB made and freed at a time: more than glibc's own trim threshold then keeps
    arrays = [np.ones(1_000_000) for _ in range(4)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_keep_freed_memory_reuses_freed_arrays_instead_of_faulting_them_in_again():
    """`city score`'s setting (keep_freed_memory): arrays of 8 MB made and freed four at a time are faulted in
    again and again by glibc's default (the heap's top trimmed past its threshold), once with it. In a child
    process each: the setting lasts for the process."""
    root = str(Path(__file__).resolve().parents[2])
    faults = {side: int(subprocess.run([sys.executable, "-c", _CHURN, side], capture_output=True, text=True,
                                       check=True, cwd=root, env={**os.environ, "PYTHONPATH": root}).stdout)
              for side in ("default", "keep")}
    assert faults["keep"] < 500 < faults["default"]


_SCORE_PAGES = """
import re, sys
from pathlib import Path
from telemetry_cli.analytics import score
score([Path(sys.argv[1])], Path(sys.argv[2]), as_json=True)
print(re.search(r"AnonHugePages:\\s+(\\d+)", Path("/proc/self/smaps_rollup").read_text()).group(1))
"""


def _huge_pages_on_request() -> bool:
    """Linux gives transparent huge pages where a process asks for them (madvise), as numpy does by default."""
    try:
        return "[madvise]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text() \
            and Path("/proc/self/smaps_rollup").exists()
    except OSError:
        return False


@pytest.mark.skipif(not _huge_pages_on_request(), reason="transparent huge pages given only on request (madvise)")
def test_city_score_touches_its_arrays_as_small_pages(tmp_path):
    """`city score` of 600,000 rows (arrays of 4.8 MB, above numpy's 4 MB for asking for huge pages): no huge page
    in the process. Each 2 MB page first touched cost far more system time than its small pages (~0.2-0.3 s of a
    million rows); numpy's default gave this file's score ~70 MB of them."""
    n = 600_000
    seconds = 1_735_689_600 + 60 * np.arange(n)
    values = 15 * np.sin(2 * np.pi * np.arange(n) / 1440) + np.random.default_rng(0).normal(0, 1, n)
    stamps = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
    source = tmp_path / "big.csv"
    source.write_text("timestamp,value\n" + "".join(f"{s},{v:.3f}\n" for s, v in zip(stamps, values.tolist(),
                                                                                        strict=True)))
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", _SCORE_PAGES, str(source), str(tmp_path / "out.csv")],
                          capture_output=True, text=True, check=True, cwd=root, env={**os.environ, "PYTHONPATH": root})
    assert int(done.stdout.split()[-1]) == 0
