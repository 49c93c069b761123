"""The live engine's peer check: each meter against the other meters of its district (analytics.peers).

Once a minute bucket has closed, the coarse history's bucket means of every
meter of a PEER_METRICS metric are laid on one bucket grid (the last
`peer_window` buckets, up to the newest one every meter has had the time to
close) and scored as in the evaluation (peers.peer_scores); only the
buckets newer than those scored before feed the hysteresis. A finding joins
the device's one `readings` incident as "<metric> against its district".
"""

import numpy as np

from analytics import peers
from analytics.config import DetectorParams, EngineParams
from analytics.detectors import Anchor
from analytics.incidents import Detail, Finding, changes, finite
from analytics.learnt import LearntState


def check_peers_of(learnt: LearntState, metric: str, params: EngineParams, detector: DetectorParams) -> list[Finding]:
    """The findings of `metric`'s meters on the buckets closed since the last check ([] when none closed: the
    usual case, as the engine checks every few seconds).

    learnt: the engine's state (coarse history, districts, the peer
    hysteresis `states['peer:<metric>']` and `peer_scored`, the last bucket
    scored, updated in place). params: the window (`peer_window`); detector:
    the thresholds.
    """
    laid = _peer_grid(learnt, metric, params.peer_window)
    if laid is None:
        return []
    rows, grid, first = laid
    last = first + grid.shape[1] - 1
    done = learnt.peer_scored.get(metric, first - 1)
    learnt.peer_scored[metric] = last
    block, bucket_ms = learnt.blocks[metric], learnt.history[metric].bucket_ms
    districts = np.array([learnt.info[block.keys[r][0]][1] for r in rows], dtype=object)
    warmup = min(peers.warmup_samples(bucket_ms), grid.shape[1] // 2)
    scored = peers.peer_scores(grid, districts, warmup, detector)
    new = slice(grid.shape[1] - min(last - done, grid.shape[1]), None)
    state = learnt.states[f"peer:{metric}"]
    state.resize(int(rows.max()) + 1)
    was_active = state.active[rows].copy()
    anchor = scored.anchor
    flags = state.step(scored.score[:, new], detector, rows, values=scored.departure[:, new],
                       anchor=Anchor(anchor.profile[:, new], anchor.bias[:, new], anchor.scale[:, new]))
    columns = np.arange(grid.shape[1])[new]
    findings = []
    for i in np.flatnonzero(flags.any(axis=1) | was_active):
        for j in changes(was_active[i], flags[i]):
            column = columns[j]
            observed, departure = grid[i, column], scored.departure[i, column]
            median = observed / (1 + departure) if np.isfinite(departure) and departure != -1 else np.nan
            detail = Detail(finite(observed), finite(median), finite(scored.usual[i, column]),
                            finite(scored.z[i, column]))
            findings.append(Finding(block.keys[rows[i]][0], metric, bool(flags[i, j]),
                                    float(np.nan_to_num(scored.score[i, column])), peers.RULE, "warning",
                                    int((first + column) * bucket_ms), detail, member=peers.member(metric)))
    return findings


def _peer_grid(learnt: LearntState, metric: str, width: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(rows with a district, their values (S, width) on the bucket grid, the grid's first bucket),
    or None when no bucket closed since the last check."""
    history, block = learnt.history.get(metric), learnt.blocks.get(metric)
    if history is None or block is None:
        return None
    closed = history.closed
    n_rows = len(closed.keys)  # the rows that closed a bucket at least once, in the fine block's order
    newest = closed.times[:n_rows, -1]
    if not (newest > 0).any():
        return None
    # The newest bucket may not have closed yet on every row (a reading of
    # the next minute closes it): the grid ends one bucket earlier.
    last = int(newest.max()) // history.bucket_ms - 1
    if last <= learnt.peer_scored.get(metric, -1):
        return None
    rows = np.array([r for r in range(n_rows) if learnt.info.get(block.keys[r][0], ("", ""))[1]], dtype=np.int64)
    if rows.size == 0:
        return None
    # Newest last and at most one closed bucket per column: the window is in the last `width` columns.
    values, times = closed.values[rows, -width:], closed.times[rows, -width:]
    buckets = times // history.bucket_ms
    first = last - width + 1
    r, c = np.nonzero(~np.isnan(values) & (times > 0) & (buckets >= first) & (buckets <= last))
    grid = np.full((rows.size, width), np.nan)
    grid[r, buckets[r, c] - first] = values[r, c]
    return rows, grid, first
