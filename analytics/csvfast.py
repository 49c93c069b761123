"""The compiled CSV scan behind csvscore's fastest reader: the body's bytes to UTC milliseconds and float values in
one pass (numba), for the common layout only.

It takes: ASCII text, one line a row, the same number of fields on every line,
no quotes, no control characters but the separator and the newline, fields of
at most MAX_FIELD_CHARS, and a timestamp column that is either epoch integers
(1 to 16 digits, seconds below 1e11 as csvscore.parse_time reads them) or ISO
8601 dates `YYYY-MM-DD`, optionally `T` or a space and `HH:MM`, `:SS`, `.f` to
`.fff`, the same on every row with or without a trailing `Z`. Anything else
makes `scan` report failure and csvscore's plain reader reads the file, so the
table never differs from what that reader gives (tests/analytics/test_csvfast.py
holds the two together on hostile input).

Values are parsed exactly, as float() parses them, where that takes one
rounding: an optional sign, digits with an optional point, an optional
exponent, an integer mantissa below 2**53 (at most 18 significant digits) and a
decimal exponent within +-22. Both the mantissa and the power of ten are then
exact doubles, and one IEEE multiply or divide is the correctly rounded result
(Clinger 1990, the fast path of every correctly rounded parser). An empty cell
is NaN (a missing reading). Any other cell ("nan", " 7 ", "1e300", 25 digits)
is left to csvscore's value parser, cell by cell: its row is listed.
"""

import numba
import numpy as np

from analytics import jitcache  # noqa: F401  (before any cache=True kernel: the cache follows the sources)

# The status scan returns: 0 read, else why the file is left to the plain reader (for tests and profiling).
READ, ODD_BYTE, RAGGED, LONG_FIELD, ODD_TIME, MIXED_TIMES = 0, 1, 2, 3, 4, 5
_NEWLINE, _QUOTE, _DOT, _MINUS, _PLUS, _ZERO, _NINE = 10, 34, 46, 45, 43, 48, 57
# Exact doubles: every power of ten up to 1e22 is (5**22 < 2**53).
_POWERS = np.array([10.0 ** k for k in range(23)])
_DAYS_BEFORE_MONTH = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)
_DAY_MS = 86_400_000


@numba.njit(cache=True, nogil=True)
def _digits(buf: np.ndarray, start: int, count: int) -> int:
    """The number written by `count` ASCII digits from `start`; -1 if any is not a digit."""
    number = 0
    for i in range(start, start + count):
        c = buf[i]
        if c < _ZERO or c > _NINE:
            return -1
        number = number * 10 + (c - _ZERO)
    return number


@numba.njit(cache=True, nogil=True)
def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (valid input)."""
    leap_days_before = (year - 1) // 4 - (year - 1) // 100 + (year - 1) // 400 - (1969 // 4 - 1969 // 100
                                                                                   + 1969 // 400)
    leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
    days = 365 * (year - 1970) + leap_days_before + _DAYS_BEFORE_MONTH[month - 1] + day - 1
    if leap and month > 2:
        days += 1
    return days


@numba.njit(cache=True, nogil=True)
def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


@numba.njit(cache=True, nogil=True)
def _iso_ms(buf: np.ndarray, start: int, end: int, zulu: bool) -> tuple[bool, int]:
    """(ok, UTC ms) of `YYYY-MM-DD[(T| )HH:MM[:SS[.f{1,3}]]]`, followed by `Z` if and only if zulu."""
    if zulu:
        if end - start < 11 or buf[end - 1] != 90:  # "Z"
            return False, 0
        end -= 1
    size = end - start
    if size < 10 or buf[start + 4] != _MINUS or buf[start + 7] != _MINUS:
        return False, 0
    year, month, day = _digits(buf, start, 4), _digits(buf, start + 5, 2), _digits(buf, start + 8, 2)
    if year < 1 or month < 1 or month > 12 or day < 1 or day > _month_days(year, month):
        return False, 0
    ms = _days_from_civil(year, month, day) * _DAY_MS
    if size == 10:
        return True, ms
    separator = buf[start + 10]
    if size < 16 or (separator != 84 and separator != 32) or buf[start + 13] != 58:  # "T", " ", ":"
        return False, 0
    hour, minute = _digits(buf, start + 11, 2), _digits(buf, start + 14, 2)
    if hour < 0 or hour > 23 or minute < 0 or minute > 59:
        return False, 0
    ms += hour * 3_600_000 + minute * 60_000
    if size == 16:
        return True, ms
    if size < 19 or buf[start + 16] != 58:
        return False, 0
    second = _digits(buf, start + 17, 2)
    if second < 0 or second > 59:
        return False, 0
    ms += second * 1000
    if size == 19:
        return True, ms
    places = size - 20
    if buf[start + 19] != _DOT or places < 1 or places > 3:
        return False, 0
    fraction = _digits(buf, start + 20, places)
    if fraction < 0:
        return False, 0
    for _ in range(3 - places):
        fraction *= 10
    return True, ms + fraction


@numba.njit(cache=True, nogil=True)
def _value(buf: np.ndarray, start: int, end: int, powers: np.ndarray) -> tuple[bool, float]:
    """(ok, value) of a decimal cell on the exact fast path; not ok for anything else (csvscore parses it)."""
    if start == end:
        return True, np.nan
    i = start
    negative = False
    c = buf[i]
    if c in (_MINUS, _PLUS):
        negative = c == _MINUS
        i += 1
    mantissa = 0
    significant = 0  # digits of the mantissa from its first non-zero one
    digits = 0
    scale = 0  # digits after the point
    seen_point = False
    while i < end:
        c = buf[i]
        if _ZERO <= c <= _NINE:
            digits += 1
            if seen_point:
                scale += 1
            if mantissa or c != _ZERO:
                significant += 1
                if significant > 18:
                    return False, 0.0
                mantissa = mantissa * 10 + (c - _ZERO)
        elif c == _DOT and not seen_point:
            seen_point = True
        else:
            break
        i += 1
    if digits == 0:
        return False, 0.0
    exponent = 0
    if i < end:
        if buf[i] != 69 and buf[i] != 101:  # "E", "e"
            return False, 0.0
        i += 1
        exponent_negative = False
        if i < end and (buf[i] == _MINUS or buf[i] == _PLUS):
            exponent_negative = buf[i] == _MINUS
            i += 1
        count = end - i
        if count < 1 or count > 4:
            return False, 0.0
        exponent = _digits(buf, i, count)
        if exponent < 0:
            return False, 0.0
        if exponent_negative:
            exponent = -exponent
    if mantissa >= 9_007_199_254_740_992:  # 2**53
        return False, 0.0
    power = exponent - scale
    if mantissa == 0:
        value = 0.0
    elif 0 <= power <= 22:
        value = float(mantissa) * powers[power]
    elif -22 <= power < 0:
        value = float(mantissa) / powers[-power]
    else:
        return False, 0.0
    return True, -value if negative else value


@numba.njit(cache=True, nogil=True)
def scan(buf: np.ndarray, start: int, end: int, separator: int, width: int, time_column: int,
         value_column: int, max_field: int, times: np.ndarray, values: np.ndarray, starts: np.ndarray,
         others: np.ndarray) -> tuple[int, int, int]:
    """Read the lines of buf[start:end] (uint8; each ends with a newline, buf[end] too) into times (int64 UTC ms)
    and values (float64), starts (each line's first byte, then end + 1) and others (the rows whose value cell is
    off the fast path, in order). Returns (rows, others, status): status READ, else why the file is not taken.
    times, values: at least as long as the lines; starts one longer."""
    # Each byte's kind: 0 inside a cell, 1 the separator, 2 the newline, 3 refused (quotes, controls, not ASCII).
    kind = np.zeros(256, dtype=np.uint8)
    kind[:32] = 3
    kind[127:] = 3
    kind[9] = 0
    kind[_QUOTE] = 3
    kind[separator] = 1
    kind[_NEWLINE] = 2
    rows = 0
    other = 0
    mode = -1  # 0 epoch integers, 1 ISO, 2 ISO ending in Z
    stamp_size = 0  # the previous row's ISO timestamp's length (first column), 0: none
    position = start
    while position < end:
        line = position
        field = 0
        cell = position
        time_start = time_end = value_start = value_end = 0
        read_time = False
        # An ISO timestamp in the first column as long as the previous row's, followed by the separator: parsed
        # where it stands and its bytes not scanned one by one. _iso_ms checks every one of them (digits, '-',
        # 'T' or ' ', ':', '.', 'Z'), none of which is a separator, a newline or a refused byte, so a row it
        # reads is read as the scan below reads it; any other row is scanned below.
        if stamp_size and position + stamp_size < end and buf[position + stamp_size] == separator:
            read_time, ms = _iso_ms(buf, position, position + stamp_size, mode == 2)
            if read_time:
                times[rows] = ms
                field = 1
                position += stamp_size + 1
                cell = position
        while True:
            k = kind[buf[position]]
            if k:
                if k == 3:
                    return rows, other, ODD_BYTE
                if position - cell > max_field:
                    return rows, other, LONG_FIELD
                if field == time_column:
                    time_start, time_end = cell, position
                if field == value_column:
                    value_start, value_end = cell, position
                field += 1
                cell = position + 1
                if k == 2:
                    break
            position += 1
        position += 1
        if field != width:
            return rows, other, RAGGED
        if mode < 0:
            size = time_end - time_start
            if size >= 1 and _digits(buf, time_start, size) >= 0:
                mode = 0
            else:
                mode = 2 if size and buf[time_end - 1] == 90 else 1
        if mode == 0:
            size = time_end - time_start
            stamp = _digits(buf, time_start, size) if 1 <= size <= 16 else -1
            if stamp < 0 or stamp > 1_000_000_000_000_000:
                return rows, other, MIXED_TIMES
            times[rows] = stamp * 1000 if stamp < 100_000_000_000 else stamp
        elif not read_time:
            ok, ms = _iso_ms(buf, time_start, time_end, mode == 2)
            if not ok:
                return rows, other, ODD_TIME
            times[rows] = ms
            if time_column == 0:
                stamp_size = time_end - time_start
        ok, value = _value(buf, value_start, value_end, _POWERS)
        if ok:
            values[rows] = value
        else:
            values[rows] = np.nan
            others[other] = rows
            other += 1
        starts[rows] = line
        rows += 1
    starts[rows] = position
    return rows, other, READ
