"""Anomaly detectors over a (series x time) array, all series at once, one module per family.

Every function takes `values` of shape (S, T) (a 1-D array is one series),
float, with NaN where a series has no reading, newest sample last. Scores are
causal: the output at column t depends on columns <= t only. The recursions
(Holt, CUSUM, the row surprise) are compiled with numba (`kernels`), one
series per contiguous row; everything else is whole-array numpy. No Python
loop per series or per point. Slow plain-Python references of every detector
live in tests/analytics/reference.py and judge these.

| module | family |
|---|---|
| base | input checks, calibration, NaN medians, sampling interval, Baseline / Anchor / History |
| level | the recent level: robust Holt smoothing and its z |
| shift | level shifts: two-sided CUSUM |
| seasonal | the daily/weekly profile as a forecaster |
| flatline | stuck sensors |
| drift | slow drift off the daily profile |
| limits | engineering limits, silence |
| fleet | a meter against its district's peers, minimum night flow |
| combined | every statistical detector of one metric, the strongest evidence calibrated |
| surprise | the CSV row score: the surprise of each row given the rows before it |
"""

from analytics.detectors.base import (
                                      Anchor,
                                      Baseline,
                                      DetectorInputError,
                                      History,
                                      as_matrix,
                                      as_times,
                                      calibrate,
                                      median_interval_ms,
                                      median_of_few,
                                      nanmedian_first_axis,
                                      typical_interval_ms,
)
from analytics.detectors.combined import DETECTORS, Scores, score_series
from analytics.detectors.drift import drift_evidence
from analytics.detectors.flatline import _flatline_rows, flatline_evidence, flatline_nats, flatline_score
from analytics.detectors.fleet import night_flow_score, night_minimum, peer_residual, peer_z
from analytics.detectors.level import robust_baseline
from analytics.detectors.limits import limit_score, silence_score
from analytics.detectors.seasonal import seasonal_baseline, seasonal_expected, seasonal_z
from analytics.detectors.shift import cusum_evidence, cusum_score, cusum_sides

__all__ = [
    "DETECTORS", "Anchor", "Baseline", "DetectorInputError", "History", "Scores", "_flatline_rows", "as_matrix",
    "as_times", "calibrate", "cusum_evidence", "cusum_score", "cusum_sides", "drift_evidence", "flatline_evidence",
    "flatline_nats", "flatline_score", "limit_score", "median_interval_ms", "median_of_few", "nanmedian_first_axis",
    "night_flow_score", "night_minimum", "peer_residual", "peer_z", "robust_baseline", "score_series",
    "seasonal_baseline", "seasonal_expected", "seasonal_z", "silence_score", "typical_interval_ms",
]
