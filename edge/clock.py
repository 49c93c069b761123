# UTC time in milliseconds, the timestamp every reading carries.
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


def ticks_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


def sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)
