"""All the statistical detectors of one metric together: the strongest evidence per reading, calibrated."""

import math
from dataclasses import dataclass

import numpy as np

from analytics.config import DAY_MS, DEFAULT_PARAMS, DetectorParams
from analytics.detectors import kernels
from analytics.detectors.base import (
    Anchor,
    Baseline,
    History,
    as_matrix,
    as_times,
    calibrate,
    check_alphas,
    long_interval_ms,
    sampling_intervals_ms,
    typical_interval_ms,
)
from analytics.detectors.drift import drift_evidence
from analytics.detectors.flatline import _flatline_rows, flatline_evidence
from analytics.detectors.level import _holt, _holt_both, robust_baseline, warm_z
from analytics.detectors.seasonal import profile_possible, seasonal_baseline
from analytics.detectors.shift import cusum_sides_of_three

DETECTORS = ("level", "shift", "seasonal", "flatline", "drift")


@dataclass
class Scores:
    """The evidence of each detector in robust sigmas, and the combined score in [0, 1], all (S, T).

    `winner` indexes DETECTORS: the detector with the most evidence, which
    the explanation of an alert names. `baseline` holds the forecast used at
    each sample (expected value, scale, z), for the explanation (None from score_series(lean=True) where the
    series have a profile). `anchor`:
    the daily/weekly profile and its running bias (None where no series has
    a profile yet), which holds an incident open while a lasting fault lasts.
    """

    evidence: dict[str, np.ndarray]
    combined: np.ndarray
    winner: np.ndarray
    baseline: Baseline | None  # None from score_series(lean=True)
    anchor: Anchor | None = None
    # The signed point z of each reading (NaN until a baseline is trusted): the level/seasonal
    # evidence with its direction, against the profile alone where it is the better forecaster
    # (surprise.row_surprise reads it; None when score_series ran in blocks without evidence).
    point: np.ndarray | None = None


def score_series(values: np.ndarray, times: np.ndarray | None = None,
                 params: DetectorParams = DEFAULT_PARAMS, with_evidence: bool = False,
                 history: History | None = None, lean: bool = False) -> Scores:
    """The general statistical detectors on every series, combined by the largest evidence.

    Two forecasters: the recent level (robust Holt) and the daily/weekly
    profile (once two previous periods exist); at each sample the one that
    has predicted better so far (smaller running scale) is the baseline.
    level / seasonal (named after the baseline): how unusual the reading is
    against both forecasters, the smaller |z| of the two where a profile
    exists (spikes, dips, sudden shifts; a daily step is expected); shift:
    CUSUM of the profile's z where a profile exists, else of the recent
    level's z (smaller sustained shifts, and slow drift that the level
    follows but the profile does not);
    flatline: stuck readings. Each gives
    evidence in robust sigmas; the largest is calibrated once to [0, 1]. All
    causal. Without `times` the samples are taken as evenly spaced and only
    the recent level is used. `with_evidence` also keeps each detector's
    evidence array (four more arrays the size of `values`). `history`:
    coarse older readings per series for the profile (see History).

    Series are scored in blocks of `block_series` rows written into
    preallocated outputs, so each block's temporaries stay in cache.

    `lean` (with `with_evidence`, for the row score of `city score`): where the series have a profile, only what
    csvscore.score_rows reads is written and kept: the combined score, its winner, the anchor, the point z and
    the flatline and drift evidence; no baseline (None) and no level, shift or seasonal evidence, so three
    arrays the size of `values` are never touched and six more are freed earlier. One block of series only
    (more rows than block_series: as without it).
    """
    x = as_matrix(values)
    if times is not None:
        times = np.asarray(times)
        as_times(times, x.shape)  # validate once, before any work
    block = params.block_series
    if x.shape[0] <= block:
        scores = _score_block(x, times, params, history, with_evidence, lean=lean and with_evidence)
        if not with_evidence:
            scores.evidence = {}
        return scores
    out = Scores({name: np.empty(x.shape) for name in DETECTORS} if with_evidence else {}, np.empty(x.shape),
                 np.empty(x.shape, dtype=np.int8), Baseline(*(np.empty(x.shape) for _ in range(3))))
    # The anchor's arrays, written by the blocks with a profile (only those rows are touched; np.empty maps
    # pages without writing them), NaN filled only into the rows of blocks without one, and no anchor at all
    # when no block had one (the NaN fill of three whole arrays first: analytics/README.md, issue 13).
    anchor = Anchor(*(np.empty(x.shape) for _ in range(3))) if times is not None else None
    without: list[slice] = []  # the rows of blocks without an anchor
    for start in range(0, x.shape[0], block):
        rows = slice(start, start + block)
        # The block's rows of the outputs: each block writes its combined score, winner, baseline and anchor
        # there directly, not into arrays of its own copied here.
        target = Scores({}, out.combined[rows], out.winner[rows],
                        Baseline(out.baseline.expected[rows], out.baseline.scale[rows], out.baseline.z[rows]),
                        None if anchor is None else Anchor(anchor.profile[rows], anchor.bias[rows],
                                                           anchor.scale[rows]))
        part = _score_block(x[rows], times if times is None or times.ndim == 1 else times[rows], params,
                            None if history is None else history.rows(rows), with_evidence, target)
        if part.combined is not target.combined:
            out.combined[rows], out.winner[rows] = part.combined, part.winner
            out.baseline.expected[rows], out.baseline.scale[rows], out.baseline.z[rows] = \
                part.baseline.expected, part.baseline.scale, part.baseline.z
        for name in out.evidence:
            out.evidence[name][rows] = part.evidence[name]
        if with_evidence:
            if out.point is None:
                out.point = np.empty(x.shape)
            out.point[rows] = part.point
        if part.anchor is None:
            without.append(rows)
        else:
            out.anchor = anchor
            if part.anchor is not target.anchor:
                anchor.profile[rows], anchor.bias[rows], anchor.scale[rows] = \
                    part.anchor.profile, part.anchor.bias, part.anchor.scale
    if out.anchor is not None:
        for rows in without:
            for array in (anchor.profile, anchor.bias, anchor.scale):
                array[rows] = np.nan
    return out


def _widened(x: np.ndarray, times: np.ndarray, recent: Baseline, keep: np.ndarray | None,
             params: DetectorParams, step: float | None = None, errors_scale: np.ndarray | None = None) -> Baseline:
    """The recent level's baseline with its scale never below `day_scale_floor` times the same forecast
    errors' scale over a longer memory (about a quarter day), except where `keep` (a daily profile exists).

    Until the daily profile exists, the recent level is the only forecaster,
    and its scale is what the last hour or so made it: after a quiet night
    (no cars, no load) that is tiny, and the ordinary morning rise would be
    a string of many-sigma anomalies. How well the level has forecast over
    the last several hours is the honest yardstick until the profile says
    what each hour usually does; a spike still stands out against it.
    `step`: typical_interval_ms(times) where the caller has it already. `errors_scale`: that longer memory's
    scale where the caller has it already (_level_pair's; an array of its own, scaled here in place).
    """
    step = typical_interval_ms(times) if step is None else step
    if not step > 0:
        return recent
    error = x - recent.expected
    if errors_scale is None:
        quarter_day = min(1.0, 4.0 * step / DAY_MS)
        errors_scale = _holt(error, quarter_day, quarter_day, False, params)[1]
    floor = errors_scale
    floor *= params.day_scale_floor
    scale = np.fmax(recent.scale, floor, out=floor)
    if keep is not None and keep.any():
        np.copyto(scale, recent.scale, where=keep)  # np.where(keep, recent.scale, scale), in its own array
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.divide(error, scale, out=error)
    z[np.isnan(recent.z)] = np.nan
    return Baseline(recent.expected, scale, z)


def _floored(x: np.ndarray, scale: np.ndarray, params: DetectorParams) -> np.ndarray:
    """scale never below params.point_scale_floor times its running mean over the readings that moved (a
    scale learnt on a stuck sensor's repeats is no skill); unchanged with the floor 0."""
    if params.point_scale_floor <= 0:
        return scale
    out = np.empty(scale.shape)
    kernels.floor_on_moves(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(scale, dtype=np.float64),
                           out, float(params.point_scale_floor), float(params.point_scale_alpha))
    return out


def _at_resolution(x: np.ndarray, scale: np.ndarray, params: DetectorParams) -> np.ndarray:
    """scale never below params.point_resolution_floor times the series' resolution (its smallest non-zero
    step between successive readings so far, kernels.floor_at_resolution); unchanged with the floor 0."""
    if params.point_resolution_floor <= 0:
        return scale
    out = np.empty(scale.shape)
    kernels.floor_at_resolution(np.ascontiguousarray(x, dtype=np.float64),
                                np.ascontiguousarray(scale, dtype=np.float64), out,
                                float(params.point_resolution_floor))
    return out


def _profile_at_resolution(x: np.ndarray, season: Baseline, params: DetectorParams) -> Baseline:
    """The profile's fit with its scale floored at the series' resolution (_at_resolution) and at a share of its
    usual scale where the readings moved (_floored), z and plain z rescaled to it: on counts or step-wise readings
    whose earlier days repeat exactly at some hour, the fit's scale there is ~0 (its own errors were 0) and a
    reading one step off was a z of 1e9; after a sensor stuck for days (its repeats the profile's earlier days)
    the readings were 30-90 sigmas off for days (issue 13)."""
    scale = _at_resolution(x, _floored(x, season.scale, params), params)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = season.scale / scale
    return Baseline(season.expected, scale, season.z * shrink, season.plain_z * shrink, season.profile)


_NO_SLIDES = (np.empty(0, dtype=np.int64), np.empty(0))


def _profile_slides(season: Baseline, times: np.ndarray | None,
                    params: DetectorParams) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the point z judges the profile's z and plain z against the profile up to params.profile_slide_ms
    earlier or later, because that brings it params.profile_slide_gain sigmas nearer (kernels.profile_slides: the
    flat index of each such reading and its move in sigmas): a rush hour setting in ten minutes before its usual
    time is that, not a fault. None with profile_slide_ms 0 (the engine) or without times."""
    if params.profile_slide_ms <= 0 or times is None or season.profile is None:
        return None
    t = np.asarray(as_times(times, season.z.shape))
    rows = np.ascontiguousarray(t[:1] if np.ndim(times) == 1 else t, dtype=np.float64)
    return kernels.profile_slides(rows, *_contiguous(season.profile, season.scale, season.z),
                                  float(params.profile_slide_ms), float(params.profile_slide_gain))


def _slid_residual(x: np.ndarray, season: Baseline, slides: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """x off the profile each reading is judged against where it slides (_profile_slides: the profile at the
    nearer time of day); x - season.profile where nothing slides (the engine). One pass (kernels.slid_residual),
    the bits of (x - profile) + nan_to_num((slid z - z) * scale)."""
    if slides is None:
        return x - season.profile
    residual = np.empty(x.shape)
    kernels.slid_residual(*_contiguous(x, season.profile, season.scale, season.z), *slides, residual)
    return residual


def _gaps(x: np.ndarray, times: np.ndarray, power: float,
          long_ms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each reading's time since the previous reading (not NaN) of its series, in the series' 90th-percentile
    sampling intervals, at least 1 (1 also at a series' first reading); and that to the `power`. `long_ms`:
    long_interval_ms(rows) where the caller has it already."""
    t = np.asarray(as_times(times, x.shape))
    rows = t[:1] if np.ndim(times) == 1 else t
    long_ms = long_interval_ms(rows) if long_ms is None else long_ms
    interval = np.broadcast_to(long_ms, (x.shape[0],)).astype(np.float64)
    gaps, widen = np.empty(x.shape), np.empty(x.shape)
    kernels.gap_ratios(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(rows), interval,
                       float(power), gaps, widen)
    return gaps, widen


def _quick_level(x: np.ndarray, times: np.ndarray | None, keep: np.ndarray | None, params: DetectorParams,
                 recent: Baseline, step: float | None = None,
                 pre: "_Quick | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """The recent point z from whichever of two time scales has forecast better so far (smaller running scale).

    The slow recent level (level_alpha, ~50 readings) is stable but lags a
    smooth curve, so a dip on a steep daily flank hides in its lag; the quick
    one (quick_alpha, ~3 readings, the same Huber clip and scale memory)
    follows the curve and judges the reading against its neighbours.
    Both scales are floored (point_scale_floor, _floored) at a share of their
    usual value where the readings moved: a stuck sensor's repeats would
    otherwise leave them near 0 and the readings after them thousands of sigmas.
    Both are also never below point_resolution_floor times the series'
    smallest step so far (_at_resolution), as the profile's fit in the
    row score. After a gap in the readings both scales grow (point_gap_power) and the
    quick level restarts (point_gap_restart): a level hours old is stale.
    Returns (z, scale) of the better of the two per reading. `step`: typical_interval_ms(times), if known.
    `pre`: the gaps, the quick level's recursion and its errors' scale where _level_pair computed them already.
    """
    gaps = widen = quick_expected = quick_scale = errors_scale = None
    if pre is not None:
        widen, quick_expected, quick_scale, errors_scale = pre.take()
    elif times is not None and (params.point_gap_power > 0 or params.point_gap_restart > 0):
        gaps, widen = _gaps(x, times, params.point_gap_power)
    widened = widen is not None and params.point_gap_power > 0
    widen = widen if widened else 1.0
    if params.point_scale_floor > 0 or widened or params.point_resolution_floor > 0:
        scale = _at_resolution(x, _floored(x, recent.scale, params), params) * widen
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(np.isnan(recent.z), np.nan, (x - recent.expected) / scale)
        recent = Baseline(recent.expected, scale, z)
    if params.quick_alpha <= 0:
        return recent.z, recent.scale
    if pre is None:
        quick_expected, quick_scale = _holt(x, params.quick_alpha, params.scale_alpha, True, params, gaps,
                                            params.point_gap_restart)
    scale = _at_resolution(x, _floored(x, quick_scale, params), params) * widen
    quick_scale = None  # floored into scale: freed here
    quick = Baseline(quick_expected, scale, warm_z(x, quick_expected, scale, params.warmup))
    if times is not None and params.day_scale_floor > 0:
        quick = _widened(x, times, quick, keep, params, step, errors_scale)
    # np.where(better, quick's, recent's) written into quick's z and scale, arrays of this call's own (warm_z's,
    # _widened's, the floors' product): two arrays the size of x fewer at the row score's peak of memory.
    worse = ~(quick.scale < recent.scale)
    np.copyto(quick.z, recent.z, where=worse)
    np.copyto(quick.scale, recent.scale, where=worse)
    return quick.z, quick.scale


@dataclass
class _Quick:
    """What _quick_level computes before its floors, computed beside the recent level's (_level_pair)."""

    widen: np.ndarray | None  # _gaps' widening (None: no gaps taken); its gaps were the quick recursion's only
    expected: np.ndarray
    scale: np.ndarray
    errors_scale: np.ndarray | None  # _widened's longer-memory scale of the quick level's errors

    def take(self) -> tuple[np.ndarray | None, ...]:
        """(widen, expected, scale, errors_scale), handed over: this holder keeps none of them, so each array is
        freed after its last use in _quick_level, not at the end of _score_block (issue 13's peak of memory)."""
        arrays = (self.widen, self.expected, self.scale, self.errors_scale)
        self.widen = self.expected = self.scale = self.errors_scale = None
        return arrays


def _level_pair(x: np.ndarray, times: np.ndarray, params: DetectorParams, step: float,
                long_ms: np.ndarray | None = None) -> tuple[Baseline, np.ndarray | None, _Quick]:
    """robust_baseline(x), the longer-memory scale of its errors (_widened's; None where _widened has none) and
    _quick_level's recursions (_Quick), as those functions compute them, the same bits, but each pair of
    independent recursions side by side in one compiled pass (level._holt_both): the recent and the quick
    level on x, then their two errors' quarter-day scales. For _score_block with a profile and the point z: its
    steps were checked (check_alphas) by seasonal_baseline's robust_baseline, which such a block runs first.
    `long_ms`: long_interval_ms of the times' rows where the caller has it (_gaps')."""
    gaps = widen = None
    if params.point_gap_power > 0 or params.point_gap_restart > 0:
        gaps, widen = _gaps(x, times, params.point_gap_power, long_ms)
    expected, scale, quick_expected, quick_scale = _holt_both(
        x, params.level_alpha, params.scale_alpha, True, x, params.quick_alpha, params.scale_alpha, True, params,
        gaps, params.point_gap_restart)
    recent = Baseline(expected, scale, warm_z(x, expected, scale, params.warmup))
    errors_scale = quick_errors_scale = None
    if params.day_scale_floor > 0 and step > 0:
        quarter_day = min(1.0, 4.0 * step / DAY_MS)
        _, errors_scale, _, quick_errors_scale = _holt_both(x - expected, quarter_day, quarter_day, False,
                                                            x - quick_expected, quarter_day, quarter_day, False,
                                                            params)
    return recent, errors_scale, _Quick(widen, quick_expected, quick_scale, quick_errors_scale)


def _score_block(x: np.ndarray, times: np.ndarray | None, params: DetectorParams,
                 history: History | None = None, row_point: bool = False, out: Scores | None = None,
                 lean: bool = False) -> Scores:
    """score_series on one block of rows; `out`: where the block writes its combined score, winner and baseline
    (each (S, T), C-contiguous), and its anchor where it has a profile and out.anchor is not None, else new
    arrays. `lean`: score_series' (with row_point)."""
    season = step = long = None
    if times is not None and profile_possible(x, times, params, history):
        # Once, from one set of steps, not in the profile, each _widened and the gaps.
        step, long = sampling_intervals_ms(times)
        season = seasonal_baseline(x, times, params, history, step, long)
    if season is not None and row_point and params.point_resolution_floor > 0:
        season = _profile_at_resolution(x, season, params)
    has_season = None if season is None else np.isfinite(season.z)
    if has_season is None or not has_season.any():
        # No profile anywhere in the block (too little history): the recent
        # level alone, in one compiled pass (kernels.level_pass).
        return _without_profile(x, times, params, row_point, out)
    if not row_point:
        # The recent level, its widening, the three CUSUMs and the choice in one compiled pass (_profile_pass).
        return _profile_pass(x, params, season, step, out)
    # With the point z: the recent and the quick level's recursions in pairs (_level_pair); else as before.
    quick = errors_scale = None
    if row_point and params.quick_alpha > 0 and times is not None and step is not None:
        recent, errors_scale, quick = _level_pair(x, times, params, step, long)
    else:
        recent = robust_baseline(x, params)
    if times is not None and params.day_scale_floor > 0:
        recent = _widened(x, times, recent, has_season, params, step, errors_scale)
    # One forecaster per sample: the daily/weekly profile where it has
    # predicted better than the recent level so far, else the recent level.
    # A daily step (lights on at 07:00) is then expected, not an anomaly.
    # Where a profile exists, a reading is unusual only if neither forecaster
    # expected it (a daily step, cooling on at 06:30, is in the profile), and
    # only if it is unusual in the same direction against the plain profile,
    # without the running bias learnt on top of it: readings back where the
    # daily profile puts them are a return to normal (a leak or a tampered
    # meter has ended), though the bias learnt during the fault makes them
    # look like a jump.
    # The CUSUM likewise: of the profile's z where a profile exists (a daily
    # step is no shift, and a slow drift that the recent level follows is
    # still off the profile), in the same direction against the plain profile.
    # All of it, and the strongest evidence, in one compiled pass (kernels.combine; _combine_numpy is the
    # same in numpy, its reference in the tests).
    # The three CUSUMs side by side in one pass (cusum_sides_of_three: the same bits as three cusum_sides).
    # Its six sides (recent, season, plain: up and down) are read by _combine only: not kept after it.
    flat = flatline_evidence(x, params)
    # A rush hour set in early is a slid profile's reading for the drift test too (not an hour's drift off it).
    # Where the point z slides along the profile (a few readings), found once for the drift test and the point z.
    slides = _profile_slides(season, times, params)
    drift = drift_evidence(_slid_residual(x, season, slides), season.scale, params)
    evidence, baseline, best, winner = _combine(season, recent, cusum_sides_of_three(
        recent.z, season.z, season.plain_z, params), flat, drift, out, sides_spent=True, lean=lean)
    anchor = _anchor(season, out)
    scores = Scores(evidence, calibrate(best, params, out=best), winner, baseline)
    scores.anchor = anchor
    if not row_point:
        return scores
    # The point z: against the profile (and the plain profile, same direction) where the profile is the
    # better forecaster, so a spike on a strong daily curve is judged against the season, not against
    # a level that lags the curve; elsewhere as `both` with the better of two time scales for the
    # recent level. NaN where no forecaster is trusted yet.
    quick_z, quick_scale = _quick_level(x, times, has_season, params, recent, step, quick)
    # Where the quick level has forecast better than the profile so far and agrees with it in direction
    # (the profile at least half as far off: a daily step the profile expects is not taken), its z; but on a
    # departure's later rows (the quick z before at least point_free_prev, the same side) only where it is the
    # larger: the quick level has moved towards the departure's first row, and a 5-sigma shift's second row
    # lost a third of its z to it (no run of two rows in the tail; bench_row_checks, issue 13).
    # Where the local level has forecast much better than the profile, now and for a while (a random walk,
    # whose profile is only yesterday's wander), the first row of a departure is judged by the local level
    # alone, not held to agree with the plain profile. Later rows of a departure stay gated (a lasting
    # fault, a level lagging after a stuck or collapsed stretch), and so does the noise after a shift
    # (only then has the profile's scale grown: its running ratio has not).
    ratio = usual = _UNUSED
    if params.point_free_ratio > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.log(season.scale / quick_scale)
        ratio[~np.isfinite(ratio)] = np.nan
        alpha = params.point_free_alpha
        usual = _holt(ratio, alpha, alpha, False, params)[0]
    # The gating and the choice in one compiled pass (kernels.point_z; _point_numpy: the same in numpy).
    point = _point(season, recent, quick_z, quick_scale, ratio, usual, params, slides)
    scores.point = point
    return scores


def _profile_pass(x: np.ndarray, params: DetectorParams, season: Baseline, step: float,
                  out: Scores | None) -> Scores:
    """_score_block with a profile and without the point z: robust_baseline, _widened (with day_scale_floor, kept
    where the profile's z is finite), cusum_sides_of_three and _combine, as those functions compute them, bit for
    bit (tests/analytics/test_profile_pass.py), in one compiled pass over each row (kernels.profile_pass; the
    recent level's arrays and the six CUSUM sides are never written), given the profile, the flatline and the
    drift evidence; calibrate stays numpy (its exp), in place. `out` as _score_block's. Its steps were checked
    (check_alphas) by seasonal_baseline's robust_baseline, which every block with a profile runs first."""
    widen = params.day_scale_floor > 0 and step > 0
    quarter_day = min(1.0, 4.0 * step / DAY_MS) if widen else 0.0
    shape = x.shape
    flat, drift = _contiguous(flatline_evidence(x, params), drift_evidence(x - season.profile, season.scale, params))
    expected, scale, z, best, winner = _outputs(shape, out)
    k, h = params.cusum_k, params.cusum_h
    kernels.profile_pass(*_contiguous(x, season.z, season.plain_z, season.scale, season.expected), flat, drift,
                         expected, scale, z, best, winner, _UNUSED, _UNUSED, _UNUSED,
                         float(params.level_alpha), float(params.scale_alpha),
                         float(params.level_alpha * params.trend_beta), int(params.warmup), float(params.huber_clip),
                         float(params.mad_to_sigma), float(params.rel_scale_floor), float(params.abs_scale_floor),
                         bool(widen), float(quarter_day), float(params.day_scale_floor), float(k), float(h),
                         float(params.cusum_rho_alpha), float(params.z_mid / h), float(params.cusum_cap * h), False)
    anchor = _anchor(season, out)
    scores = Scores({"flatline": flat, "drift": drift}, calibrate(best, params, out=best), winner,
                    Baseline(expected, scale, z))
    scores.anchor = anchor
    return scores


def _outputs(shape: tuple[int, ...], out: Scores | None, lean: bool = False) -> tuple[np.ndarray, ...]:
    """The baseline's expected value, scale and z, the strongest evidence and its detector of a block with a
    profile: the caller's rows (`out`: score_series' outputs) where it gives them, else new arrays. `lean`: the
    strongest evidence and its detector only."""
    if out is None:
        return (*(np.empty(shape) for _ in range(1 if lean else 4)), np.empty(shape, dtype=np.int8))
    if lean:
        return out.combined, out.winner
    return out.baseline.expected, out.baseline.scale, out.baseline.z, out.combined, out.winner


def _anchor(season: Baseline, out: Scores | None) -> Anchor:
    """The profile's anchor of a block (its profile, the bias of its expected value, its scale): into the caller's
    rows (score_series' outputs) where it gives them, not new arrays it copies."""
    if out is None or out.anchor is None:
        return Anchor(season.profile, season.expected - season.profile, season.scale)
    np.copyto(out.anchor.profile, season.profile)
    np.subtract(season.expected, season.profile, out=out.anchor.bias)
    np.copyto(out.anchor.scale, season.scale)
    return out.anchor


def _contiguous(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]


def _combine(season: Baseline, recent: Baseline, sides: tuple[np.ndarray, ...], flat: np.ndarray,
             drift: np.ndarray, out: Scores | None = None, sides_spent: bool = False, lean: bool = False,
             ) -> tuple[dict[str, np.ndarray], Baseline | None, np.ndarray, np.ndarray]:
    """The evidence of each detector, the baseline, the strongest evidence (not yet calibrated) and its detector
    where a profile exists, by kernels.combine: (evidence, baseline, best, winner), as _combine_numpy. `out`:
    whose baseline, combined (best) and winner arrays (C-contiguous, the shape of season.z) are written, else
    new arrays. `sides_spent`: the caller reads the six CUSUM sides no more, so the level, shift and seasonal
    evidence are written over three of them (the kernel reads every side of an element before it writes that
    element): three arrays the size of the block fewer at the row score's peak of memory. `lean`: only the
    strongest evidence and its detector are written (score_series' lean): the evidence holds the flatline and the
    drift only, and no baseline (None)."""
    shape = season.z.shape
    sides = _contiguous(*sides)
    flat, drift = _contiguous(flat, drift)
    if lean:
        best, winner = _outputs(shape, out, lean=True)
        kernels.combine(*_contiguous(season.z, season.plain_z, season.scale, season.expected, recent.z,
                                     recent.scale, recent.expected), *sides, flat, drift,
                        *(_UNUSED,) * 6, best, winner, False)
        return {"flatline": flat, "drift": drift}, None, best, winner
    level, shift, seasonal = sides[:3] if sides_spent else (np.empty(shape) for _ in range(3))
    expected, scale, z, best, winner = _outputs(shape, out)
    kernels.combine(*_contiguous(season.z, season.plain_z, season.scale, season.expected, recent.z, recent.scale,
                                 recent.expected), *sides, flat, drift,
                    level, shift, seasonal, expected, scale, z, best, winner, True)
    evidence = {"level": level, "shift": shift, "seasonal": seasonal, "flatline": flat, "drift": drift}
    return evidence, Baseline(expected, scale, z), best, winner


def _combine_numpy(season: Baseline, recent: Baseline, sides: tuple[np.ndarray, ...], flat: np.ndarray,
                   drift: np.ndarray, out: Scores | None = None, sides_spent: bool = False, lean: bool = False,
                   ) -> tuple[dict[str, np.ndarray], Baseline | None, np.ndarray, np.ndarray]:
    """_combine in whole-array numpy (the code it replaced; its reference in the tests), `out` as _combine's
    (`sides_spent` taken as _combine's; new arrays all the same; `lean` as _combine's, all computed)."""
    recent_up, recent_down, season_up, season_down, plain_up, plain_down = sides
    has_season = np.isfinite(season.z)
    use_season = has_season & (season.scale < recent.scale)
    z = np.where(use_season, season.z, recent.z)
    recent_z = np.nan_to_num(recent.z)
    season_z = np.nan_to_num(season.z)
    plain_z = np.nan_to_num(season.plain_z)
    up = np.minimum(np.minimum(recent_z, season_z), plain_z)
    down = np.minimum(np.minimum(-recent_z, -season_z), -plain_z)
    both = np.where(has_season, np.maximum(np.maximum(up, down), 0.0), np.abs(recent_z))
    shift = np.maximum(recent_up, recent_down)
    against_both = np.maximum(np.minimum(season_up, plain_up), np.minimum(season_down, plain_down))
    shift = np.where(has_season, against_both, shift)
    evidence = {
        "level": np.where(use_season, 0.0, both),
        "shift": shift,
        "seasonal": np.where(use_season, both, 0.0),
        "flatline": flat,
        "drift": drift,
    }
    baseline = Baseline(np.where(use_season, season.expected, recent.expected),
                        np.where(use_season, season.scale, recent.scale), z)
    best = evidence[DETECTORS[0]]
    winner = np.zeros(best.shape, dtype=np.int8)
    for index, name in enumerate(DETECTORS[1:], start=1):
        larger = evidence[name] > best
        best = np.where(larger, evidence[name], best)
        winner[larger] = index
    if out is not None:
        for array, into in ((baseline.expected, out.baseline.expected), (baseline.scale, out.baseline.scale),
                            (baseline.z, out.baseline.z), (best, out.combined), (winner, out.winner)):
            np.copyto(into, array)
        baseline, best, winner = out.baseline, out.combined, out.winner
    if lean:
        return {"flatline": flat, "drift": drift}, None, best, winner
    return evidence, baseline, best, winner


def _point(season: Baseline, recent: Baseline, quick_z: np.ndarray, quick_scale: np.ndarray, ratio: np.ndarray,
           usual: np.ndarray, params: DetectorParams,
           slides: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The point z where a profile exists, by kernels.point_z (ratio, usual: the free ratio and its running level
    with point_free_ratio > 0, else unused; slides: _profile_slides', the profile's z and plain z slid there), as
    _point_numpy with the season's z and plain z slid (each plus its move where a reading slides)."""
    point = np.empty(season.z.shape)
    free = params.point_free_ratio > 0
    kernels.point_z(*_contiguous(season.z, season.plain_z, season.scale, recent.scale, quick_z, quick_scale,
                                 ratio if free else _UNUSED, usual if free else _UNUSED), bool(free),
                    float(math.log(params.point_free_ratio)) if free else 0.0, float(params.point_free_prev),
                    *(slides or _NO_SLIDES), point)
    return point


def _point_numpy(season: Baseline, recent: Baseline, quick_z: np.ndarray, quick_scale: np.ndarray,
                 ratio: np.ndarray, usual: np.ndarray, params: DetectorParams,
                 slides: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """_point in whole-array numpy (the code it replaced; its reference in the tests)."""
    if slides is not None:  # the profile's z and plain z plus the move of each reading that slides
        z, plain_z = season.z.copy(), season.plain_z.copy()
        z.reshape(-1)[slides[0]] += slides[1]
        plain_z.reshape(-1)[slides[0]] += slides[1]
        season = Baseline(season.expected, season.scale, z, plain_z, season.profile)
    has_season = np.isfinite(season.z)
    use_season = has_season & (season.scale < recent.scale)
    season_z = np.nan_to_num(season.z)
    plain_z = np.nan_to_num(season.plain_z)
    recent_z = np.nan_to_num(quick_z)
    up = np.minimum(np.minimum(recent_z, season_z), plain_z)
    down = np.minimum(np.minimum(-recent_z, -season_z), -plain_z)
    on_season = np.maximum(np.minimum(season_z, plain_z), 0.0) - np.maximum(np.minimum(-season_z, -plain_z), 0.0)
    signed = np.maximum(up, 0.0) - np.maximum(down, 0.0)
    before = np.empty_like(quick_z)
    before[:, 0] = np.nan
    before[:, 1:] = quick_z[:, :-1]
    with np.errstate(invalid="ignore", over="ignore"):
        agree = (quick_scale < season.scale) & (quick_z * on_season > 0) & (np.abs(on_season) >= 0.5 * np.abs(quick_z))
        pulled = (np.abs(before) >= params.point_free_prev) & (before * quick_z > 0)
        agree &= ~(pulled & (np.abs(on_season) > np.abs(quick_z)))
    on_season = np.where(agree, quick_z, on_season)
    point = np.where(use_season, on_season, np.where(has_season, signed, quick_z))
    if params.point_free_ratio > 0:
        limit = math.log(params.point_free_ratio)
        with np.errstate(invalid="ignore"):
            free = (has_season & (ratio > limit) & (usual > limit)
                    & (np.abs(before) < params.point_free_prev) & np.isfinite(quick_z))
        point = np.where(free, quick_z, point)
    point[np.isnan(quick_z) & ~has_season] = np.nan
    return point


def _without_profile(x: np.ndarray, times: np.ndarray | None, params: DetectorParams, row_point: bool,
                     out: Scores | None) -> Scores:
    """_score_block where no series of the block has a profile: robust_baseline, _widened (with times and
    day_scale_floor), the level, shift and flatline evidence and _strongest, as those functions compute them,
    bit for bit (tests/analytics/test_level_pass.py), but the recursions and the choice of the strongest in one
    compiled pass over each row (kernels.level_pass) and the flatline's own pass only on the rows that repeat
    a reading often enough to have a run; calibrate stays numpy (its exp), in place."""
    check_alphas(params.level_alpha, params.scale_alpha)
    step = typical_interval_ms(times) if times is not None and params.day_scale_floor > 0 else math.nan
    widen = step > 0
    quarter_day = min(1.0, 4.0 * step / DAY_MS) if widen else 0.0
    shape = x.shape
    if out is None:
        out = Scores({}, np.empty(shape), np.empty(shape, dtype=np.int8),
                     Baseline(np.empty(shape), np.empty(shape), np.empty(shape)))
    out.anchor = None  # no profile, no anchor (score_series fills the rows of its own with NaN)
    level = np.empty(shape) if row_point else _UNUSED
    shift = np.empty(shape) if row_point else _UNUSED
    repeats = np.empty(shape[0], dtype=np.int64)
    k, h = params.cusum_k, params.cusum_h
    kernels.level_pass(np.ascontiguousarray(x, dtype=np.float64), out.baseline.expected, out.baseline.scale,
                       out.baseline.z, out.combined, out.winner, level, shift, repeats,
                       float(params.level_alpha), float(params.scale_alpha),
                       float(params.level_alpha * params.trend_beta), int(params.warmup), float(params.huber_clip),
                       float(params.mad_to_sigma), float(params.rel_scale_floor), float(params.abs_scale_floor),
                       bool(widen), float(quarter_day), float(params.day_scale_floor), float(k), float(h),
                       float(params.cusum_rho_alpha), float(params.z_mid / h), float(params.cusum_cap * h),
                       bool(row_point))
    # Flatline evidence only on rows with enough repeats for a run (flatline_nats' own shortcut); 0 elsewhere,
    # which never beats the level's or the shift's evidence (both >= 0).
    candidates = np.flatnonzero(repeats >= params.flatline_min_run)
    flat = np.zeros(shape) if row_point else None
    if candidates.size:
        evidence = _flatline_rows(x[candidates], params) * (params.z_mid / params.flatline_nats)
        best = out.combined[candidates]
        larger = evidence > best
        out.combined[candidates] = np.where(larger, evidence, best)
        winner = out.winner[candidates]
        winner[larger] = DETECTORS.index("flatline")
        out.winner[candidates] = winner
        if flat is not None:
            flat[candidates] = evidence
    calibrate(out.combined, params, out=out.combined)
    if row_point:
        out.evidence = {"level": level, "shift": shift, "seasonal": np.zeros(shape), "flatline": flat,
                        "drift": np.zeros(shape)}
        out.point = _quick_level(x, times, None, params, out.baseline)[0]
    return out


_UNUSED = np.empty((1, 1))


def _strongest(evidence: dict[str, np.ndarray], baseline: Baseline, params: DetectorParams,
               skip: tuple[str, ...] = ()) -> Scores:
    """The largest evidence per sample, calibrated, and which detector gave it (`skip`: known to be all 0)."""
    best = evidence[DETECTORS[0]]
    winner = np.zeros(best.shape, dtype=np.int8)
    for index, name in enumerate(DETECTORS[1:], start=1):
        if name in skip:
            continue
        larger = evidence[name] > best
        best = np.where(larger, evidence[name], best)
        winner[larger] = index
    return Scores(evidence, calibrate(best, params), winner, baseline)
