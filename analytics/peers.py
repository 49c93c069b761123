"""Peer comparison within a district: one meter drifting away from its neighbours.

Meters of one district share the weather, the holidays and the daily rhythm;
a meter whose readings leave the district's median, while its neighbours
stay, is tampered with (under-reporting) or failing. The evaluation
(analytics.evaluate) and the live engine (AnalyticsEngine.check_peers) score
it the same way, here: the CUSUM evidence of the robust z of the meter's
relative departure from its district's median, against its own usual
departure (detectors.peer_z), calibrated to [0, 1].
"""

from dataclasses import dataclass

import numpy as np

from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams
from analytics.detectors import (
    Anchor,
    Baseline,
    calibrate,
    cusum_evidence,
    nanmedian_first_axis,
    peer_residual,
    robust_baseline,
)

RULE = "peer_departure"


@dataclass
class PeerScores:
    score: np.ndarray  # (S, T) in [0, 1]; NaN without a reading or with too few peers
    departure: np.ndarray  # (S, T) (x - median) / |median| of the meter's district
    usual: np.ndarray  # (S, T) the meter's usual departure before this sample
    z: np.ndarray  # (S, T) robust z of the departure against the usual one
    scale: np.ndarray  # (S, T) the robust scale of the meter's departure

    @property
    def anchor(self) -> Anchor:
        """For rules.Hysteresis' hold: an incident stays open while the departure is off the usual one
        of before it opened (the usual departure itself learns a lasting bypass within a few hours)."""
        return Anchor(np.zeros(self.departure.shape), self.usual, self.scale)


def peer_scores(values: np.ndarray, districts: np.ndarray, warmup_samples: int,
                params: DetectorParams = DEFAULT_PARAMS) -> PeerScores:
    """Score every meter (row of values, one shared time grid) against the meters of its district.

    calibrate(cusum_evidence(detectors.peer_z(values, districts))), keeping the
    departures for the operator's explanation, and made conservative (each
    guard only lowers the score):
    - a meter is scored once it has `warmup_samples` departures (give it a
      day): meters of different uses (shops, homes) keep different ratios to
      the median through the day, so a usual departure learnt overnight makes
      every morning look like tampering (without it, on the simulated city,
      nearly every meter at once on the first morning);
    - the lesser of that and the same evidence with each meter's scale
      floored at its district's median scale: the meter nearest the median
      has a departure of almost exactly 0 (it IS the median), learns a tiny
      scale, and the ordinary shift of the district's mix at weekends (shops
      close, homes do not) then looks like tampering (5 and 3 false alerts
      over a weekend on 70 simulated meters without it, none with it);
    - 0 for the whole district at a step where more than params.peer_shared_share
      of its meters depart together (one meter drifting away is a minority).
    The guards were checked on fleetsim runs over a weekend with seeds 7 and
    11 (`city evaluate` counts Tuesday to Thursday only, so it never sees one).
    """
    departure = peer_residual(values, districts, params)
    baseline = robust_baseline(departure, params, alpha=params.peer_alpha, trend=False)
    floor = _district_median(baseline.scale, np.asarray(districts), params)
    score = _departure_score(departure, baseline, floor, warmup_samples, params)
    return PeerScores(_unshared(score, np.asarray(districts), params), departure, baseline.expected, baseline.z,
                      baseline.scale)


PEER_BLOCK_ROWS = 256  # meters of a district whose running baselines the live check computes at once
PEER_BLOCK_COLUMNS = 256  # buckets of a district whose medians it sorts at once


def peer_scores_newest(values: np.ndarray, districts: np.ndarray, warmup_samples: int, keep: int,
                       params: DetectorParams = DEFAULT_PARAMS, block_rows: int = PEER_BLOCK_ROWS) -> PeerScores:
    """The last `keep` columns of peer_scores(values, districts, ...), the same numbers in a fraction of its
    memory (the live engine's peer check, analytics.peercheck, which feeds only the buckets not scored before).

    Why it is the same: every step of peer_scores is within one district (the district's median and median
    scale per bucket, the shared-departure guard) or within one meter (its running baseline and CUSUM), so
    each district is scored on its own, and within it `block_rows` meters at a time: a first pass over the
    blocks keeps only each meter's running scale (the district's median scale needs every meter's), a second
    computes the departures and baselines again, block by block, and keeps their newest columns. Medians are
    taken `PEER_BLOCK_COLUMNS` buckets at a time. `values` may be float32 (the history's means, exact in
    float64). Memory: the largest district's meters x the window once (its scales), plus one block's
    temporaries, where peer_scores holds a dozen arrays of every meter x the window. CPU: a district larger
    than one block computes its baselines twice (0 or below: one block, one pass).
    (The district's leading empty columns, before a fleet came up, are not left out: the CUSUM's running
    autocorrelation counts a missing z as 0, so they move its state a little.)
    """
    values = np.asarray(values)
    labels = np.asarray(districts)
    keep = max(0, min(keep, values.shape[1]))
    out = PeerScores(*(np.full((values.shape[0], keep), np.nan) for _ in range(5)))
    if keep == 0:
        return out
    for district in np.unique(labels):
        rows = np.flatnonzero(labels == district)
        if block_rows <= 0 or rows.size <= block_rows or rows.size < params.peer_min_peers:
            part = peer_scores(values[rows].astype(np.float64), labels[rows], warmup_samples, params)
            for name in ("score", "departure", "usual", "z", "scale"):
                getattr(out, name)[rows] = getattr(part, name)[:, -keep:]
            del part  # this district's temporaries go before the next district's are made
        else:
            _district_newest(values, rows, warmup_samples, keep, params, block_rows, out)
    return out


def _column_medians(values: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(nanmedian_first_axis of values[rows], the finite count) per column, PEER_BLOCK_COLUMNS columns at a time
    (each column's median is its own: the same numbers as over the whole, one chunk's sort at a time)."""
    columns = values.shape[1]
    median, count = np.empty(columns), np.empty(columns, dtype=np.int64)
    for start in range(0, columns, PEER_BLOCK_COLUMNS):
        part = slice(start, min(start + PEER_BLOCK_COLUMNS, columns))
        chunk = (values[:, part] if rows is None else values[rows, part]).astype(np.float64)
        median[part] = nanmedian_first_axis(chunk)
        count[part] = (~np.isnan(chunk)).sum(axis=0)
    return median, count


def _district_newest(values: np.ndarray, rows: np.ndarray, warmup_samples: int, keep: int,
                     params: DetectorParams, block_rows: int, out: PeerScores) -> None:
    """peer_scores of one district (rows of values, at least peer_min_peers), its newest `keep` columns into
    `out`, block_rows meters at a time: the same operations as peer_residual, robust_baseline, _district_median
    and _unshared, in the same order on the same numbers."""
    median, count = _column_medians(values, rows)
    enough = count >= params.peer_min_peers
    divisor = np.maximum(np.abs(median), params.abs_scale_floor)

    def baseline_of(block: np.ndarray) -> tuple[np.ndarray, object]:
        with np.errstate(divide="ignore", invalid="ignore"):
            departure = (values[block].astype(np.float64) - median) / divisor
        departure = np.where(enough, departure, np.nan)
        return departure, robust_baseline(departure, params, alpha=params.peer_alpha, trend=False)

    blocks = [rows[start:start + block_rows] for start in range(0, rows.size, block_rows)]
    scales = np.empty((rows.size, values.shape[1]))
    done = 0
    for block in blocks:
        scales[done:done + block.size] = baseline_of(block)[1].scale
        done += block.size
    floor = _column_medians(scales, None)[0]
    del scales
    newest = slice(values.shape[1] - keep, None)
    scores = np.empty((rows.size, keep))
    done = 0
    for block in blocks:
        departure, baseline = baseline_of(block)
        score = _departure_score(departure, baseline, floor, warmup_samples, params)
        scores[done:done + block.size] = score[:, newest]
        out.departure[block], out.usual[block] = departure[:, newest], baseline.expected[:, newest]
        out.z[block], out.scale[block] = baseline.z[:, newest], baseline.scale[:, newest]
        done += block.size
    out.score[rows] = _unshared(scores, np.zeros(rows.size, dtype=np.int8), params)


def _departure_score(departure: np.ndarray, baseline: Baseline, floor: np.ndarray, warmup_samples: int,
                     params: DetectorParams) -> np.ndarray:
    """The CUSUM evidence of a departure against the meter's own scale and against its district's (the lesser:
    a meter quieter than its peers is not accused for noise they all have); NaN before warmup_samples."""
    plain = calibrate(cusum_evidence(baseline.z, params), params)
    with np.errstate(divide="ignore", invalid="ignore"):
        floored_z = (departure - baseline.expected) / np.fmax(baseline.scale, floor)
    floored = calibrate(cusum_evidence(np.where(np.isnan(baseline.z), np.nan, floored_z), params), params)
    score = np.minimum(plain, floored)
    seen = np.cumsum(~np.isnan(departure), axis=1)
    return np.where(np.isnan(departure) | (seen < warmup_samples), np.nan, score)


def _district_median(scale: np.ndarray, districts: np.ndarray, params: DetectorParams) -> np.ndarray:
    """Per (meter, step): the median of the scales of its district's meters (NaN with too few peers)."""
    out = np.full(scale.shape, np.nan)
    for district in np.unique(districts):
        rows = districts == district
        if rows.sum() >= params.peer_min_peers:
            out[rows] = nanmedian_first_axis(scale[rows])[None]
    return out


def _unshared(score: np.ndarray, districts: np.ndarray, params: DetectorParams) -> np.ndarray:
    """Scores set to 0 in a district at the steps where more than peer_shared_share of its scored meters depart."""
    out = score.copy()
    for district in np.unique(districts):  # a handful of districts, not meters
        rows = districts == district
        block = score[rows]
        scored = (~np.isnan(block)).sum(axis=0)
        departing = (np.nan_to_num(block) >= params.clear_score).sum(axis=0)
        shared = departing > params.peer_shared_share * np.maximum(scored, 1)
        # A lone meter in a small district is always "shared" by that rule: it needs company to be one.
        shared &= departing > 1
        out[rows] = np.where(shared[None] & ~np.isnan(block), 0.0, block)
    return out


def warmup_samples(step_ms: int) -> int:
    """A day of samples at this step: a meter's usual departure from its district over one daily rhythm."""
    return max(1, DAY_MS // max(1, step_ms))


def member(metric: str) -> str:
    """The name a peer finding goes by among the anomalous metrics of a device's incident."""
    return f"{metric} against its district"
