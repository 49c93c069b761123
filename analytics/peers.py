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
from analytics.detectors import calibrate, cusum_evidence, peer_residual, robust_baseline

RULE = "peer_departure"


@dataclass
class PeerScores:
    score: np.ndarray  # (S, T) in [0, 1]; NaN without a reading or with too few peers
    departure: np.ndarray  # (S, T) (x - median) / |median| of the meter's district
    usual: np.ndarray  # (S, T) the meter's usual departure before this sample
    z: np.ndarray  # (S, T) robust z of the departure against the usual one


def peer_scores(values: np.ndarray, districts: np.ndarray, warmup_samples: int,
                params: DetectorParams = DEFAULT_PARAMS) -> PeerScores:
    """Score every meter (row of values, one shared time grid) against the meters of its district.

    The same as calibrate(cusum_evidence(detectors.peer_z(values, districts))),
    keeping the departures for the operator's explanation. A meter is scored
    only once it has `warmup_samples` departures (give it a day): meters of
    different uses (shops, homes) keep different ratios to the median through
    the day, so a usual departure learnt overnight makes every morning look
    like tampering (on the simulated city: nearly every meter at once on the
    first morning without it).
    """
    departure = peer_residual(values, districts, params)
    baseline = robust_baseline(departure, params, alpha=params.peer_alpha, trend=False)
    score = calibrate(cusum_evidence(baseline.z, params), params)
    seen = np.cumsum(~np.isnan(departure), axis=1)
    score = np.where(np.isnan(departure) | (seen < warmup_samples), np.nan, score)
    return PeerScores(score, departure, baseline.expected, baseline.z)


def warmup_samples(step_ms: int) -> int:
    """A day of samples at this step: a meter's usual departure from its district over one daily rhythm."""
    return max(1, DAY_MS // max(1, step_ms))


def member(metric: str) -> str:
    """The name a peer finding goes by among the anomalous metrics of a device's incident."""
    return f"{metric} against its district"
