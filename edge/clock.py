# Time for the firmware, one place for every module of edge/ (agent, mqtt):
# UTC milliseconds (the timestamp every reading carries) and the wrapping
# millisecond ticks of MicroPython, with CPython stand-ins so the same code
# runs in the simulator and the tests.
# MicroPython boards count from 2000-01-01; the unix port and CPython from 1970.

import time

_EPOCH_OFFSET_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


def utc_ms():
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1000000 + _EPOCH_OFFSET_MS
    return int(time.time() * 1000) + _EPOCH_OFFSET_MS


def ticks_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def ticks_add(a, delta):
    if hasattr(time, "ticks_add"):
        return time.ticks_add(a, delta)
    return a + delta


def ticks_diff(a, b):
    """a - b in ms; correct across the wrap of MicroPython's ticks."""
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


def sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)
