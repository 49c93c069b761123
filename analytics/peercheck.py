"""The live engine's peer check: each meter against the other meters of its district (analytics.peers).

Once a minute bucket has closed, the coarse history's bucket means of every
meter of a PEER_METRICS metric are laid on one bucket grid (the last
`peer_window` buckets, up to the newest one every meter has had the time to
close) and scored as in the evaluation (peers.peer_scores); only the
buckets newer than those scored before feed the hysteresis. A finding joins
the device's one `readings` incident as "<metric> against its district".
"""

from dataclasses import dataclass

import numpy as np

from analytics import peers
from analytics.config import DetectorParams, EngineParams
from analytics.detectors import Anchor
from analytics.incidents import Detail, Finding, changes, finite
from analytics.learnt import LearntState


@dataclass
class PeerJob:
    """One metric's peer check, laid out on the engine's thread: a copy of its meters' grid, nothing shared with
    the engine, so `score()` can run on another thread while the engine goes on scoring readings."""

    metric: str
    rows: np.ndarray  # the meters' rows in the metric's block
    grid: np.ndarray  # (meters, buckets) their bucket means on one grid (float32, as the history keeps them)
    first: int  # the grid's first bucket
    districts: np.ndarray  # per meter
    bucket_ms: int
    new: int = 0  # the grid's newest columns not scored before (0: all of them), the only ones apply reads

    @property
    def last(self) -> int:
        return self.first + self.grid.shape[1] - 1

    def score(self, detector: DetectorParams) -> peers.PeerScores:
        """The district comparison (peers.peer_scores) of the columns not scored before: the costly part, numpy
        over the copy only, one district at a time (peers.peer_scores_newest: its memory is the largest
        district's, not the whole grid's a dozen times over)."""
        warmup = min(peers.warmup_samples(self.bucket_ms), self.grid.shape[1] // 2)
        return peers.peer_scores_newest(self.grid, self.districts, warmup, self.new or self.grid.shape[1], detector)


def check_peers_of(learnt: LearntState, metric: str, params: EngineParams, detector: DetectorParams) -> list[Finding]:
    """The findings of `metric`'s meters on the buckets closed since the last check ([] when none closed: the
    usual case, as the engine checks every few seconds).

    learnt: the engine's state (coarse history, districts, the peer
    hysteresis `states['peer:<metric>']` and `peer_scored`, the last bucket
    scored, updated in place). params: the window (`peer_window`); detector:
    the thresholds. In one go: peer_job, PeerJob.score and apply_peer_scores,
    which the engine can also run apart (AnalyticsEngine.check_peers_beside).
    """
    job = peer_job(learnt, metric, params)
    return [] if job is None else apply_peer_scores(learnt, job, job.score(detector), detector)


def peer_job(learnt: LearntState, metric: str, params: EngineParams) -> PeerJob | None:
    """The grid of `metric`'s meters to score, or None when no bucket closed since the last check."""
    laid = _peer_grid(learnt, metric, params.peer_window)
    if laid is None:
        return None
    rows, grid, first = laid
    block = learnt.blocks[metric]
    districts = np.array([learnt.info[block.keys[r][0]][1] for r in rows], dtype=object)
    last = first + grid.shape[1] - 1
    new = min(last - learnt.peer_scored.get(metric, first - 1), grid.shape[1])
    return PeerJob(metric, rows, grid, first, districts, learnt.history[metric].bucket_ms, new)


def apply_peer_scores(learnt: LearntState, job: PeerJob, scored: peers.PeerScores,
                      detector: DetectorParams) -> list[Finding]:
    """Feed the buckets of `job` not scored before to the peer hysteresis; returns the findings. On the engine's
    thread (it changes the learnt state); `peer_scored` moves to the job's last bucket only now, so a job whose
    result never came (a restart) is laid out again."""
    metric, rows, grid, first, last = job.metric, job.rows, job.grid, job.first, job.last
    done = learnt.peer_scored.get(metric, first - 1)
    if last <= done:
        return []
    learnt.peer_scored[metric] = last
    block, bucket_ms = learnt.blocks[metric], job.bucket_ms
    n_new = min(last - done, grid.shape[1], scored.score.shape[1])  # the scores hold the job's newest columns
    new = slice(scored.score.shape[1] - n_new, None)
    state = learnt.states[f"peer:{metric}"]
    state.resize(int(rows.max()) + 1)
    was_active = state.active[rows].copy()
    anchor = scored.anchor
    flags = state.step(scored.score[:, new], detector, rows, values=scored.departure[:, new],
                       anchor=Anchor(anchor.profile[:, new], anchor.bias[:, new], anchor.scale[:, new]))
    columns = np.arange(grid.shape[1])[grid.shape[1] - n_new:]  # of the grid
    scored_columns = np.arange(scored.score.shape[1])[new]  # of the scores
    findings = []
    for i in np.flatnonzero(flags.any(axis=1) | was_active):
        for j in changes(was_active[i], flags[i]):
            column, at = columns[j], scored_columns[j]
            observed, departure = float(grid[i, column]), scored.departure[i, at]
            median = observed / (1 + departure) if np.isfinite(departure) and departure != -1 else np.nan
            detail = Detail(finite(observed), finite(median), finite(scored.usual[i, at]),
                            finite(scored.z[i, at]))
            findings.append(Finding(block.keys[rows[i]][0], metric, bool(flags[i, j]),
                                    float(np.nan_to_num(scored.score[i, at])), peers.RULE, "warning",
                                    int((first + column) * bucket_ms), detail, member=peers.member(metric)))
    return findings


def _peer_grid(learnt: LearntState, metric: str, width: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(rows with a district, their values (S, width) on the bucket grid, the grid's first bucket),
    or None when no bucket closed since the last check."""
    history, block = learnt.history.get(metric), learnt.blocks.get(metric)
    if history is None or block is None:
        return None
    n_rows = int(np.flatnonzero(history.fine_newest[:history.rows] >= 0).max(initial=-1)) + 1
    if n_rows == 0:
        return None
    # The newest bucket may not have closed yet on every row (a reading of
    # the next minute closes it): the grid ends one bucket earlier.
    last = int(history.fine_newest[:n_rows].max()) - 1
    if last <= learnt.peer_scored.get(metric, -1):
        return None
    rows = np.array([r for r in range(n_rows) if learnt.info.get(block.keys[r][0], ("", ""))[1]], dtype=np.int64)
    if rows.size == 0:
        return None
    width = min(width, history.fine_capacity)  # the window is the fine tier's at most
    first = last - width + 1
    # float32, as the history keeps the means: the job's copy of every meter's window at half the memory
    return rows, history.fine_grid(rows, first, last, np.float32), first
