"""`city score IN.csv --out OUT.csv`: tolerant of real-world CSVs, strict
with broken ones, causal, and the anomaly is what scores high."""

import csv
import io
import json
import math
import os
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analytics import csvscore
from analytics.csvscore import CsvError, read_table, score_table
from telemetry_cli.main import app

runner = CliRunner()
START = datetime(2014, 4, 1, tzinfo=UTC)


def series(n: int = 1500, spike_at: int | None = 1200, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(np.arange(n) / 288 * 2 * np.pi) + rng.normal(0, 1, n)
    if spike_at is not None:
        values[spike_at] += 40
    return [round(float(v), 3) for v in values]


def csv_text(values: list[float], header: str | None = "timestamp,value", stamp=None, sep: str = ",") -> str:
    stamp = stamp or (lambda i: (START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"))
    lines = [header] if header else []
    lines += [f"{stamp(i)}{sep}{v}" for i, v in enumerate(values)]
    return "\n".join(lines) + "\n"


def run_cli(tmp_path, text: str | bytes, *extra: str):
    source = tmp_path / "in.csv"
    if isinstance(text, bytes):
        source.write_bytes(text)
    else:
        source.write_text(text)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["score", str(source), "--out", str(out), *extra])
    return result, out


def read_scores(path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(path.open()))
    return rows[0], rows[1:]


def test_cli_writes_input_rows_plus_a_score_and_the_spike_is_the_top(tmp_path):
    values = series()
    result, out = run_cli(tmp_path, csv_text(values), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == len(values)
    header, rows = read_scores(out)
    assert header == ["timestamp", "value", "anomaly_score", "incident", "detector", "learning"]
    assert [float(r[1]) for r in rows] == values  # the input rows, untouched
    scores = np.array([float(r[2]) for r in rows])
    assert scores.min() >= 0 and scores.max() <= 1
    assert scores.argmax() == 1200 and scores[1200] > 0.99
    assert (scores > 0.8).sum() <= 3
    assert max(float(r[3] or 0) for r in rows) <= 1  # at most one incident held, the spike's



def _one_degree_thermometer(seed: int, n: int = 10_000) -> np.ndarray:
    """A machine's temperature wandering slowly (a random walk and a slow AR(1)) with 0.2 degrees of noise, read
    every 5 minutes by a sensor of 1-degree resolution: it holds a reading for hours while the temperature sits
    inside a degree, and flickers between two readings while it sits at a degree's edge."""
    rng = np.random.default_rng(seed)
    slow = np.empty(n)
    level = 0.0
    for i, shock in enumerate(rng.normal(0, 0.6 * math.sqrt(1 - 0.995**2), n)):
        level = 0.995 * level + shock
        slow[i] = level
    return np.round(60 + np.cumsum(rng.normal(0, 0.016, n)) + slow + rng.normal(0, 0.2, n))


@pytest.mark.parametrize("seed", range(6))
def test_a_one_degree_thermometer_raises_no_alarm_while_its_faults_still_do(seed):
    """A coarse sensor's own runs and flicker are no stuck sensor and no larger spread: on main 4 of these 6
    clean files had rows at >= 0.98 (long runs scored as stuck, flicker as a change of spread). A jump of 6
    degrees, a reading stuck for 800 rows (several times the longest run the file shows) and a noise grown five
    times still score >= 0.98."""
    def scores(values: np.ndarray) -> np.ndarray:
        return score_table(read_table(csv_text([float(v) for v in values])))

    clean = _one_degree_thermometer(seed)
    assert scores(clean).max() < 0.98
    spike = clean.copy()
    spike[8000] += 6
    assert scores(spike)[8000] >= 0.98
    at = 7000 + int(np.argmax(clean[7000:8000] > clean[:7000].min()))  # not idle at the lowest reading
    stuck = clean.copy()
    stuck[at:at + 800] = clean[at - 1]
    assert scores(stuck)[at:at + 800].max() >= 0.98
    noisy = clean.copy()
    noisy[8000:] = np.round(noisy[8000:] + np.random.default_rng(seed + 99).normal(0, 1.0, 2000))
    assert scores(noisy)[8000:8100].max() >= 0.98

def test_cli_table_output(tmp_path):
    result, _ = run_cli(tmp_path, csv_text(series(400, None)))
    assert result.exit_code == 0 and "rows above 0.8" in result.stdout


def test_scores_are_causal():
    values = series()
    full = score_table(read_table(csv_text(values)))
    prefix = score_table(read_table(csv_text(values[:1000])))
    np.testing.assert_array_equal(full[:1000], prefix)


@pytest.mark.parametrize("header", ["timestamp,value", "Timestamp,Value", "time,val", "date,y",
                                    '"timestamp","value"', None])
def test_header_variations_give_the_same_scores(header):
    values = series(600, 500)
    want = score_table(read_table(csv_text(values)))
    np.testing.assert_array_equal(score_table(read_table(csv_text(values, header))), want)


def test_separators_bom_and_crlf():
    values = series(600, 500)
    want = score_table(read_table(csv_text(values)))
    for text in (csv_text(values, "timestamp;value", sep=";"), csv_text(values, "timestamp\tvalue", sep="\t"),
                 "\ufeff" + csv_text(values), csv_text(values).replace("\n", "\r\n")):
        np.testing.assert_array_equal(score_table(read_table(text)), want)


def test_extra_columns_and_a_label_column_is_never_the_value():
    values = series(600, 500)
    lines = ["label,timestamp,value,host"]
    lines += [f"{int(i == 500)},{1396310400 + 300 * i},{v},web-1" for i, v in enumerate(values)]
    table = read_table("\n".join(lines))
    assert table.value_column == 2 and table.time_column == 1
    assert score_table(table).argmax() == 500


@pytest.mark.parametrize("stamp", [
    lambda i: str(1396310400 + 300 * i),  # epoch seconds
    lambda i: str((1396310400 + 300 * i) * 1000),  # epoch milliseconds
    lambda i: (START + timedelta(minutes=5 * i)).isoformat().replace("+00:00", "Z"),
    lambda i: (START + timedelta(minutes=5 * i)).isoformat(),
    lambda i: (START + timedelta(minutes=5 * i)).strftime("%m/%d/%Y %H:%M"),
    lambda i: (START + timedelta(minutes=5 * i)).strftime("%Y/%m/%d %H:%M:%S"),
    lambda i: (START + timedelta(minutes=5 * i)).strftime("%d.%m.%Y %H:%M"),
], ids=["epoch-s", "epoch-ms", "iso-z", "iso-offset", "us-sheet", "slashes", "dotted"])
def test_timestamp_formats(stamp):
    table = read_table(csv_text(series(50, None), stamp=stamp))
    assert table.times_ms[0] == 1396310400000 and table.times_ms[1] - table.times_ms[0] == 300_000


def test_irregular_times_gaps_missing_values_and_duplicates():
    rng = np.random.default_rng(2)
    steps = np.cumsum(rng.integers(200, 400, 3000))
    steps[1500:] += 3 * 3600  # a three-hour gap
    # A daily curve in time (not in rows: the rows come irregularly), with a spike at row 2800.
    curve = 50 + 10 * np.sin(2 * np.pi * steps / 86400) + rng.normal(0, 1, 3000)
    curve[2800] += 40
    values: list = [round(float(v), 3) for v in curve]
    steps[100] = steps[99]  # a duplicate time
    for i in (10, 11, 700, 2000):
        values[i] = ["", "NaN", "null", "nan"][i % 4]
    lines = ["timestamp,value"] + [f"{1396310400 + s},{v}" for s, v in zip(steps, values, strict=True)]
    table = read_table("\n".join(lines))
    scores = score_table(table)
    assert np.isnan(table.values[[10, 11, 700, 2000]]).all()
    assert (scores[[10, 11, 700, 2000]] == 0).all()
    assert scores.argmax() == 2800


def test_out_of_order_rows_are_scored_in_file_order():
    values = series(600, None)
    lines = csv_text(values).splitlines()
    lines[300], lines[301] = lines[301], lines[300]
    scores = score_table(read_table("\n".join(lines)))
    assert scores.shape == (600,) and np.isfinite(scores).all()


def test_constant_and_tiny_files():
    assert (score_table(read_table(csv_text([7.0] * 500))) == 0).all()
    assert score_table(read_table(csv_text([1.0]))).tolist() == [0.0]
    assert score_table(read_table("timestamp,value\n")).size == 0


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("\n\n  \n", "empty"),
    ("timestamp,value\nyesterday,1.0\n", "line 2: cannot read timestamp"),
    ("timestamp,value\n2014-04-01 00:00:00,abc\n", "line 2: value 'abc' is not a number"),
    ("timestamp,value\n2014-04-01 00:00:00,1.0,3\n", "line 2: 3 fields"),
    ("timestamp\n", "no value column"),
    ("2014-04-01 00:00:00\n", "at least two columns"),
    ("timestamp,value\n1e300,1\n", "cannot read timestamp"),
    ("timestamp,value\n\x00\x01\x02,1\n", "NUL"),
    ("timestamp,value\n2014-04-01 00:00:00," + "9" * 5000 + "\n", "longer than"),
    ('timestamp,value\n"2014-04-01 00:00:00,1\n', "line"),
])
def test_malformed_csv_is_refused_with_the_line(text, message):
    with pytest.raises(CsvError, match=message):
        read_table(text)


def _decimal_comma(values: list[float], sep: str) -> str:
    return csv_text([str(v).replace(".", ",") for v in values], header=f"timestamp{sep}value", sep=sep)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_decimal_commas_of_a_semicolon_or_tab_file_are_read_as_decimals(sep):
    # How a sheet in a decimal-comma locale (Bahasa Indonesia's) exports: "50,123" with semicolons between fields.
    values = series()
    dotted = score_table(read_table(csv_text(values)))
    plain = read_table(_decimal_comma(values, sep))  # the compiled reader, its odd cells by the plain parser
    assert plain.values.tolist() == values
    assert score_table(plain).tolist() == dotted.tolist()
    quoted = _decimal_comma(values, sep).replace("timestamp", '"timestamp"', 1)  # the csv module's reader
    assert read_table(quoted).values.tolist() == values
    mixed = _decimal_comma(values, sep).replace(f"{sep}{str(values[3]).replace('.', ',')}", f"{sep}{values[3]}")
    assert read_table(mixed).values.tolist() == values  # a dotted decimal among them is still a decimal


@pytest.mark.parametrize("text, message", [
    ("timestamp;value\n2014-04-01 00:00:00;1.234,5\n", "line 2: value '1.234,5' is not a number"),
    ('timestamp;"value"\n2014-04-01 00:00:00;1,2,3\n', "line 2: value '1,2,3' is not a number"),
    ('timestamp,value\n2014-04-01 00:00:00,"10,5"\n', "line 2: value '10,5' is not a number"),
])
def test_grouped_or_comma_separated_decimal_commas_stay_refused(text, message):
    # A grouping dot makes "1.234" ambiguous, and a comma-separated file's "10,5" could be ten thousand and five.
    with pytest.raises(CsvError, match=message):
        read_table(text)


def test_a_file_of_values_alone_is_scored_one_row_a_minute(tmp_path):
    # An archive's series without times (one value a line, a name on top or none): scored as the same values a
    # minute apart from 1970-01-01, its lines written back as they were.
    values = series(3000, spike_at=2500)
    timed = score_table(read_table(csv_text(values, stamp=lambda i: str(60 * i))))
    bare = read_table("".join(f"{v}\n" for v in values))
    assert bare.header is None and bare.values.tolist() == values
    assert score_table(bare).tolist() == timed.tolist() and int(np.argmax(timed)) == 2500
    result, out = run_cli(tmp_path, "reading\n\n" + "".join(f"{v}\n" for v in values))
    assert result.exit_code == 0, result.output
    header, rows = read_scores(out)
    assert header == ["reading", "anomaly_score", "incident", "detector", "learning"]
    assert [float(r[0]) for r in rows] == values and [r[1] for r in rows] == [f"{x:.6f}" for x in timed]


@pytest.mark.parametrize("text, message", [
    ("2014-04-01 00:00:00\n2014-04-01 00:05:00\n", "line 1: need at least two columns"),
    ("timestamp\n1\n2\n", "no value column"),
    ("value\n1.5\n\n2.5\nabc\n", "line 5: value 'abc' is not a number"),
    ("value\n1.5\n2.5,3\n", "line 1: no value column"),
])
def test_a_column_of_times_or_a_bad_value_alone_is_refused(text, message):
    with pytest.raises(CsvError, match=message):
        read_table(text)


def test_cli_reports_malformed_input_clearly(tmp_path):
    result, out = run_cli(tmp_path, "timestamp,value\n2014-04-01 00:00:00,1\nnot-a-time,2\n")
    assert result.exit_code == 2
    assert "line 3: cannot read timestamp 'not-a-time'" in result.output
    assert not out.exists()


def test_cli_refuses_binary_missing_and_oversized_files(tmp_path, monkeypatch):
    result, _ = run_cli(tmp_path, b"\xff\xfe\x00b\x00a\x00d")
    assert result.exit_code == 2 and "not UTF-8" in result.output
    missing = runner.invoke(app, ["score", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    monkeypatch.setattr(csvscore, "MAX_BYTES", 1000)
    result, _ = run_cli(tmp_path, csv_text(series(100, None)))
    assert result.exit_code == 2 and "larger than" in result.output


def test_cli_unwritable_output(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(csv_text(series(50, None)))
    result = runner.invoke(app, ["score", str(source), "--out", str(tmp_path / "no" / "such" / "dir.csv")])
    assert result.exit_code == 2 and "cannot write" in result.output


def test_too_many_rows(monkeypatch):
    monkeypatch.setattr(csvscore, "MAX_ROWS", 10)
    with pytest.raises(CsvError, match="more than 10 rows"):
        read_table(csv_text(series(20, None)))


def _dated(values: list[float], stamps: list[datetime]) -> str:
    return "timestamp,value\n" + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},{v}\n" for t, v in zip(stamps, values, strict=True))


@pytest.mark.parametrize("clock", ["one row far ahead", "started again", "one row at the epoch"])
def test_a_wrong_clock_does_not_blind_the_rest_of_the_file(clock):
    """Rows are scored at times that never go back. One row dated 9999 once put every later row at that time
    and a 9-sigma spike two days later scored 0; a board whose clock starts again at 2000-01-01 after a power
    cut, or a row at the epoch's first day, must not cost the rows after them their detection either."""
    values = series(2880, spike_at=None)
    values[2500] += 9
    stamps = [START + timedelta(minutes=5 * i) for i in range(2880)]
    if clock == "one row far ahead":
        stamps[1000] = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    elif clock == "started again":
        stamps[1000:] = [datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(1880)]
    else:
        stamps[1000] = datetime(1970, 1, 1, tzinfo=UTC)
    scores = score_table(read_table(_dated(values, stamps)))
    clean = score_table(read_table(_dated(values, [START + timedelta(minutes=5 * i) for i in range(2880)])))
    assert clean[2500] >= 0.9 and scores[2500] >= 0.9, (clean[2500], scores[2500])
    assert (scores[1010:] >= 0.9).sum() <= (clean[1010:] >= 0.9).sum() + 1


def test_the_times_rows_are_scored_at_after_a_wrong_clock():
    minute = 60_000
    day = 1440 * minute
    base = 1_700_000_000_000 - 1_700_000_000_000 % day  # a midnight
    own = base + 5 * minute * np.arange(20)
    # A board's clock that started again at an unrelated time: on from the latest at its own 5 minutes.
    reset = own.copy()
    reset[10:] = base - 400 * day + 5 * minute * np.arange(10)
    scored = csvscore.scoring_times(reset)
    assert scored[10] == scored[9] and (np.diff(scored[10:]) == 5 * minute).all()
    # One row far ahead, then the right clock: those rows keep their time of day, just past the far row.
    ahead = own.copy()
    ahead[5] = base + 9000 * day
    scored = csvscore.scoring_times(ahead)
    assert scored[6] == scored[5] and (np.diff(scored[7:]) == 5 * minute).all()
    assert ((scored[7:] - ahead[7:]) % day == 0).all() and scored[7] > scored[5]
    # One row at the epoch: scored at the latest time, nothing moved.
    epoch = own.copy()
    epoch[5] = 0
    assert (csvscore.scoring_times(epoch) == np.maximum.accumulate(epoch)).all()
    assert (np.diff(csvscore.scoring_times(reset)) >= 0).all() and (np.diff(scored) >= 0).all()


def test_infinite_values_are_missing():
    table = read_table("timestamp,value\n1,inf\n2,-inf\n3,1.5\n")
    assert math.isnan(table.values[0]) and math.isnan(table.values[1]) and table.values[2] == 1.5


def test_no_data_sentinels_are_scored_not_refused(tmp_path):
    """A double's largest value is a common "no data" sentinel: two of opposite sign next to each other once made
    the detectors raise (an infinite difference), a traceback for the user. They score as the extremes they are,
    are written as read, and the rest of the file is scored as without them."""
    values = series(1500, spike_at=None)
    values[1000], values[1001] = 1.7976931348623157e308, -1.7976931348623157e308
    result, out = run_cli(tmp_path, csv_text(values), "--json")
    assert result.exit_code == 0, result.output
    _, rows = read_scores(out)
    assert rows[1000][1] == "1.7976931348623157e+308" and rows[1001][1] == "-1.7976931348623157e+308"
    assert float(rows[1000][2]) >= 0.99 and float(rows[1001][2]) >= 0.99
    assert max(float(row[2]) for row in rows[1010:]) < 0.9


def test_write_keeps_extra_columns():
    table = read_table("ts,value,host\n1,1.0,a\n2,2.0,b\n")
    out = io.StringIO()
    csvscore.write_scored(table, csvscore.score_rows(table), out)
    assert out.getvalue().splitlines()[0] == "ts,value,host,anomaly_score,incident,detector,learning"
    assert out.getvalue().splitlines()[2].startswith("2,2.0,b,")


# ---------------------------------------------------------------- the plain (C speed) reader


def _stamp_iso_t(i: int) -> str:
    return (START + timedelta(minutes=5 * i, milliseconds=250 * (i % 3))).isoformat().replace("+00:00", "")


ODD_VALUES = ["1.5", "", "NaN", "null", "inf", "-2e3", " 7 ", "-"]
PLAIN_TEXTS = {
    "iso-space": csv_text(series(300, 200)),
    "iso-t-millis": csv_text(series(300, 200), stamp=_stamp_iso_t),
    "iso-z": csv_text(series(300, 200), stamp=lambda i: _stamp_iso_t(i) + "Z"),
    "epoch-s-fraction": csv_text(series(300, 200), stamp=lambda i: f"{1396310400 + 300 * i + 0.5}"),
    "epoch-ms": csv_text(series(300, 200), stamp=lambda i: str((1396310400 + 300 * i) * 1000)),
    "no-header": csv_text(series(300, 200), header=None),
    "semicolon-crlf": csv_text(series(300, 200), "time;value", sep=";").replace("\n", "\r\n"),
    "tab-extra-columns": "time\tlabel\treading\thost\n" + "".join(
        f"{1396310400 + 300 * i}\t{int(i == 7)}\t{v}\tweb 1\n" for i, v in enumerate(series(300, 200))),
    "missing-and-odd-values": "timestamp,value\n" + "".join(
        f"{1396310400 + 60 * i},{v}\n" for i, v in enumerate(ODD_VALUES * 40)),
    # Missing values spelt as met (matched as they are) and spelt oddly (" NA ", "nUll": cell by cell).
    "missing-empty-cells": "timestamp,value\n" + "".join(
        f"{1396310400 + 60 * i},{'' if i % 9 == 4 else i / 8}\n" for i in range(300)),
    "missing-rare-spellings": "timestamp,value\n" + "".join(
        f"{1396310400 + 60 * i},{v}\n" for i, v in enumerate(["1.5", " NA ", "nUll", "", "N/A", "2"] * 40)),
    "mixed-zones": "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00+07:00,2\n2024-01-01 00:02:00,3\n",
    "date-only": "timestamp,value\n2024-01-01,1\n2024-01-02,2\n",
    "quoted": 'timestamp,value\n"2024-01-01 00:00:00",1\n"2024-01-01 00:01:00","2"\n',
    "blank-lines": "timestamp,value\n2024-01-01 00:00:00,1\n\n  \n2024-01-01 00:01:00,2\n\n",
    "duplicates-out-of-order": "timestamp,value\n" + "".join(
        f"{1396310400 + 60 * (i % 7)},{i}\n" for i in range(50)),
}


@pytest.mark.parametrize("name", sorted(PLAIN_TEXTS))
def test_the_plain_reader_reads_exactly_what_the_general_reader_reads(name):
    """Every file the whole-text numpy path takes is read to the same header, rows, times and values as
    the csv module row by row; anything it does not take (zones, quotes, blank lines) goes to the latter."""
    text = PLAIN_TEXTS[name]
    table = read_table(text)
    general = csvscore._read_general(text, csvscore._dialect(text[:8192]))
    assert table.header == general.header
    assert (table.time_column, table.value_column) == (general.time_column, general.value_column)
    np.testing.assert_array_equal(table.times_ms, general.times_ms)
    np.testing.assert_array_equal(table.values, general.values)
    assert [list(row) for row in table.rows] == [list(row) for row in general.rows]


def test_the_plain_reader_takes_the_common_files():
    for name in ("iso-space", "iso-z", "epoch-ms", "semicolon-crlf", "missing-and-odd-values", "date-only",
                 "missing-empty-cells", "missing-rare-spellings"):
        assert csvscore._read_plain(PLAIN_TEXTS[name], csvscore._dialect(PLAIN_TEXTS[name]).delimiter) is not None
    for name in ("mixed-zones", "quoted", "blank-lines"):
        assert csvscore._read_plain(PLAIN_TEXTS[name], csvscore._dialect(PLAIN_TEXTS[name]).delimiter) is None


def _days_with_a_spike() -> str:
    """Three days of five-minute readings on a daily cycle: learning rows, quiet rows, a spike, an incident."""
    values = [f"{10 + 5 * math.sin(i / 288 * 2 * math.pi) + 0.1 * ((i * 7919) % 13 - 6):.3f}" for i in range(864)]
    values[700], values[500] = "60", ""
    return "timestamp,value\n" + "".join(f"{1396310400 + 300 * i},{v}\n" for i, v in enumerate(values))


def _days_with_shifts() -> str:
    """Four days of five-minute readings on a daily cycle with two level shifts held as incidents: rows of score 0
    inside an incident (written with their incident's shared ending), two incidents one after the other."""
    values = [10 + 5 * math.sin(i / 288 * 2 * math.pi) + 0.1 * ((i * 7919) % 13 - 6) for i in range(1152)]
    for i in [*range(650, 800), *range(1000, 1152)]:
        values[i] += 8 if i < 800 else -8
    return "timestamp,value\n" + "".join(f"{1396310400 + 300 * i},{v:.3f}\n" for i, v in enumerate(values))


@pytest.mark.parametrize("text", [_days_with_a_spike(), _days_with_a_spike().rstrip("\n"),
                                  _days_with_a_spike().replace("\n", "\r\n"),
                                  _days_with_a_spike().replace("timestamp,value", "time;stamp,value x")])
def test_score_file_writes_bytes_as_the_text_writer_does(tmp_path, text):
    """score_file writes the compiled reader's files from their ASCII bytes into a binary file: the same bytes
    as write_scored into a UTF-8 text file (a spike's incident, learning rows, quiet rows, odd header names,
    no newline at the end, CRLF)."""
    table = read_table(text)
    assert table.text is not None and table.starts is not None
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(text.encode("ascii"))
    scores = csvscore.score_file(source, target)
    expected = io.StringIO()
    csvscore.write_scored(table, csvscore.score_rows(table), expected)
    assert target.read_bytes() == expected.getvalue().encode("utf-8")
    assert (scores > 0.9).any() and expected.getvalue().count(",1\n") > 0


@pytest.mark.parametrize(("text", "quiet_and_loud"), [(PLAIN_TEXTS["missing-and-odd-values"], False),
                                                      (_days_with_a_spike(), True), (_days_with_shifts(), True)],
                         ids=["odd-values", "a-spike", "two-shifts"])
def test_written_rows_are_the_same_from_either_reader(tmp_path, text, quiet_and_loud):
    """The plain reader's lines are written with one shared ending for quiet rows (score 0, no incident, not
    learning) and the others formatted: the same bytes as the csv module writes for every row."""
    table = read_table(text)
    general = csvscore._read_general(text, csvscore._dialect(text[:8192]))
    assert (table.lines is not None or table.text is not None) and general.lines is None and general.text is None
    scored = csvscore.score_rows(table)
    fast, slow = io.StringIO(), io.StringIO()
    csvscore.write_scored(table, scored, fast)
    csvscore.write_scored(general, scored, slow)
    assert fast.getvalue() == slow.getvalue()
    endings = {line.rsplit(",", 4)[1] != "0.000000" or line.endswith("1") for line in fast.getvalue().splitlines()[1:]}
    if quiet_and_loud:  # the spike's file has both kinds of row
        assert endings == {True, False}
    held_at_zero = (scored.score == 0) & (scored.incident > 0)
    if text == _days_with_shifts():  # rows of score 0 inside incidents, of more than one incident
        assert held_at_zero.sum() > 50 and len(set(scored.incident[held_at_zero].tolist())) >= 2


def test_cli_reads_a_device_or_a_pipe_only_up_to_its_limit(tmp_path, monkeypatch):
    """/dev/zero and a pipe say they hold 0 bytes and never end: the read stops past the limit, with the
    error a large file gets, and writes nothing (it read without end before, filling memory)."""
    monkeypatch.setattr(csvscore, "MAX_BYTES", 1024 * 1024)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["score", "/dev/zero", "--out", str(out)])
    assert result.exit_code == 2 and "larger than 1 MB" in result.output
    assert not out.exists()


def test_cli_scores_a_csv_from_a_pipe(tmp_path):
    """A pipe has no size to check first, and a CSV streamed into one is still scored whole."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    text = csv_text(series(300, 250))
    writer = threading.Thread(target=fifo.write_text, args=(text,), daemon=True)
    writer.start()
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["score", str(fifo), "--out", str(out)])
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    from_file, file_out = run_cli(tmp_path, text)
    assert out.read_bytes() == file_out.read_bytes()


def test_score_rows_peak_of_live_arrays_stays_below_195_bytes_a_row():
    """A fresh `city score` pays in system time for each page it touches first: its peak of live arrays is what a
    user of a million-row file waits on (~0.4-1 s of ~2.5 s). score_rows held ~316 bytes a row at its peak (the
    six CUSUM sides kept to the end of the block, two np.where copies of the quick level's z and scale, its
    recursions' arrays held to the end); ~227 with the baseline's three arrays and the level, shift and seasonal
    evidence kept, which it does not read; ~212 with score_series' lean, the peak in the daily profile's lags (seven
    day-type masked copies beside three found readings, then the weekly profile's lags beside the daily one's kept
    nearest samples); ~188 now (the found readings masked as they are read, the daily look-ups freed after it)."""
    import tracemalloc

    n = 20_000  # two weeks of one-minute readings: the daily profile, the quick level and the CUSUMs all run
    rng = np.random.default_rng(0)
    times = 1_735_689_600_000 + 60_000 * np.arange(n, dtype=np.int64)
    values = 15 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 1, n)
    table = csvscore.Table(["timestamp", "value"], [], 0, 1, times, values)
    csvscore.score_rows(table)  # kernels loaded before the count
    tracemalloc.start()
    try:
        csvscore.score_rows(table)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / n < 195


# The delimiter shortcut (csvscore._plain_delimiter) answers only where csv.Sniffer would answer the same.
SNIFF_ALPHABET = st.sampled_from(list("0123456789.,;\t \n\r\"'abT:-Z"))
SNIFF_LINES = st.lists(st.text(st.sampled_from(list("0123456789.,;\t abT:-Z")), max_size=30), min_size=0, max_size=14)
SNIFF_FIELD = st.text(st.sampled_from(list("0123456789.,; abT:-Z")), max_size=8)
# Tables: rows of 1-4 fields joined by one delimiter, whose fields may hold the other candidates.
SNIFF_TABLES = st.tuples(st.sampled_from([",", ";", "\t"]), st.integers(1, 4), st.integers(1, 14)).flatmap(
    lambda shape: st.lists(st.lists(SNIFF_FIELD, min_size=shape[1], max_size=shape[1]), min_size=shape[2],
                           max_size=shape[2]).map(lambda rows: "\n".join(shape[0].join(row) for row in rows)))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.one_of(st.text(SNIFF_ALPHABET, max_size=300), SNIFF_LINES.map("\n".join),
                 SNIFF_LINES.map(lambda lines: "\n\n".join(lines) + "\n"), SNIFF_TABLES))
def test_plain_delimiter_never_disagrees_with_the_sniffer(sample: str) -> None:
    found = csvscore._plain_delimiter(sample)
    assert found is None or found == csvscore._dialect(sample).delimiter


@pytest.mark.parametrize("text, expected", [
    ("timestamp,value\n2026-01-01T00:00:00,1.5\n2026-01-01T00:01:00,2\n", ","),
    ("time;value;label\n1767225600;1,5;0\n1767225660;2,0;0\n", None),  # decimal commas: the counts differ, sniffed
    ("time\tvalue\n1767225600\t1.5\n", "\t"),
    ('"time","value"\n1767225600,1.5\n', None),  # quotes: the Sniffer's own guess
    ("\n\n\ntime,value\n1,2\n3,4\n", ","),
    ("value\n1\n2\n", None),
])
def test_plain_delimiter_answers_the_plain_files(text: str, expected: str | None) -> None:
    assert csvscore._plain_delimiter(text) == expected
    if expected is not None:
        assert csvscore._dialect(text).delimiter == expected


def test_every_file_of_the_labelled_corpus_skips_the_sniffer() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from csv_corpus import make_corpus

    for series in make_corpus(3, 1, 2):
        text = series.csv_text()[:8192]
        assert csvscore._plain_delimiter(text) == csvscore._dialect(text).delimiter == ",", series.name


def test_a_file_written_newest_first_scores_as_its_readings_happened(tmp_path):
    # Many dashboards and historians export newest first. Read in file order, every row after the first went back
    # in time and was judged at the first row's time: a 12-sigma spike on a daily cycle scored 0, as every row did.
    rng = np.random.default_rng(3)
    n = 10 * 288
    values = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.5, n)
    spike = int(n * 0.8)
    values[spike] += 6
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lines = [f"{(start + timedelta(minutes=5 * i)).isoformat()},{v:.4f}" for i, v in enumerate(values)]
    oldest_first = csvscore.score_rows(read_table("timestamp,value\n" + "\n".join(lines) + "\n"))
    newest_first = csvscore.score_rows(read_table("timestamp,value\n" + "\n".join(lines[::-1]) + "\n"))
    assert oldest_first.score[spike] >= 0.98
    for column in ("score", "incident", "detector", "learning"):
        assert (getattr(newest_first, column) == getattr(oldest_first, column)[::-1]).all(), column
    source, out = tmp_path / "newest_first.csv", tmp_path / "scored.csv"
    source.write_text("timestamp,value\n" + "\n".join(lines[::-1]) + "\n")
    result = CliRunner().invoke(app, ["score", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = list(csv.DictReader(out.open()))
    top = max(range(n), key=lambda row: float(written[row]["anomaly_score"]))
    assert written[top]["timestamp"] == lines[spike].split(",")[0]
