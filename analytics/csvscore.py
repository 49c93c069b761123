"""Score any CSV of timestamp,value rows: the same general detectors, one
parameter set for every file, causal (a row's score uses only the rows above
it), written back as the input rows plus three columns:

- `anomaly_score` in [0, 1): the surprise of the row given the rows above it
  (detectors.surprise), calibrated the same way on every series, highest at
  the onset of a change;
- `incident`: 1, 2, ... on the rows the live alert engine would hold an
  incident open for (its hysteresis over the same evidence: one per fault),
  empty elsewhere;
- `detector`: the rule that opened that incident (unusual_value,
  level_shift, off_daily_profile, stuck_sensor, drift).

Tolerated: a header or none, any common spelling of the column names, extra
columns (a label column is never taken as the value), comma, semicolon or tab
separators (with the last two, decimal commas: "10,25"), a UTF-8 byte-order mark, ISO 8601 dates with or without a zone,
epoch seconds or milliseconds, irregular spacing, gaps, duplicate times, empty
or NaN values (scored 0, they carry no evidence), constant series, a file of
values alone, one a line (taken one minute apart: VALUES_ONLY_STEP_MS). Refused
with a message naming the line: a timestamp that cannot be read, a value that
is not a number, a ragged row, a file over the size limits.
"""

import csv
import io
import math
import operator
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numba
import numpy as np

from analytics import csvfast, jitcache  # noqa: F401  (jitcache before any cache=True kernel)
from analytics.config import CSV_PARAMS, DAY_MS, DetectorParams
from analytics.detectors import DETECTORS, Anchor, kernels, score_series
from analytics.detectors.period import found_period
from analytics.detectors.regimes import regimes
from analytics.detectors.seasonal import _is_day_off
from analytics.detectors.surprise import row_surprise, time_slots
from analytics.localtime import to_local
from analytics.rules import STATISTICAL_RULES, Hysteresis
from telemetry_shared.files import FileTooLarge, read_bounded_text

MAX_BYTES = 512 * 1024 * 1024
# Values are scored as if no larger than this (the file keeps them as written). No meter reads near it, but a
# double's largest value is a common "no data" sentinel, and two of them of opposite sign, or their squares,
# overflow to infinity inside the detectors; at 1e150 squares and their sums stay finite.
SCORED_MAGNITUDE = 1e150
MAX_ROWS = 5_000_000
MAX_FIELD_CHARS = 4096
VALUES_ONLY_STEP_MS = 60_000  # a file of values alone: its rows one minute apart
TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts", "t", "time_ms", "timestamp_ms", "epoch")
VALUE_NAMES = ("value", "values", "val", "y", "reading", "measurement", "metric", "data")
NOT_VALUES = ("label", "labels", "anomaly", "is_anomaly", "anomaly_score", "target", "class", "outlier")
MISSING = ("", "nan", "na", "n/a", "null", "none", "-", "?")
# A number with a decimal comma and no grouping ("10,25", "-0,5"): how sheets in a decimal-comma locale (Bahasa
# Indonesia's, most of Europe's) write numbers, with semicolons between fields. Read as such only in files whose
# fields are not separated by commas; "1.234,5" (a grouping dot) stays refused: "1.234" alone would be ambiguous.
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?")
# The spellings of MISSING met in files, matched as they are (each is one of MISSING once stripped and lowered).
_MISSING_SPELLINGS = frozenset(spelling for word in MISSING for spelling in (word, word.upper(), word.capitalize()))


class CsvError(ValueError):
    """The CSV cannot be scored; the message says where and why."""


@dataclass
class Table:
    header: list[str] | None
    rows: Sequence[Sequence[str]]  # the body's cells, row by row, as read
    time_column: int  # -1: a file of values alone (_read_values_only), its rows one minute apart
    value_column: int
    times_ms: np.ndarray
    values: np.ndarray
    # The body's lines as read, when they can be written back as they are (comma-separated, no quoting).
    lines: list[str] | None = None
    # The same from the compiled reader: the body's text (every line ending in a newline) and each line's
    # first character, then the text's end (_read_compiled; comma-separated files only).
    text: str | None = None
    starts: np.ndarray | None = None


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _plain_delimiter(sample: str) -> str | None:
    """The delimiter csv.Sniffer would find in `sample`, where it is plain to see; None where it is not.

    Without quotes in the sample, the Sniffer decides on its first ten non-empty lines: a delimiter that appears
    the same number of times on each of them, and no other candidate at all, is its answer (csv.py,
    _guess_delimiter's first chunk). That case, most files, is answered here in ~10 us instead of the Sniffer's
    ~1 ms (a tenth of scoring a 10,000-row file); any other is left to it (tests/analytics/test_csvscore.py
    holds the two together)."""
    if '"' in sample or "'" in sample:
        return None
    lines = [line for line in sample.split("\n") if line][:10]
    found = None
    for delimiter in ",;\t":
        counts = {line.count(delimiter) for line in lines}
        if counts == {0}:
            continue
        if found is not None or len(counts) != 1:
            return None
        found = delimiter
    return found


def parse_time(text: str) -> int:
    """A timestamp cell to UTC milliseconds. Raises ValueError.

    Numbers are epoch seconds below 1e11 (before year 5138) and epoch
    milliseconds above; ISO 8601 text without a zone is taken as UTC (only
    the spacing between rows matters to the detectors, and days are 24 h).
    """
    cell = text.strip()
    try:
        number = float(cell)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or abs(number) > 1e15:
            raise ValueError(f"timestamp {cell!r} is out of range")
        return int(round(number * 1000 if abs(number) < 1e11 else number))
    try:
        moment = datetime.fromisoformat(cell.replace("Z", "+00:00") if cell.endswith("Z") else cell)
    except ValueError:
        moment = _other_formats(cell)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# Common non-ISO spellings, month first as in most exported sheets (a day-first
# date that cannot be month-first, such as 25/12/2020, is still read).
OTHER_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%y %H:%M", "%m/%d/%Y", "%d/%m/%Y %H:%M:%S",
                 "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y/%m/%d %H:%M:%S",
                 "%Y/%m/%d %H:%M", "%d-%b-%Y %H:%M:%S", "%b %d %Y %H:%M:%S")


def _other_formats(cell: str) -> datetime:
    for pattern in OTHER_FORMATS:
        try:
            return datetime.strptime(cell, pattern)
        except ValueError:
            continue
    raise ValueError(f"timestamp {cell!r} is not a date")


def _parse_value(cell: str, line: int, decimal_comma: bool = False) -> float:
    text = cell.strip()
    if text.lower() in MISSING:
        return math.nan
    if decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        raise CsvError(f"line {line}: value {text[:40]!r} is not a number") from None
    return value if math.isfinite(value) else math.nan


def _pick_columns(first: list[str]) -> tuple[list[str] | None, int, int]:
    """(header or None, time column, value column) from the first row."""
    names = [cell.strip().lower().strip('"') for cell in first]
    try:
        parse_time(first[0])
        has_header = False
    except ValueError:
        has_header = True
    if not has_header:
        if len(first) < 2:
            raise CsvError("line 1: need at least two columns, a timestamp and a value")
        return None, 0, 1
    time_column = next((i for i, n in enumerate(names) if n in TIME_NAMES), None)
    if time_column is None:
        time_column = next((i for i, n in enumerate(names) if "time" in n or "date" in n), 0)
    value_column = next((i for i, n in enumerate(names) if n in VALUE_NAMES and i != time_column), None)
    if value_column is None:
        candidates = [i for i, n in enumerate(names) if i != time_column and n not in NOT_VALUES]
        if not candidates:
            raise CsvError(f"line 1: no value column in header {first!r:.200}")
        value_column = candidates[0]
    return first, time_column, value_column


def read_table(text: str) -> Table:
    """Parse CSV text into rows, timestamps and values. Raises CsvError."""
    if len(text) > MAX_BYTES:
        raise CsvError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if "\x00" in text:
        raise CsvError("file contains NUL bytes: not a text CSV")
    text = text.lstrip("\ufeff")
    values_only = _read_values_only(text)
    if values_only is not None:
        return values_only
    sample = text[:8192]
    delimiter = _plain_delimiter(sample)
    dialect = None
    if delimiter is None:  # the Sniffer, at most once
        dialect = _dialect(sample)
        delimiter = dialect.delimiter
    plain = _read_compiled(text, delimiter)
    if plain is None:
        plain = _read_plain(text, delimiter)
    return plain if plain is not None else _read_general(text, dialect or _dialect(sample))


def _read_values_only(text: str) -> Table | None:
    """read_table for a file of values alone, one a line (an archive's series without times), with a name on
    the first line or none: its rows are taken one minute apart from 1970-01-01 (their order is all the file
    says about time). None for any other file, a column of timestamps alone included (refused as before)."""
    first_end = text.find("\n")
    if any(separator in text[:first_end if first_end >= 0 else len(text)] for separator in ",;\t"):
        return None  # the common file: decided on its first line
    numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not numbered or any(separator in line for _, line in numbered for separator in ",;\t"):
        return None
    first = numbered[0][1]
    header = None if _is_value(first) else [first.strip('"')]
    if header is not None and (header[0].lower() in TIME_NAMES or _is_time(first)):
        return None
    body = numbered[1:] if header is not None else numbered
    if len(body) > MAX_ROWS:
        raise CsvError(f"more than {MAX_ROWS:,} rows")
    cells = [cell for _, cell in body]
    for number, cell in body:
        if len(cell) > MAX_FIELD_CHARS:
            raise CsvError(f"line {number}: a field is longer than {MAX_FIELD_CHARS} characters")
    values = _plain_values(cells)
    if values is None:  # name the line of the first cell that is not a number
        for number, cell in body:
            _parse_value(cell, number)
    times = np.arange(len(cells), dtype=np.int64) * VALUES_ONLY_STEP_MS
    return Table(header, _Rows(cells, 1), -1, 0, times, values)


def _is_value(cell: str) -> bool:
    try:
        _parse_value(cell, 0)
    except CsvError:
        return False
    return True


def _is_time(cell: str) -> bool:
    try:
        parse_time(cell)
    except (ValueError, OverflowError, OSError):
        return False
    return True


def _read_compiled(text: str, delimiter: str) -> Table | None:
    """read_table for the most common file in one compiled pass (csvfast.scan): ASCII, no quotes, epoch integer
    or ISO 8601 timestamps without a zone (or all with Z). None for anything else: the plain reader then reads
    it, so the table is the one _read_plain gives (tests/analytics/test_csvfast.py holds the two together).

    Its checks are _read_plain's, in the same order, where they come before an error can be raised
    (_pick_columns), so a file refused here is refused there with the same message.
    """
    if delimiter not in (",", ";", "\t") or not text.isascii() or '"' in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    content = len(text)  # the end of the last line with more than whitespace (_read_plain drops those after it)
    while content and text[content - 1].isspace():
        content -= 1
    if not content or text[0] == "\n":
        return None
    newline = text.find("\n", content)
    body_end = len(text) if newline < 0 else newline
    if "\n\n" in text[body_end:].rstrip("\n"):
        return None  # a blank line before trailing whitespace: _read_plain leaves the file to the general reader
    first_end = text.find("\n", 0, body_end)
    first_end = body_end if first_end < 0 else first_end
    first = text[:first_end].split(delimiter)
    header, time_column, value_column = _pick_columns(first)
    body_start = first_end + 1 if header is not None else 0
    if body_start >= body_end:
        return None
    if newline < 0:
        text += "\n"  # every line, the last too, ends in a newline: the scan's end and the writer's
    buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    count = _newlines(buf, body_start, body_end) + 1
    if count > MAX_ROWS:
        return None
    times, values = np.empty(count, dtype=np.int64), np.empty(count)
    starts, others = np.empty(count + 1, dtype=np.int64), np.empty(count, dtype=np.int64)
    rows, other, status = csvfast.scan(buf, body_start, body_end, ord(delimiter), len(first), time_column,
                                       value_column, MAX_FIELD_CHARS, times, values, starts, others)
    if status != csvfast.READ or rows != count:
        return None
    table_rows = _LineRows(text, starts, delimiter)
    if other:
        # Cells off the exact fast path ("nan", " 7 ", "1e300", many digits): the plain reader's value parser.
        cells = [table_rows[row][value_column] for row in others[:other].tolist()]
        parsed = _plain_values(cells, decimal_comma=delimiter != ",")
        if parsed is None:
            return None
        values[others[:other]] = parsed
    comma = delimiter == ","
    return Table(header, table_rows, time_column, value_column, times, values, None, text if comma else None,
                 starts if comma else None)


def _read_general(text: str, dialect: type[csv.Dialect] | csv.Dialect) -> Table:
    """read_table for any file: the csv module and parse_time row by row; names the line of any error."""
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(rows) >= MAX_ROWS:
                raise CsvError(f"more than {MAX_ROWS:,} rows")
            if any(len(cell) > MAX_FIELD_CHARS for cell in row):
                raise CsvError(f"line {reader.line_num}: a field is longer than {MAX_FIELD_CHARS} characters")
            rows.append(row)
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: {exc}") from exc
    if not rows:
        raise CsvError("file is empty: expected timestamp,value rows")
    header, time_column, value_column = _pick_columns(rows[0])
    body = rows[1:] if header is not None else rows
    width = len(rows[0])
    first_line = 2 if header is not None else 1
    times = np.empty(len(body), dtype=np.int64)
    values = np.empty(len(body))
    for index, row in enumerate(body):
        line = first_line + index
        if len(row) != width:
            raise CsvError(f"line {line}: {len(row)} fields, the first row has {width}")
        try:
            times[index] = parse_time(row[time_column])
        except (ValueError, OverflowError, OSError):
            raise CsvError(f"line {line}: cannot read timestamp {row[time_column][:40]!r}") from None
        values[index] = _parse_value(row[value_column], line, decimal_comma=dialect.delimiter != ",")
    return Table(header, body, time_column, value_column, times, values)


def _newlines(buf: np.ndarray, start: int, end: int, piece: int = 1 << 20) -> int:
    """The newlines in buf[start:end] (uint8), a megabyte at a time: text.count("\\n", start, end) of the ASCII text
    it encodes, in a third of the time (str.count is ~9 ms for 28 MB), without a whole-file array of flags."""
    return sum(int(np.count_nonzero(buf[at:min(at + piece, end)] == 10)) for at in range(start, end, piece))


def _read_plain(text: str, delimiter: str) -> Table | None:
    """read_table for the common file at C speed: no quotes, one line a row, the same number of fields on
    every line, ISO 8601 (UTC or no zone) or epoch timestamps. None for anything else: the general reader
    then reads it (and names the line of any error), so the result never differs.

    Whole-text str.split and numpy's datetime64 and float parsers instead of
    csv.reader and one parse_time call per row (~30x faster on a million
    rows).
    """
    if '"' in text or delimiter not in (",", ";", "\t"):
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None  # lone carriage returns: the csv module's rules
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or "\n\n" in text.rstrip("\n"):
        return None  # blank lines inside: the general reader skips them
    first = lines[0].split(delimiter)
    header, time_column, value_column = _pick_columns(first)
    body = lines[1:] if header is not None else lines
    if len(body) > MAX_ROWS:
        raise CsvError(f"more than {MAX_ROWS:,} rows")
    width = len(first)
    cells = delimiter.join(body).split(delimiter) if body else []
    if len(cells) != width * len(body) or (cells and max(map(len, cells)) > MAX_FIELD_CHARS):
        return None  # ragged rows or an oversized field: the general reader names the line
    times = _plain_times(cells[time_column::width])
    values = _plain_values(cells[value_column::width], decimal_comma=delimiter != ",")
    if times is None or values is None:
        return None
    return Table(header, _Rows(cells, width), time_column, value_column, times, values,
                 body if delimiter == "," else None)


class _Rows(Sequence[Sequence[str]]):
    """The body's cells as rows, made only when asked for (scoring reads the two columns it needs)."""

    def __init__(self, cells: list[str], width: int) -> None:
        self.cells, self.width = cells, width

    def __len__(self) -> int:
        return len(self.cells) // self.width

    def __getitem__(self, index: int) -> list[str]:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        start = (index % len(self)) * self.width
        return self.cells[start:start + self.width]

    def column(self, index: int) -> list[str]:
        return self.cells[index::self.width]


class _LineRows(Sequence[Sequence[str]]):
    """The compiled reader's rows, split into cells only when asked for (scoring reads the two columns it
    needs): text[starts[i]:starts[i + 1] - 1] is row i."""

    def __init__(self, text: str, starts: np.ndarray, delimiter: str) -> None:
        self.text, self.starts, self.delimiter = text, starts, delimiter

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, index: int) -> list[str]:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return self.text[int(self.starts[index]):int(self.starts[index + 1]) - 1].split(self.delimiter)

    def column(self, index: int) -> list[str]:
        lines = self.text[int(self.starts[0]):int(self.starts[-1]) - 1].split("\n")
        return [line.split(self.delimiter)[index] for line in lines]


def _plain_times(cells: list[str]) -> np.ndarray | None:
    """Epoch seconds/milliseconds or ISO 8601 timestamps (no zone, or Z) to UTC ms; None if not all are that."""
    if not cells:
        return np.empty(0, dtype=np.int64)
    try:
        number = np.array(cells, dtype=np.float64)
    except ValueError:
        number = None
    if number is not None:
        if not np.isfinite(number).all() or (np.abs(number) > 1e15).any():
            return None
        return np.round(np.where(np.abs(number) < 1e11, number * 1000, number)).astype(np.int64)
    stamps = np.array(cells)
    # Only full dates (YYYY-MM-DD, a time optional): numpy also reads "2025" or "2025-01", parse_time does not.
    if not (np.strings.str_len(stamps) >= 10).all():
        return None
    zulu = np.strings.endswith(stamps, "Z")
    if zulu.any():
        if not zulu.all():
            return None
        stamps = np.strings.slice(stamps, 0, -1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a zone offset: numpy would warn and guess
            moments = stamps.astype("datetime64[ms]")
    except (ValueError, UserWarning, DeprecationWarning):
        return None
    if np.isnat(moments).any():
        return None
    return moments.astype(np.int64)


def _plain_values(cells: list[str], decimal_comma: bool = False) -> np.ndarray | None:
    """The value cells as floats (missing markers and infinities NaN); None if a cell is not a number.
    decimal_comma: "10,25" is 10.25 (files whose fields are not separated by commas)."""
    try:
        values = np.array(cells, dtype=np.float64) if cells else np.empty(0)
    except ValueError:
        # Empty cells (or another common spelling of a missing value) as "nan", then numpy's parser again:
        # the same floats as _parse_value gives cell by cell (float() strips as it does), ~10x faster.
        try:
            values = np.array(["nan" if cell in _MISSING_SPELLINGS else cell for cell in cells], dtype=np.float64)
        except ValueError:
            try:  # a rarer spelling (" NA ", "nUll"): cell by cell
                values = np.array([_parse_value(cell, 0, decimal_comma) for cell in cells], dtype=np.float64)
            except CsvError:
                return None
    values[~np.isfinite(values)] = np.nan
    return values


@dataclass
class RowScores:
    """Per row, in file order: the anomaly score, the held incident (0: none) and the detector behind it."""

    score: np.ndarray  # the surprise of the row given the rows above it, in [0, 1)
    incident: np.ndarray  # int: 1, 2, ... while an incident is held (the alert engine's hysteresis), else 0
    detector: np.ndarray  # object: the rule of the incident's opening row ('' outside incidents)
    learning: np.ndarray  # bool: the learning period (first surprise_learning_ms, at least learning_least_rows; the
    # first working day's rows, _first_working_day): 0


def score_rows(table: Table, params: DetectorParams = CSV_PARAMS) -> RowScores:
    """Causal row scores (detectors.surprise) and the incidents the live engine would hold over the same rows.

    A file written newest first (more of its steps go back in time than forward: many dashboards and historians
    export so) is scored oldest first, as its readings happened, and its columns are returned in the file's order;
    read in file order, every row after the first would be out of time order and judged at the first row's time.
    """
    if _newest_first(table.times_ms):
        oldest_first = replace(table, times_ms=table.times_ms[::-1].copy(), values=table.values[::-1].copy())
        rows = _score_in_order(oldest_first, params)
        return RowScores(*(column[::-1].copy() for column in (rows.score, rows.incident, rows.detector,
                                                               rows.learning)))
    return _score_in_order(table, params)


def _newest_first(times_ms: np.ndarray) -> bool:
    steps = np.diff(times_ms)
    return np.count_nonzero(steps < 0) > np.count_nonzero(steps > 0)


def _score_in_order(table: Table, params: DetectorParams) -> RowScores:
    """score_rows for a file in time order, or out of order now and then.

    Rows out of time order are scored in file order; for the seasonal
    look-up their time is the latest seen so far, so a row never looks
    ahead of itself. A missing value scores 0 and keeps an open incident.
    Rows of the learning period (the first surprise_learning_ms from the
    first reading, at most surprise_learning_rows rows, at least
    learning_least_rows; and the working-day rows until a working day has
    been read, _first_working_day) score 0 and are
    flagged: the detectors learn there, they do not judge. Values beyond +-SCORED_MAGNITUDE are scored as that value.
    """
    monotone = scoring_times(table.times_ms)
    x = np.clip(table.values, -SCORED_MAGNITUDE, SCORED_MAGNITUDE).reshape(1, -1)
    learning = _learning(monotone, table.values, params.surprise_learning_ms, params.surprise_learning_rows,
                         learning_least_rows(params), params.surprise_learning_share)
    rows = np.flatnonzero(learning)
    if rows.size >= 2:  # the file's sampling interval, from its learning rows (which score 0 in any case)
        step = float(np.median(np.diff(monotone[rows])))
        params = _with_own_cycle(x[0][rows], step, _for_sampling(step, params))
    if params.surprise_learning_working_ms > 0 and params.day_types:  # after the sampling interval: as before
        learning |= _first_working_day(monotone, params.surprise_learning_working_ms, params.surprise_learning_share,
                                       params)
    # lean: only what is read below is written and kept (no baseline, no level, shift or seasonal evidence).
    stats = score_series(x, monotone, params, with_evidence=True, lean=True)
    # The stuck test in nats: a run's later repeats judged by how long the series' runs last (flatline_long_prior);
    # a run at the highest value seen before it is saturated (a full car park, a pegged gauge), as one at the lowest
    # is idle: neither is a surprise of its own in a file of unknown meaning (kernels.flatline_tail_nats: 0 there).
    nats = np.empty(x.shape)
    kernels.flatline_tail_nats(x[0], float(params.warmup), int(params.flatline_min_run),
                               float(params.flatline_long_prior), nats[0])
    slot = time_slots(monotone, params)[None] if params.surprise_slots else None
    # A bursty series' readings judged against its quiet and its burst regime (detectors.regimes).
    # Once judged against them for learning_least_rows readings, the tail their z taught may replace the one its
    # bursts taught the point z before (row_surprise's adopt).
    found = regimes(x[0], stats.point[0], None if slot is None else slot[0], params.regime_separation,
                    params.regime_confirm, params.regime_gain, params.regime_hour_gain, params.regime_hold,
                    learning_least_rows(params))
    point = found.point[None]
    # Where the readings are judged against the two regimes, the regimes explain the level: a long burst read as a
    # drift of the raw readings off the profile is no drift of the regime the series is in.
    drift = np.where(found.bursty, 0.0, stats.evidence["drift"][0])[None] if found.bursty.any() \
        else stats.evidence["drift"]
    adopt = None if found.adopt < 0 or params.surprise_adopt_ratio <= 0 else np.array([found.adopt])
    # Rows below surprise_floor score 0 (_row_scores): their surprise need not be exact (row_surprise's floor).
    surprise, _ = row_surprise(point, nats, drift, params=params, slot=slot, values=x,
                               floor=float(params.surprise_floor), shadow=None if adopt is None else found.shadow[None],
                               adopt=adopt, regime=found.which[None], bursty=found.bursty[None])
    missing = np.isnan(table.values)
    # row_score, 0 where the value is missing or in the learning period, in one pass (_row_scores).
    score = np.empty(x.shape[1])
    _row_scores(surprise[0], missing, learning, float(params.surprise_floor), float(params.surprise_half), score)
    # The held incident: the engine's hysteresis over the engine's own score (one alert per fault).
    engine_score = np.where(missing[None], np.nan, stats.combined)
    active = _held(engine_score[0], x[0], stats.anchor, params)
    starts = active & ~np.concatenate(([False], active[:-1]))
    incident = np.where(active, np.cumsum(starts), 0)
    names = np.array([STATISTICAL_RULES[name] for name in DETECTORS], dtype=object)
    # The opening row's rule on the rows of each incident, looked up for those rows only (few in most files).
    held_rows = np.flatnonzero(active)
    detector = np.full(active.size, "", dtype=object)
    detector[held_rows] = names[stats.winner[0][np.flatnonzero(starts)[incident[held_rows] - 1]]]
    return RowScores(score, incident, detector, learning)


_LARGEST = float(np.finfo(np.float64).max)  # np.nan_to_num's stand-in for an infinity


@numba.njit(cache=True, nogil=True)
def _row_scores(surprise: np.ndarray, missing: np.ndarray, learning: np.ndarray, floor: float, half: float,
                out: np.ndarray) -> None:
    """np.where(missing | learning, 0.0, surprise.row_score(surprise)) in one pass: the excess over floor of
    nan_to_num(surprise) (np.maximum with 0.0: +0.0 on a tie), excess / (excess + half)."""
    for i in range(surprise.size):
        if missing[i] or learning[i]:
            out[i] = 0.0
            continue
        value = surprise[i]
        if math.isnan(value):
            value = 0.0
        elif value == math.inf:
            value = _LARGEST
        elif value == -math.inf:
            value = -_LARGEST
        excess = value - floor
        excess = excess if excess > 0.0 else 0.0
        out[i] = excess / (excess + half)


def scoring_times(times_ms: np.ndarray) -> np.ndarray:
    """The time each row is scored at: never earlier than the rows before it (the detectors need that), so a
    row out of order takes the latest time seen so far. Two rows in a row more than a day behind the latest
    time mean one of two things, and the rows from the second on are moved forward:
    - the clock comes back to where it was before one row far ahead (a glitch dated 9999): that row was wrong,
      the clock is right; moved by whole days, just past the latest time, so their hours stay theirs;
    - a clock that started again (a board without a clock battery after a power cut): its hours are not the
      real ones either; the rows continue from the latest time at the clock's own intervals.
    One row behind (the epoch's first day from a board that lost its clock) is only scored at the latest
    time. Causal: a row's time depends on the rows up to it."""
    if times_ms.size == 0:
        return times_ms
    latest = np.maximum.accumulate(times_ms)
    behind = times_ms[1:] < latest[:-1] - DAY_MS
    if not (behind[1:] & behind[:-1]).any():
        return latest  # no clock went back for more than one row (the common file)
    return _restarted_times(np.ascontiguousarray(times_ms, dtype=np.int64), DAY_MS)


@numba.njit(cache=True, nogil=True)
def _restarted_times(raw: np.ndarray, day_ms: int) -> np.ndarray:
    out = np.empty_like(raw)
    shift = 0
    latest = raw[0]
    before_jump = raw[0]  # the latest time before the last row that jumped more than a day ahead of it
    previous = raw[0]  # the previous row's (shifted) time
    one_behind = False
    for i in range(raw.size):
        at = raw[i] + shift
        if at < latest - day_ms:
            if one_behind:  # the second row behind in a row: move this row and the rest forward
                if at >= before_jump - day_ms:  # back where it was before a row far ahead: hours kept
                    move = (latest - at + day_ms - 1) // day_ms * day_ms
                else:  # a clock started again: on from the latest time at its own interval
                    move = latest + max(at - previous, 0) - at
                shift += move
                at += move
            one_behind = not one_behind
        else:
            one_behind = False
            if at > latest + day_ms:
                before_jump = latest
        previous = at
        latest = max(latest, at)
        out[i] = latest
    return out


def learning_least_rows(params: DetectorParams = CSV_PARAMS) -> int:
    """The fewest rows of a learning period: those a normal law needs to show params.surprise_learning_excesses
    readings past params.surprise_tail_u (371 for one past 3 sigmas); 0 where there is no such minimum."""
    if params.surprise_learning_excesses <= 0:
        return 0
    return math.ceil(params.surprise_learning_excesses / math.erfc(params.surprise_tail_u / math.sqrt(2.0)))


def _for_sampling(step: float, params: DetectorParams) -> DetectorParams:
    """params fitted to the file's sampling interval `step` (ms): the profile's slide at least
    params.profile_slide_rows intervals, and neither that slide nor the running median of the earlier days
    (profile_smooth_samples) reaching further than params.profile_reach_ms either side of a reading's time; else
    params."""
    reach = params.profile_reach_ms if params.profile_reach_ms > 0 else math.inf
    changes = {}
    if params.profile_slide_ms > 0 and params.profile_slide_rows > 0:
        slide = min(params.profile_slide_rows * step, reach)
        if slide > params.profile_slide_ms:
            changes["profile_slide_ms"] = int(slide)
    if step > 0 and params.profile_smooth_samples > reach / step:
        changes["profile_smooth_samples"] = int(reach // step)
    return replace(params, **changes) if changes else params


def _with_own_cycle(learning_values: np.ndarray, step: float, params: DetectorParams) -> DetectorParams:
    """params with the file's own cycle (detectors.period, found from the readings of its learning rows, `step` ms
    apart) among the profiles' periods, where it has one that is not already there (within a sampling interval);
    else params."""
    if params.own_cycle_strength <= 0:
        return params
    lag = found_period(learning_values, params.own_cycle_strength)
    period = round(lag * step)
    if period <= 0 or any(abs(period - known) <= step for known in params.season_periods_ms):
        return params
    # The profile's smoothing and slide, chosen for a day, as the same shares of this cycle at most: a running
    # median of seven readings, or a slide of 30 minutes, would blur or shift a cycle of 20 readings past itself.
    day_rows = DAY_MS / step
    smooth = min(params.profile_smooth_samples, int(params.profile_smooth_samples * lag / day_rows))
    slide = min(params.profile_slide_ms, int(params.profile_slide_ms * period / DAY_MS))
    return replace(params, season_periods_ms=(*params.season_periods_ms, period), profile_smooth_samples=smooth,
                   profile_slide_ms=slide)


def _learning(times_ms: np.ndarray, values: np.ndarray, span_ms: int, most_rows: int,
              least_rows: int = 0, most_share: float = 0.0) -> np.ndarray:
    """The learning period: the rows within span_ms of the file's first reading (a row with a value), and
    fewer than most_rows rows after it (0: no limit by rows); in any case the first least_rows rows from it;
    and whatever the above, at most the first most_share of the file's readings (0: no such limit)."""
    valid = np.flatnonzero(~np.isnan(values))
    if span_ms <= 0 or not valid.size:
        return np.zeros(values.shape, dtype=bool)
    learning = times_ms < times_ms[valid[0]] + span_ms
    if most_rows > 0:
        learning[valid[0] + most_rows:] = False
    learning[valid[0]:valid[0] + least_rows] = True
    if most_share > 0:
        learning[valid[min(math.ceil(most_share * valid.size), valid.size - 1)]:] = False
    return learning


def _first_working_day(times_ms: np.ndarray, working_ms: int, most_share: float, params: DetectorParams) -> np.ndarray:
    """The rows of working days (params' local days off excepted) after the file's first local day, until the
    file has read working_ms of working-day time (the steps between successive rows on working days, summed),
    within the first most_share of the file's rows (0: no such limit): the day a file begun on a weekend first shows
    a working day's curve is learnt, as its first day is. Causal: a row's flag depends on the rows up to it."""
    out = np.zeros(times_ms.shape, dtype=bool)
    end = min(math.ceil(most_share * times_ms.size), times_ms.size) if most_share > 0 else times_ms.size
    if end < 2:
        return out
    # Its first four days first (a weekend and a working day, from any start), more only while a working day is
    # still unread: a million rows are not all looked up for a day's flags.
    size = min(end, max(2, int(np.searchsorted(times_ms, times_ms[0] + 4 * DAY_MS))))
    while True:
        head = times_ms[:size]
        date = to_local(head, params.time_zone, params.utc_offset_h) // DAY_MS
        working = ~_is_day_off(head, params)
        # A step counts where both its rows are on working days at most a day apart (none across a weekend).
        counted = np.concatenate(([False], (date[1:] - date[:-1] <= 1) & working[1:] & working[:-1]))
        read = np.cumsum(np.where(counted, np.diff(head, prepend=head[0]), 0))
        if read[-1] >= working_ms or size == end:
            break
        size = min(end, 2 * size)
    out[:size] = working & (date > date[0]) & (read < working_ms)
    return out


def _held(score: np.ndarray, values: np.ndarray, anchor: Anchor | None, params: DetectorParams,
          chunk: int = 2048) -> np.ndarray:
    """The engine's Hysteresis over one series, stepped only where an incident can open or is open.

    Hysteresis.step loops over time in Python (the engine feeds it a few
    samples a batch); a CSV has millions of rows, most far from any
    incident. Until a score reaches open_score nothing can open, so each
    stretch starts at the last calm row (score < clear_score) before the
    next high score, where the hold's reference is taken, and ends once no
    incident is open or pending.
    """
    n = score.size
    active = np.zeros(n, dtype=bool)
    high = np.flatnonzero(score >= params.open_score)
    calm = np.flatnonzero(score < params.clear_score)
    position = 0
    while True:
        ahead = high[high >= position]
        if not ahead.size:
            return active
        calm_before = calm[(calm < ahead[0]) & (calm >= position)]
        start = int(calm_before[-1]) if calm_before.size else position
        hysteresis = Hysteresis()
        end = start
        while True:
            begin, end = end, min(n, end + chunk)
            rows = slice(begin, end)
            part = None if anchor is None else Anchor(anchor.profile[:, rows], anchor.bias[:, rows],
                                                       anchor.scale[:, rows])
            active[rows] = hysteresis.step(score[None, rows], params, values=None if part is None else
                                           values[None, rows], anchor=part)[0]
            if end >= n or (not hysteresis.active[0] and not hysteresis.pending[0]):
                break
        position = end


def score_table(table: Table, params: DetectorParams = CSV_PARAMS) -> np.ndarray:
    """Causal anomaly scores in [0, 1), one per row, in file order (score_rows' score)."""
    return score_rows(table, params).score


def write_scored(table: Table, rows: RowScores, out: io.TextIOBase) -> None:
    """The input rows plus anomaly_score, incident (empty outside one), detector (the rule that opened it) and
    learning (1 in the file's learning period, where the score is 0 because nothing is judged yet)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_header(table))
    if table.text is not None and table.starts is not None:
        _write_spans(table.text, table.starts, rows, out)
        return
    if table.lines is not None:
        # The lines as read need no quoting (no quotes, commas between fields): appended to, not re-encoded.
        # Most rows score 0 outside any incident and learning period: one shared ending; the others formatted.
        quiet = _quiet(rows)
        endings = [_QUIET] * len(table.lines)
        loud = np.flatnonzero(~quiet)
        for index, score, incident, detector, learn in zip(loud.tolist(), rows.score[loud].tolist(),
                                                           rows.incident[loud].tolist(), rows.detector[loud].tolist(),
                                                           rows.learning[loud].tolist(), strict=True):
            endings[index] = _ending(score, incident, detector, learn)
        for start in range(0, len(table.lines), 65536):
            part = slice(start, start + 65536)
            out.write("".join(map(operator.add, table.lines[part], endings[part])))
        return
    incidents = [str(i) if i else "" for i in rows.incident.tolist()]
    learning = np.where(rows.learning, "1", "").tolist()
    for row, score, incident, detector, learn in zip(table.rows, rows.score.tolist(), incidents,
                                                     rows.detector.tolist(), learning, strict=True):
        writer.writerow([*row, f"{score:.6f}", incident, detector, learn])


def _ending(score: float, incident: int, detector: str, learn: bool) -> str:
    """The four columns a scored row gets after its own: anomaly_score, incident, detector, learning."""
    return f",{score:.6f},{incident if incident else ''},{detector},{'1' if learn else ''}\n"


_QUIET = _ending(0.0, 0, "", False)  # ",0.000000,,,\n"


def _header(table: Table) -> list[str]:
    """The scored file's header row: the input's (or made-up names) and the four added columns."""
    width = len(table.rows[0]) if len(table.rows) else 2
    header = table.header or (["value"] if table.time_column < 0 else
                              ["timestamp", "value"] + [f"column_{i}" for i in range(2, width)])
    return [*header, "anomaly_score", "incident", "detector", "learning"]


def _write_scored_bytes(table: Table, rows: RowScores, out: BinaryIO) -> None:
    """write_scored for the compiled reader's table (ASCII text) into a binary file: the same bytes as
    write_scored into a UTF-8 text file, from the text's ASCII bytes (no encoding of the whole output). The
    bytes are made here, after scoring: 28 MB a million rows held through the scoring cost it ~20,000 more page
    faults (the large arrays no longer reused freed memory: 0.50 -> 0.58 s of process time a million rows)."""
    if table.text is None or table.starts is None or not table.text.isascii():
        raise ValueError("only a table of the compiled reader has the ASCII text to write from")
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(_header(table))
    out.write(header.getvalue().encode("utf-8"))
    _write_spans(table.text.encode("ascii"), table.starts, rows, out)


def _quiet(rows: RowScores) -> np.ndarray:
    """The rows that score 0 outside any incident and the learning period: written with one shared ending."""
    return ((rows.score == 0) & ~np.signbit(rows.score) & (rows.incident == 0) & ~rows.learning
            & (rows.detector == ""))


def _write_spans(text: str | bytes, starts: np.ndarray, rows: RowScores, out: io.TextIOBase | BinaryIO,
                 span: int = 65536) -> None:
    """write_scored for the compiled reader's text (str into a text file, or its ASCII bytes into a binary one):
    each run of rows that share their ending (a score of 0, one incident, detector and learning flag: the quiet
    rows, and most rows of a held incident) is its slice of the text with every newline replaced by that ending
    (one replace), the rows with a score formatted one by one. The same bytes as appending each row's ending to
    its line (test_written_rows_are_the_same_from_either_reader). Written about a megabyte at a time."""
    binary = isinstance(text, bytes)
    newline, nothing = (b"\n", b"") if binary else ("\n", "")
    n = len(starts) - 1
    loud = np.flatnonzero((rows.score != 0) | np.signbit(rows.score))
    # Where the shared ending changes (a new incident, detector or learning flag), and each loud row alone: the
    # pieces, at most `span` rows each (only their offsets become Python ints, not a million of them).
    changed = 1 + np.flatnonzero((rows.incident[1:] != rows.incident[:-1]) | (rows.learning[1:] != rows.learning[:-1])
                                 | (rows.detector[1:] != rows.detector[:-1]))
    cuts = np.union1d(np.concatenate((loud, loud + 1, changed, np.arange(0, n, span))), [n])
    offsets = starts[cuts].tolist()
    is_loud = np.zeros(n + 1, dtype=bool)
    is_loud[loud] = True
    formatted = [_ending(*row) for row in zip(rows.score[loud].tolist(), rows.incident[loud].tolist(),
                                              rows.detector[loud].tolist(), rows.learning[loud].tolist(), strict=True)]
    endings = iter([ending.encode("utf-8") for ending in formatted] if binary else formatted)
    first = cuts[:-1]
    shared: dict[tuple, str | bytes] = {}
    parts: list = []
    size = 0
    for piece, key in enumerate(zip(is_loud[first].tolist(), rows.incident[first].tolist(),
                                    rows.detector[first].tolist(), rows.learning[first].tolist(), strict=True)):
        begin, end = offsets[piece], offsets[piece + 1]
        if key[0]:
            part = text[begin:end - 1] + next(endings)
        else:
            ending = shared.get(key)
            if ending is None:
                ending = _ending(0.0, *key[1:])
                ending = shared[key] = ending.encode("utf-8") if binary else ending
            part = text[begin:end].replace(newline, ending)
        parts.append(part)
        size += len(part)
        if len(parts) >= 4096 or size >= 1 << 20:
            out.write(nothing.join(parts))
            parts.clear()
            size = 0
    out.write(nothing.join(parts))


def read_source(source: Path) -> str:
    """The text of a CSV to score, read at most MAX_BYTES (a device or a pipe has no size to check first)."""
    try:
        return read_bounded_text(source, MAX_BYTES, "utf-8-sig")
    except FileTooLarge as exc:
        raise CsvError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise CsvError(f"{source} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise CsvError(f"cannot read {source}: {exc.strerror}") from exc


def score_file(source: Path, target: Path, params: DetectorParams = CSV_PARAMS) -> np.ndarray:
    """Read `source`, write `target` with the anomaly_score column; returns the scores."""
    table = read_table(read_source(source))
    rows = score_rows(table, params)
    if table.text is not None and table.starts is not None and table.text.isascii():
        with target.open("wb") as binary:  # the compiled reader's ASCII text, written as bytes
            _write_scored_bytes(table, rows, binary)
        return rows.score
    with target.open("w", encoding="utf-8", newline="") as out:
        write_scored(table, rows, out)
    return rows.score
