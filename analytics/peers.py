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
from analytics.detectors import Anchor, calibrate, cusum_evidence, nanmedian_first_axis, peer_residual, robust_baseline

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
    plain = calibrate(cusum_evidence(baseline.z, params), params)
    floor = _district_median(baseline.scale, np.asarray(districts), params)
    with np.errstate(divide="ignore", invalid="ignore"):
        floored_z = (departure - baseline.expected) / np.fmax(baseline.scale, floor)
    floored = calibrate(cusum_evidence(np.where(np.isnan(baseline.z), np.nan, floored_z), params), params)
    score = np.minimum(plain, floored)
    seen = np.cumsum(~np.isnan(departure), axis=1)
    score = np.where(np.isnan(departure) | (seen < warmup_samples), np.nan, score)
    return PeerScores(_unshared(score, np.asarray(districts), params), departure, baseline.expected, baseline.z,
                      baseline.scale)


def peer_scores_newest(values: np.ndarray, districts: np.ndarray, warmup_samples: int, keep: int,
                       params: DetectorParams = DEFAULT_PARAMS) -> PeerScores:
    """The last `keep` columns of peer_scores(values, districts, ...), the same numbers in a fraction of its
    memory (the live engine's peer check, analytics.peercheck, which feeds only the buckets not scored before).

    Why it is the same: every step of peer_scores is within one district (the district's median and median
    scale, the shared-departure guard) or within one meter (its running baseline and CUSUM), so each district
    is scored on its own, its temporaries (a dozen arrays of its meters x the window) freed before the next.
    Memory: the largest district's meters x the window, where peer_scores takes every meter's, a dozen times
    over, and the result's `keep` columns. (The district's leading empty columns, before a fleet came up,
    are not left out: the CUSUM's running autocorrelation counts a missing z as 0, so they move its state a
    little, and the numbers would no longer be peer_scores'.)
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(districts)
    keep = max(0, min(keep, values.shape[1]))
    out = PeerScores(*(np.full((values.shape[0], keep), np.nan) for _ in range(5)))
    if keep == 0:
        return out
    for district in np.unique(labels):
        rows = np.flatnonzero(labels == district)
        part = peer_scores(values[rows], labels[rows], warmup_samples, params)
        for name in ("score", "departure", "usual", "z", "scale"):
            getattr(out, name)[rows] = getattr(part, name)[:, -keep:]
        del part  # this district's temporaries go before the next district's are made
    return out


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
