"""The device clock scorer: a device whose arrival delay jumps has had its clock moved.

A device stamps its readings with its own clock. The delay between a
message's arrival and its newest reading's timestamp is steady for a device
(its batching and the network); when it jumps, the device's clock moved (a
lost RTC, a bad NTP answer) and its readings are filed at the wrong time.
Each live message adds one delay to the device's row of `arrivals` (in the
learnt state, analytics.learnt); this scorer scores the delays with
rules.clock_offset_score and keeps its own hysteresis, so a jump opens one
`clock_offset` incident per device (metric ''), cleared once the delay is
steady again. Backfill (`hist`) arrives late on purpose: it carries no
evidence about the clock and adds nothing.

The arrival times are also each device's pace, which the silence check
reads (`pace_ms`). What a restart keeps of `arrivals` is the pace only
(analytics.state): the broker's backlog arrives late by the downtime and
would look like a jump on every device. The delays, and this scorer's
hysteresis with them, are relearnt in `warmup` messages; an open
clock_offset incident is cleared by the first live message after a restart.
"""

import numpy as np

from analytics.buffers import SeriesBlock, row_blocks
from analytics.config import PASS_BLOCK_ROWS, DetectorParams, EngineParams
from analytics.detectors import median_interval_ms
from analytics.incidents import Detail, Finding, changes, newest
from analytics.rules import Hysteresis, clock_offset_score
from edge import contract

RULE = "clock_offset"


class ClockScorer:
    """Scores each device's arrival delays; the rows are those of the learnt state's `arrivals` block."""

    def __init__(self, params: EngineParams, detector: DetectorParams):
        self.default_interval_ms = params.default_interval_ms
        self.detector = detector
        self.hysteresis = Hysteresis()
        self.pending: dict[int, int] = {}  # row -> delays added since the last pass
        self.block_rows = PASS_BLOCK_ROWS  # devices scored at once (0: all at once)

    def observe(self, arrivals: SeriesBlock, device: str, received_ms: int, newest_ms: int) -> None:
        """One live message of `device`: arrived at `received_ms`, its newest reading stamped `newest_ms`."""
        row = arrivals.row((device,))
        if arrivals.append(row, np.array([received_ms]), np.array([float(received_ms - newest_ms)])):
            self.pending[row] = min(self.pending.get(row, 0) + 1, arrivals.capacity)

    def score(self, arrivals: SeriesBlock) -> list[Finding]:
        """The findings of every device with new delays since the last pass: each opening and clearing of
        its clock_offset incident, or its newest delay's state (which may update an open one)."""
        if not self.pending:
            return []
        pending, self.pending = self.pending, {}
        rows = np.array(sorted(pending))
        counts = np.array([pending[row] for row in rows])
        blocks = row_blocks(rows.size, self.block_rows)
        # the pass's devices share one interval (the median of theirs): found before any block is scored
        interval = np.concatenate([np.nan_to_num(median_interval_ms(arrivals.times[rows[part]]),
                                                 nan=self.default_interval_ms) for part in blocks])
        interval_ms = float(np.median(interval))
        self.hysteresis.resize(int(rows.max()) + 1)
        width = int(counts.max())
        findings = []
        for part in blocks:  # each device is scored on its own: blocks bound the temporaries
            findings += self._score_rows(arrivals, rows[part], counts[part], interval_ms, width)
        return findings

    def _score_rows(self, arrivals: SeriesBlock, rows: np.ndarray, counts: np.ndarray, interval_ms: float,
                    width: int) -> list[Finding]:
        """score() for one block of its rows (sorted), with the pass's interval and widest count."""
        lags, times = arrivals.values[rows], arrivals.times[rows]
        score = clock_offset_score(lags, interval_ms, self.detector)
        was_active = self.hysteresis.active[rows].copy()
        flags = self.hysteresis.step(newest(score, counts, width), self.detector, rows)
        findings = []
        for i, row in enumerate(rows):
            n = counts[i]
            for j in changes(was_active[i], flags[i, :n]):
                at = j - n  # buffer position, from the end
                findings.append(Finding(arrivals.keys[row][0], "", bool(flags[i, j]), float(score[i, at]), RULE,
                                        "warning", int(times[i, at]), Detail(float(lags[i, at]))))
        return findings


def pace_ms(arrivals: SeriesBlock, devices: list[str], default_ms: float) -> np.ndarray:
    """Each device's usual interval between messages (ms), from its arrival times; `default_ms` for a device
    with too few of them. Never below the contract's minimum: a burst of queued messages is not its pace."""
    rows = np.array([arrivals.row_of.get((device,), 0) for device in devices])
    found = np.nan_to_num(median_interval_ms(arrivals.times[rows]), nan=float(default_ms))
    return np.maximum(found, contract.MIN_INTERVAL_MS)
