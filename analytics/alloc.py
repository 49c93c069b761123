"""Freed memory handed back to the operating system: glibc's malloc_trim, called by the engine's service loop.

Why: the engine's passes, its peer check and its checkpoints allocate and free arrays of 0.1-30 MB many
times a minute (a block of series, a block of meters, a chunk of the state file). glibc serves arrays of
that size from its heaps once it has freed one (its mmap threshold rises to the largest freed, up to 32 MB)
and keeps what is freed there for reuse, in one heap per thread that allocated (the stream, the peer check,
the saver): resident memory that is no state. `malloc_trim(0)` returns every heap's free pages, in a few
milliseconds. Measured (analytics/README.md, "What a series costs"): bench_memory.py --stream 6000, the
engine's resident memory above its start 972 MB (41.6 KB a series) without, 713 MB (30.5 KB) with a trim
every 5 s; glibc's fixed thresholds (MALLOC_MMAP_THRESHOLD_=131072) gave 821 MB but made the peer check
1.8-2.4x slower (every large temporary mapped and faulted in afresh), the trim leaves allocation as it is.
Elsewhere (musl, macOS) there is no malloc_trim: nothing is done.

A one-shot process that scores a file (`city score`) wants the opposite: keep_freed_memory() has glibc keep what
is freed for the next array (no mapping and no trim of the heap's top: the pages are faulted in once). Its large
temporaries (8 MB a million rows, dozens a score) were otherwise faulted in afresh whenever the heap's top had been
trimmed between them: 8-45 k page faults a million rows (~3.7 us each on this machine's VM), how many depending on
what else happened to be alive, not on the work (analytics/README.md, speed of `city score`). It also wants small
pages (small_pages()): numpy asks the kernel for transparent huge pages for every array of 4 MB or more, and each
2 MB page first touched cost this machine's VM far more system time than the 512 small pages it replaces.
"""

import ctypes
import ctypes.util


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def trim() -> bool:
    """Give the free pages of every malloc heap back to the system; True when some were (False: none, or no
    malloc_trim here). Safe from any thread, while others allocate (glibc locks each heap in turn)."""
    return _TRIM is not None and bool(_TRIM(0))


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory(largest: int = 1 << 30) -> bool:
    """For a process that does one large piece of work and exits: glibc serves allocations up to `largest` bytes
    from its heap and never trims the heap's top, so freed memory is reused, not faulted in again (resident memory
    stays at the high-water mark until exit). True when set; False where glibc's mallopt is not there (nothing
    done). Not for the engine's service, which trims (trim())."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    largest = min(int(largest), 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, largest)) and bool(mallopt(_M_TRIM_THRESHOLD, largest))


def small_pages() -> bool:
    """For the same one-shot process: numpy no longer asks for transparent huge pages for its large arrays
    (madvise(MADV_HUGEPAGE) on each of 4 MB or more, numpy's default on Linux). A fresh `city score` of a million
    rows first touches ~200 MB of arrays; as 2 MB pages that cost 0.39-0.58 s of system time, as 4 KB pages
    0.20-0.26 s (user time +0.03 s; analytics/README.md, `city score`'s huge pages). True when set; False where
    this numpy has no such switch (nothing done). Lasts for the process, for arrays made from then on."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        return False
    switch(False)
    return True
