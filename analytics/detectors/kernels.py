"""The per-step recursions of the detectors, compiled with numba (a required dependency).

Holt's robust smoothing and the two-sided CUSUM carry state from one sample
to the next, so numpy could only vectorise them across series and step over
time in Python. Compiled, each series runs its recursion in a tight loop over
its own contiguous row. This is the one fast path: the slow, obviously
correct versions that judge it are plain Python in tests/analytics/reference.py.
"""

import math

import numba
import numpy as np

from analytics import jitcache  # noqa: F401  (before any cache=True kernel: the cache follows the sources)


@numba.njit(cache=True, nogil=True, inline="always")
def holt_scale(forecast: float, deviation: float, quantum: float, mad_to_sigma: float, rel_floor: float,
               abs_floor: float) -> float:
    """robust_baseline's scale before a reading: its spread in sigmas, floored relative to the forecast and
    absolutely, and at half the readings' quantum (a counter's step is no surprise). The one copy (holt_step's
    callers; inlined as it is)."""
    return max(max(deviation * mad_to_sigma, rel_floor * abs(forecast) + abs_floor), 0.5 * quantum)


@numba.njit(cache=True, nogil=True, inline="always")
def holt_step(xt: float, forecast: float, sc: float, seen: bool, warm: bool, slope: float, deviation: float,
              count: float, quantum: float, last: float, a_level: float, a_scale: float, a_trend: float,
              clip: float) -> tuple[float, float, float, float, float, float]:
    """One update of robust_baseline's Holt recursion by the valid reading xt, given the forecast and scale from
    the readings before it: the new (level, slope, deviation, count, quantum, last). The one copy of this
    arithmetic (_holt, _level_pass twice, stream_kernels.holt), so every caller takes the same steps in the same
    order and gets the same bits; inlined, so the callers' loops compile as if it were written in them.
    numba's cache does not see a change here from another file's kernel: clear __pycache__ after editing it."""
    residual = xt - forecast
    step_level = max(a_level, 1.0 / (count + 1.0))
    step_scale = max(a_scale, 1.0 / max(count, 1.0))
    limit = clip * sc
    clipped = min(max(residual, -limit), limit) if warm else residual
    level = forecast + step_level * clipped if seen else xt
    if warm:
        slope = slope + a_trend * clipped
    spread = min(abs(residual), limit) if warm else abs(residual)
    if seen:
        deviation = deviation + step_scale * (spread - deviation)
    jump = abs(xt - last)
    if jump > 0 and (quantum == 0 or jump < quantum):
        quantum = jump
    return level, slope, deviation, count + 1.0, quantum, xt


def _holt(x: np.ndarray, expected: np.ndarray, scale: np.ndarray, a_level: float, a_scale: float,
          a_trend: float, warmup: int, clip: float, mad_to_sigma: float, rel_floor: float, abs_floor: float,
          gaps: np.ndarray, restart: float) -> None:
    """robust_baseline's recursion for (S, T) values x; fills expected and scale (NaN before a series' first reading).

    Start-up: plain running means (step 1/n) and unclipped updates until
    `warmup` readings; then Huber-clipped EWMAs. With restart > 0, gaps (S, T)
    holds each reading's time since the previous one in typical intervals: a
    reading after a gap of more than `restart` of them restarts the level
    there (no slope; the scale kept), as at a series' first reading.
    """
    n_series, n_times = x.shape
    for s in range(n_series):
        level = slope = deviation = count = quantum = 0.0
        last = math.nan
        for t in range(n_times):
            xt = x[s, t]
            valid = not math.isnan(xt)
            seen = count > 0
            warm = count >= warmup
            forecast = level + slope
            sc = holt_scale(forecast, deviation, quantum, mad_to_sigma, rel_floor, abs_floor)
            expected[s, t] = forecast if seen else math.nan
            scale[s, t] = sc if seen else math.nan
            if not valid:
                continue  # a missing reading freezes the state
            if restart > 0 and seen and gaps[s, t] > restart:
                level, slope, last = xt, 0.0, xt  # the level is stale after a long gap: it restarts here
                continue
            level, slope, deviation, count, quantum, last = holt_step(
                xt, forecast, sc, seen, warm, slope, deviation, count, quantum, last, a_level, a_scale, a_trend, clip)


@numba.njit(cache=True, nogil=True, inline="always")
def cusum_step(zt: float, upper: float, lower: float, lag_product: float, previous: float, energy: float, k: float,
               h: float, rho_alpha: float, cap: float) -> tuple[float, float, float, float, float]:
    """One step of cusum_sides' recursion by z value zt (NaN counts as 0): the new (upper, lower, lag_product,
    previous, energy). The one copy of this arithmetic (_cusum, cusum_three, stream_kernels.cusum), inlined, as
    holt_step is."""
    zt = 0.0 if math.isnan(zt) else min(max(zt, -h / 2), h / 2)
    lag_product += rho_alpha * (zt * previous - lag_product)
    energy += rho_alpha * (zt * zt - energy)
    step = zt
    if zt != 0.0:
        # At zt 0 (NaN: no evidence) the step is 0 times a finite factor in (0.16, 1]: +-0, which the sums take
        # as 0 either way; the factor's two divisions and square root are then skipped, the same bits.
        rho = min(max(lag_product / max(energy, 1e-12), 0.0), 0.95)
        step = zt * math.sqrt((1.0 - rho) / (1.0 + rho))
    upper = min(max(0.0, upper + (step - k)), cap)
    lower = min(max(0.0, lower - (step + k)), cap)
    return upper, lower, lag_product, zt, energy


def _cusum(z: np.ndarray, upper_out: np.ndarray, lower_out: np.ndarray, k: float, h: float, rho_alpha: float,
           unit: float, cap: float) -> None:
    """cusum_sides' recursion for (S, T) z (NaN counts as 0); fills the upward and downward evidence."""
    n_series, n_times = z.shape
    for s in range(n_series):
        upper = lower = lag_product = previous = 0.0
        energy = 1.0
        for t in range(n_times):
            upper, lower, lag_product, previous, energy = cusum_step(z[s, t], upper, lower, lag_product, previous,
                                                                     energy, k, h, rho_alpha, cap)
            upper_out[s, t] = upper * unit
            lower_out[s, t] = lower * unit


def _floor_on_moves(x: np.ndarray, scale: np.ndarray, out: np.ndarray, floor: float, alpha: float) -> None:
    """out = scale, never below `floor` times the running mean (step `alpha`) of the scale at the readings
    that moved (unlike the previous reading), taken over the rows before t. (S, T); NaN x or scale: out = scale."""
    n_series, n_times = x.shape
    for s in range(n_series):
        usual = last = math.nan
        for t in range(n_times):
            sc = scale[s, t]
            out[s, t] = sc if math.isnan(usual) or math.isnan(sc) else max(sc, floor * usual)
            xt = x[s, t]
            if math.isnan(xt):
                continue
            if not math.isnan(sc) and not math.isnan(last) and xt != last:
                usual = sc if math.isnan(usual) else usual + alpha * (sc - usual)
            last = xt


def _floor_at_resolution(x: np.ndarray, scale: np.ndarray, out: np.ndarray, fraction: float) -> None:
    """out = scale, never below `fraction` times the series' resolution: the smallest non-zero step between
    two successive readings (not NaN) of its row before t. (S, T); before the first step, or NaN scale: scale."""
    n_series, n_times = x.shape
    for s in range(n_series):
        quantum = 0.0
        last = math.nan
        for t in range(n_times):
            sc = scale[s, t]
            out[s, t] = sc if quantum == 0.0 or math.isnan(sc) else max(sc, fraction * quantum)
            xt = x[s, t]
            if math.isnan(xt):
                continue
            step = abs(xt - last)  # NaN at the first reading: no step
            if step > 0 and (quantum == 0.0 or step < quantum):
                quantum = step
            last = xt


def _gap_ratios(x: np.ndarray, t: np.ndarray, interval: np.ndarray, power: float, gaps: np.ndarray,
                widen: np.ndarray) -> None:
    """combined._gaps' one pass: per reading, the time since the series' previous reading (not NaN) in its
    interval[s] (at least 1; 1 at its first reading and where the interval is not a positive number) into gaps,
    and gaps ** power into widen. x (S, T), t (S, T) or (1, T) int64 ms."""
    n_series, n_times = x.shape
    shared = t.shape[0] == 1
    for s in range(n_series):
        row = 0 if shared else s
        step = interval[s]
        known = step > 0  # False for NaN too
        last = 0
        seen = False
        for j in range(n_times):
            ratio = 1.0
            if seen and known:
                ratio = max((t[row, j] - last) / step, 1.0)
            gaps[s, j] = ratio
            widen[s, j] = 1.0 if ratio == 1.0 else ratio ** power
            if not math.isnan(x[s, j]):
                last = t[row, j]
                seen = True


def _warm_z(x: np.ndarray, expected: np.ndarray, scale: np.ndarray, warmup: int, z: np.ndarray) -> None:
    """robust_baseline's z in one pass: (x - expected) / scale where the series had at least `warmup` readings
    (not NaN) before t, else NaN (np.cumsum of ~isnan, np.where and numpy's division: the same bits)."""
    n_series, n_times = x.shape
    for s in range(n_series):
        seen = 0
        for t in range(n_times):
            xt = x[s, t]
            z[s, t] = (xt - expected[s, t]) / scale[s, t] if seen >= warmup else math.nan
            if not math.isnan(xt):
                seen += 1


def _repeat_counts(x: np.ndarray, out: np.ndarray) -> None:
    """flatline._repeat_count in one pass: per row of x (S, T), how many readings (not NaN) equal the previous
    reading that is not NaN."""
    n_series, n_times = x.shape
    for s in range(n_series):
        count = 0
        last = math.nan
        for t in range(n_times):
            xt = x[s, t]
            if math.isnan(xt):
                continue
            if xt == last:
                count += 1
            last = xt
        out[s] = count


def _flatline_runs(x: np.ndarray, warmup: float, min_run: float, run_out: np.ndarray, p_out: np.ndarray,
                   ready_out: np.ndarray) -> None:
    """flatline._flatline_rows_numpy up to its log, in one pass over each row of x (S, T): per reading, the
    length of the current run of repeats (run_out, as float), the chance of a repeat counted before the run
    (p_out: (repeats + 1) / (steps + 2) at the run's start) and whether the run counts (ready_out: warmup steps
    before it, at least min_run long, its value above the lowest before it). The same counts and comparisons,
    so the caller's run * -np.log(p) gives the same bits."""
    n_series, n_times = x.shape
    if n_times == 0:
        return
    for s in range(n_series):
        last_value = math.nan  # the last reading not NaN (x at last_valid)
        seen = False  # any reading not NaN so far (previous_valid >= 0 for the next one)
        repeats = steps = 0
        repeats_before = steps_before = 0  # at the run's start (run_start: the last change, or index 0)
        floor = math.nan  # np.fmin.accumulate: the lowest reading so far
        floor_at_start = x[s, 0]  # floor at max(run_start - 1, 0): the first reading until a change
        for t in range(n_times):
            xt = x[s, t]
            valid = not math.isnan(xt)
            floor_before_t = floor  # floor at t - 1
            if valid and seen:
                if xt == last_value:
                    repeats += 1
                    steps += 1
                else:  # a change: the run starts here
                    steps += 1
                    repeats_before, steps_before = repeats, steps
                    floor_at_start = floor_before_t if t > 0 else xt
            if valid:
                floor = xt if math.isnan(floor) else min(floor, xt)
                last_value = xt
                seen = True
            run = repeats - repeats_before
            run_out[s, t] = run
            p_out[s, t] = (repeats_before + 1.0) / (steps_before + 2.0)
            at_floor = last_value <= floor_at_start  # False while either is NaN
            ready_out[s, t] = steps_before >= warmup and run >= min_run and not at_floor


@numba.njit(cache=True, nogil=True)
def flatline_tail_nats(x: np.ndarray, warmup: float, min_run: int, prior: float, out: np.ndarray) -> None:
    """The row score's stuck-run surprise in nats, per reading of one series x (T,): _flatline_runs' run, its
    repeat share p0 and its conditions (warmup steps before the run, at least min_run repeats, above the lowest
    value before it), and 0 where the reading is at least the highest before it (saturated: no stuck evidence).
    A run's first min_run repeats cost ln(1 / p0) each, as a geometric run's; each one after, ln(1 / p), p the
    share of repeats among the steps that runs already min_run long took before this run (a run continuing or
    ending), shrunk towards p0 with the weight of `prior` steps, never below p0. A coarse sensor on a slow signal
    (a 1-degree thermometer) holds a reading for hours when the signal sits mid-step: its long runs last longer
    than its repeat share says, and it shows that in its own past runs. A series that never held a reading that
    long is judged as before (p = p0); with prior 0 (off) every series is: the geometric run."""
    last = math.nan
    seen = False
    repeats = steps = long_repeats = long_steps = 0
    repeats_before = steps_before = long_repeats_before = long_steps_before = 0
    floor = math.nan
    floor_at_start = x[0] if x.size else math.nan
    highest = -math.inf
    for t in range(x.size):
        xt = x[t]
        valid = not math.isnan(xt)
        floor_before_t = floor
        # A step of a run already min_run long (it continues or ends here), not at the lowest value (idle: a
        # closed road's zeros at night say nothing of how long a live reading holds).
        long_run = repeats - repeats_before >= min_run and not last <= floor_at_start
        if valid and seen:
            steps += 1
            if long_run:
                long_steps += 1
            if xt == last:
                repeats += 1
                if long_run:
                    long_repeats += 1
            else:  # a change: the run starts here
                repeats_before, steps_before = repeats, steps
                long_repeats_before, long_steps_before = long_repeats, long_steps
                floor_at_start = floor_before_t if t > 0 else xt
        if valid:
            floor = xt if math.isnan(floor) else min(floor, xt)
            last = xt
            seen = True
        run = repeats - repeats_before
        nats = 0.0
        if steps_before >= warmup and run >= min_run and not last <= floor_at_start:
            p0 = (repeats_before + 1.0) / (steps_before + 2.0)
            p_long = max((long_repeats_before + prior * p0) / (long_steps_before + prior), p0) if prior > 0 else p0
            nats = min_run * -math.log(p0) + (run - min_run) * -math.log(p_long)
        out[t] = 0.0 if xt >= highest else nats
        if xt > highest:  # NaN never is
            highest = xt


def _level_pass(x: np.ndarray, expected: np.ndarray, scale: np.ndarray, z: np.ndarray, best: np.ndarray,
                winner: np.ndarray, level_out: np.ndarray, shift_out: np.ndarray, repeats: np.ndarray,
                a_level: float, a_scale: float, a_trend: float, warmup: int, clip: float, mad_to_sigma: float,
                rel_floor: float, abs_floor: float, widen: bool, a_wide: float, wide_floor: float, k: float,
                h: float, rho_alpha: float, unit: float, cap: float, keep_evidence: bool) -> None:
    """combined._score_block without a profile, in one pass over each row: robust_baseline (the _holt recursion
    and its z after `warmup` readings), with `widen` combined._widened (the scale never below wide_floor times
    the scale of a flat _holt, step a_wide, over the same forecast errors; z against it), the level evidence
    |z| (NaN 0, as np.nan_to_num), the CUSUM evidence of that z (_cusum, the larger side), the larger of the
    two into best and which into winner (0 level, 1 shift, as combined._strongest), and per row how many
    readings repeat the previous reading (flatline._repeat_count). x (S, T); expected, scale, z, best (S, T)
    float64, winner (S, T) int8; level_out and shift_out (S, T) only with keep_evidence; repeats (S,) int64.
    The same operations in the same order as those numpy and compiled steps, so the same bits
    (tests/analytics/test_level_pass.py)."""
    n_series, n_times = x.shape
    big = np.finfo(np.float64).max
    for s in range(n_series):
        level = slope = deviation = count = quantum = 0.0
        last = math.nan
        w_level = w_slope = w_deviation = w_count = w_quantum = 0.0  # the flat recursion over the errors
        w_last = math.nan
        upper = lower = lag_product = previous = 0.0
        energy = 1.0
        repeat = 0
        before = math.nan
        for t in range(n_times):
            xt = x[s, t]
            valid = not math.isnan(xt)
            # robust_baseline: the forecast and scale from the readings before t.
            seen = count > 0
            warm = count >= warmup
            forecast = level + slope
            sc = holt_scale(forecast, deviation, quantum, mad_to_sigma, rel_floor, abs_floor)
            et = forecast if seen else math.nan
            st = sc if seen else math.nan
            error = xt - et
            zt = error / st if count >= warmup else math.nan
            if widen:
                # _widened: a flat _holt over the errors, its scale times wide_floor, np.fmax with st.
                w_seen = w_count > 0
                w_forecast = w_level + w_slope
                w_sc = holt_scale(w_forecast, w_deviation, w_quantum, mad_to_sigma, rel_floor, abs_floor)
                floor = (w_sc if w_seen else math.nan) * wide_floor
                wide = floor if math.isnan(st) else (st if math.isnan(floor) else max(st, floor))
                if not math.isnan(zt):
                    zt = error / wide
                st = wide
                if not math.isnan(error):
                    # _holt's trend step 0.0: a flat level (the slope still takes + 0.0 * clipped, as _holt's did).
                    w_level, w_slope, w_deviation, w_count, w_quantum, w_last = holt_step(
                        error, w_forecast, w_sc, w_seen, w_count >= warmup, w_slope, w_deviation, w_count, w_quantum,
                        w_last, a_wide, a_wide, 0.0, clip)
            expected[s, t] = et
            scale[s, t] = st
            z[s, t] = zt
            # The evidence: |z| (np.nan_to_num's NaN 0, infinities the largest float) and the CUSUM of z.
            lv = 0.0 if math.isnan(zt) else abs(min(max(zt, -big), big))
            zc = 0.0 if math.isnan(zt) else min(max(zt, -h / 2), h / 2)
            lag_product += rho_alpha * (zc * previous - lag_product)
            energy += rho_alpha * (zc * zc - energy)
            rho = min(max(lag_product / max(energy, 1e-12), 0.0), 0.95)
            step = zc * math.sqrt((1.0 - rho) / (1.0 + rho))
            previous = zc
            upper = min(max(0.0, upper + (step - k)), cap)
            lower = min(max(0.0, lower - (step + k)), cap)
            up = upper * unit
            down = lower * unit
            sh = up if up >= down else down
            if keep_evidence:
                level_out[s, t] = lv
                shift_out[s, t] = sh
            if sh > lv:
                best[s, t] = sh
                winner[s, t] = 1
            else:
                best[s, t] = lv
                winner[s, t] = 0
            if not valid:
                continue  # a missing reading freezes the state (and neither extends nor breaks a repeat)
            if xt == before:
                repeat += 1
            before = xt
            level, slope, deviation, count, quantum, last = holt_step(
                xt, forecast, sc, seen, warm, slope, deviation, count, quantum, last, a_level, a_scale, a_trend, clip)
        repeats[s] = repeat


holt = numba.njit(cache=True, nogil=True)(_holt)
gap_ratios = numba.njit(cache=True, nogil=True)(_gap_ratios)
floor_on_moves = numba.njit(cache=True, nogil=True)(_floor_on_moves)
floor_at_resolution = numba.njit(cache=True, nogil=True)(_floor_at_resolution)
cusum = numba.njit(cache=True, nogil=True)(_cusum)
flatline_runs = numba.njit(cache=True, nogil=True)(_flatline_runs)
repeat_counts = numba.njit(cache=True, nogil=True)(_repeat_counts)
warm_z = numba.njit(cache=True, nogil=True, error_model="numpy")(_warm_z)
# error_model numpy: a division by 0 gives inf or NaN as numpy's does, not ZeroDivisionError.
level_pass = numba.njit(cache=True, nogil=True, error_model="numpy")(_level_pass)


@numba.njit(cache=True, nogil=True)
def _gauss_log10(z: float) -> float:
    """-log10 of the two-sided normal tail probability P(|Z| >= z); exact to z ~ 37, asymptotic past it."""
    z = abs(z)
    if z < 30.0:
        return -math.log10(max(math.erfc(z / math.sqrt(2.0)), 1e-300))
    # Mills' ratio: P(|Z| >= z) ~ 2 phi(z) / z.
    return (0.5 * z * z + math.log(z * math.sqrt(math.pi / 2.0))) / math.log(10.0)


@numba.njit(cache=True, nogil=True)
def _tail_log10(z: float, u: float, share: float, mean_excess: float) -> float:
    """-log10 P(|z'| >= |z|): normal up to u, past it an exponential tail with P(|z'| > u) = share and that
    mean excess over u (peaks over threshold with a shape-0 generalised Pareto tail: Pickands 1975;
    Siffer et al., KDD 2017, SPOT)."""
    z = abs(z)
    if z <= u:
        return _gauss_log10(z)
    return -math.log10(share) + (z - u) / mean_excess / math.log(10.0)


@numba.njit(cache=True, nogil=True)
def _gpd_log10(z: float, u: float, share: float, mean_excess: float, xi: float) -> float:
    """_tail_log10 with a generalised Pareto tail of shape xi >= 0 past u, of the same mean excess (its scale
    mean_excess (1 - xi)): P(excess > x) = (1 + xi x / scale)^(-1/xi) (Pickands 1975). xi 0: the exponential
    tail; xi 1/3: a Student t with 3 degrees of freedom, whose readings 20-30 sigmas off are its own noise."""
    z = abs(z)
    if z <= u or xi <= 1e-6:
        return _tail_log10(z, u, share, mean_excess)
    scale = mean_excess * (1.0 - xi)
    return -math.log10(share) + math.log1p(xi * (z - u) / scale) / xi / math.log(10.0)


@numba.njit(cache=True, nogil=True)
def _far_log10(z: float, u: float, share: float, mean_excess: float, xi: float, knee: float, xi_far: float) -> float:
    """_gpd_log10 up to `knee` past u; past it (an excess the series' own have not shown) a generalised Pareto
    tail of shape xi_far > xi and scale mean_excess from there on: a tail learnt from few excesses is extrapolated
    that far with its shape's uncertainty, not as if its first excesses had proved it light."""
    excess = abs(z) - u
    if excess <= knee or xi_far <= xi:
        return _gpd_log10(z, u, share, mean_excess, xi)
    return (_gpd_log10(u + knee, u, share, mean_excess, xi)
            + math.log1p(xi_far * (excess - knee) / mean_excess) / xi_far / math.log(10.0))


@numba.njit(cache=True, nogil=True)
def _excess_at(decades: float, share: float, mean_excess: float, xi: float) -> float:
    """The excess over u at which _gpd_log10 reaches `decades` (0 where every excess is past it)."""
    rest = decades + math.log10(share)
    if rest <= 0.0:
        return 0.0
    if xi <= 1e-6:
        return rest * math.log(10.0) * mean_excess
    return mean_excess * (1.0 - xi) * math.expm1(rest * xi * math.log(10.0)) / xi


@numba.njit(cache=True, nogil=True, inline="always")
def _taught(excess: float, decades: float, learn_max: float, learn_weight: float, excess_cap: float,
            learn_cap: float, share: float, mean_excess: float, xi: float) -> tuple[float, float]:
    """What a reading `excess` past u, of `decades` surprise against its tail (share, mean_excess, xi), teaches
    that tail: its weight (learn_weight for an anomaly, at least learn_max decades) and the excess it adds, at
    most excess_cap. An anomaly teaches the excess of the anomaly's threshold (learn_cap decades), not its own: one
    glitch 90 sigmas off would otherwise raise the mean excess for good and hide every later spike; bursts that
    recur still raise it, burst by burst. Below learn_max the excess is also the one the tail's shape learns."""
    weight = 1.0 if decades < learn_max else learn_weight
    own = min(excess, excess_cap)
    if decades >= learn_max and learn_cap < math.inf:
        own = min(own, _excess_at(learn_cap, share, mean_excess, xi))
    return weight, own


@numba.njit(cache=True, nogil=True)
def _tail_of(exceed: float, rows: float, excess: float, slot_exceed: float, slot_seen: float, slot_excess: float,
             shape_n: float, shape_sum: float, shape_squares: float, slots: int, prior_share: float,
             prior_rows: float, prior_excess: float, prior_count: float, slot_rows: float, slot_count: float,
             xi_max: float, xi_prior: float) -> tuple[float, float, float]:
    """The share past u, the mean excess and the shape of a tail learnt from these sums (_surprise's series tail
    and its regime z's): a slot's sums shrunk towards the series', the series' towards a normal law's."""
    share = (exceed + prior_share * prior_rows) / (rows + prior_rows)
    mean_excess = (excess + prior_excess) / (exceed + prior_count)
    if slots > 0:
        # Never lighter than both the series' tail and a normal law's: a quiet slot judges as a normal law would,
        # not as if its few rows had proved a lighter tail than that.
        share = max((slot_exceed + share * slot_rows) / (slot_seen + slot_rows), min(share, prior_share))
        mean_excess = max((slot_excess + mean_excess * slot_count) / (slot_exceed + slot_count),
                          min(mean_excess, prior_excess / prior_count))
    # The shape (method of moments: xi = (1 - m^2 / var) / 2 for a generalised Pareto law, 0 for an exponential
    # one, whose variance is m^2), shrunk towards 0 by xi_prior exponential excesses.
    xi = 0.0
    if xi_max > 0.0:
        m0 = prior_excess / prior_count
        m = (shape_sum + m0 * xi_prior) / (shape_n + xi_prior)
        var = (shape_squares + 2.0 * m0 * m0 * xi_prior) / (shape_n + xi_prior) - m * m
        if var > 0.0:
            xi = min(max(0.5 * (1.0 - m * m / var), 0.0), xi_max)
    return share, mean_excess, xi


@numba.njit(cache=True, nogil=True)
def _median_of(buffer: np.ndarray, n: int, ordered: np.ndarray) -> float:
    """The median of buffer[:n], sorted into `ordered` (no allocation: this runs once a row)."""
    for i in range(n):
        value = buffer[i]
        m = i
        while m > 0 and ordered[m - 1] > value:
            ordered[m] = ordered[m - 1]
            m -= 1
        ordered[m] = value
    return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])


@numba.njit(cache=True, nogil=True)
def profile_slides(times: np.ndarray, profile: np.ndarray, scale: np.ndarray, z: np.ndarray, window_ms: float,
                   gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the point z judges a reading against the profile up to window_ms earlier or later (times (1, T) shared
    or (S, T), never decreasing): the time whose profile is nearest the reading, where that brings the profile's z
    at least `gain` nearer 0. Returns the flat index (s * T + t, ascending) of each reading that slides and its
    move in the profile's sigmas: its z and plain z slid are z + move and plain z + move. Few
    readings slide (only a z past gain can come gain nearer): kept as a list, not as two arrays the size of z.
    Causal: the profile at a later time of day reads earlier days only."""
    n_series, n_times = z.shape
    at = np.empty(64, dtype=np.int64)
    by = np.empty(64)
    found = 0
    for s in range(n_series):
        row = 0 if times.shape[0] == 1 else s
        for t in range(n_times):
            zt = z[s, t]
            here = profile[s, t]
            step = scale[s, t]
            if not abs(zt) > gain or math.isnan(here) or not step > 0.0:
                continue  # only a reading past gain can come gain nearer
            best = abs(zt)
            moved = 0.0
            j = t - 1
            while j >= 0 and times[row, t] - times[row, j] <= window_ms:
                shift = (here - profile[s, j]) / step  # NaN where the profile is unknown at j
                if abs(zt + shift) < best:
                    best, moved = abs(zt + shift), shift
                j -= 1
            j = t + 1
            while j < n_times and times[row, j] - times[row, t] <= window_ms:
                shift = (here - profile[s, j]) / step
                if abs(zt + shift) < best:
                    best, moved = abs(zt + shift), shift
                j += 1
            if best + gain <= abs(zt):
                if found == at.size:  # room for twice as many
                    more_at, more_by = np.empty(2 * found, dtype=np.int64), np.empty(2 * found)
                    more_at[:found], more_by[:found] = at, by
                    at, by = more_at, more_by
                at[found], by[found] = s * n_times + t, moved
                found += 1
    return at[:found], by[:found]


@numba.njit(cache=True, nogil=True)
def slid_residual(x: np.ndarray, profile: np.ndarray, scale: np.ndarray, z: np.ndarray, at: np.ndarray,
                  by: np.ndarray, out: np.ndarray) -> None:
    """x off the profile each reading is judged against where it slides (profile_slides' list), in one pass:
    (x - profile) + nan_to_num((slid z - z) * scale), slid z being z + move where the reading slides and z
    elsewhere, each step numpy's arithmetic of that expression (the same bits). (S, T)."""
    n_series, n_times = z.shape
    k = 0
    for s in range(n_series):
        for t in range(n_times):
            zt = z[s, t]
            slid = zt
            if k < at.size and at[k] == s * n_times + t:
                slid = zt + by[k]
                k += 1
            out[s, t] = (x[s, t] - profile[s, t]) + _nan_to_num((slid - zt) * scale[s, t])


def _surprise(point: np.ndarray, flat_nats: np.ndarray, drift: np.ndarray, slot: np.ndarray, values: np.ndarray,
              out: np.ndarray, which: np.ndarray, u: float, prior_share: float, prior_rows: float,
              prior_excess: float, prior_count: float, excess_cap: float, learn_max: float, learn_weight: float,
              fast_rows: int, hazard: float, k: float, h: float, rho_alpha: float, bias_alpha: float,
              shift_offset: float, flat_offset: float, slots: int, slot_rows: float, slot_count: float,
              var_on: bool, var_ratio: float, var_clip: float, var_h: float, var_offset: float, var_alpha: float,
              var_slot_alpha: float, var_slot_rows: float, var_floor: float, var_warmup: float,
              xi_max: float, xi_prior: float, drift_offset: float,
              drift_grace: int, run_slot_rows: float, run_slot_alpha: float, learn_cap: float,
              below_u_unread: bool, drift_accept: float, shadow: np.ndarray, adopt: np.ndarray,
              adopt_ratio: float, far_knee: float, far_shape: float, far_share: float, far_alpha: float,
              var_grid: float, regime: np.ndarray, bursty: np.ndarray, far_lone: float,
              far_lone_share: float) -> None:
    """surprise.row_surprise's recursion for (S, T) inputs; fills out (log10 units) and which (0 point, 1 shift,
    2 flatline, 3 drift, 4 variance). NaN point: no reading or no trusted baseline, surprise 0 and the state
    unchanged. With var_on, values (S, T) are the readings whose steps the variance test judges.

    The tail past u is the series' own (its share of readings past u and their mean excess, shrunk towards
    a normal law's by prior_rows and prior_count) and, where slots > 0, that of the row's time-of-day slot
    (slot (S, T) in 0..slots-1) shrunk towards the series' own by slot_rows and slot_count. With xi_max > 0
    the tail's shape is the series' own too: a generalised Pareto shape in [0, xi_max] by the method of
    moments over the excesses of readings that were no anomaly (below learn_max decades), shrunk towards an
    exponential tail's (shape 0) by xi_prior excesses. Where slots > 0 and run_slot_alpha > 0, the run test's
    discount for autocorrelation is the larger of the series' and its slot's lag-1 autocorrelation (the slot's
    EWMAs at run_slot_alpha, shrunk towards the series' with the weight of run_slot_rows rows).
    below_u_unread: the caller reads no surprise below a floor that a normal tail up to u never reaches
    (row_surprise's `floor`), so where a reading is within u both against the bias and without it, the row's
    own test (its slow, plain and fast hypotheses: two erfc and two log10) is not computed and counts 0;
    every other test and all the learning are as without it.
    Where adopt[s] >= 0, a second tail (series and slots) is learnt from shadow[s] (the z against a bursty
    series' likelier regime, NaN where there is none: detectors.regimes) until row adopt[s]; there, if that
    tail's excess per reading is at most adopt_ratio of the series' own, it replaces the series' tail (its
    rows, excesses and shape, every slot's too): the point z from then on is the regime z, and the tail the
    point z's bursts taught before would hide its spikes for good.
    With far_shape > 0, where the series' running share of readings past u (a running mean at far_alpha) is at
    least far_share times a normal law's, its tail past the larger of far_knee mean excesses and its largest
    excess that was no anomaly has a shape of at least far_shape / sqrt(its excesses and the prior's) (at most
    xi_max): there the tail is an extrapolation, and a young one is uncertain (_far_log10).
    With var_grid > 0, a step of at most var_grid times the smallest step (not 0) the series has shown before is
    never evidence for the larger spread (its ratio capped where the log-likelihood ratio is 0): a coarse
    sensor's own resolution (a 1-degree thermometer flickering between two readings while the signal sits at a
    step's edge) is no evidence of a larger spread.
    regime (S, T) int and bursty (S, T) bool, or (1, 1) -1 and False when unused: a series' likelier regime at each
    reading (detectors.regimes' which: -1 none, 0 or 1 where its second regime is confirmed) and whether the series
    is judged against its regimes there (regimes' bursty).
    Each regime learns its own usual squared step from the steps within it (shrunk towards the series' by
    var_slot_rows steps). Where the series is judged against its regimes, a step within a regime is judged against
    the larger of that regime's usual step and the series' (a burst's larger noise is the burst regime's normal;
    a regime a fault taught, a stuck run's zeros, never makes the test stricter than the series'). A step from one
    regime to the other (a burst's onset or end) teaches neither regime, and is judged against the one it enters.
    With far_lone > 0 (and var_on), the young tail's extrapolation (far_shape) is also used where the series has
    lately had at least far_share times a normal law's share (far_lone_share) of lone excursions: a reading at
    least far_lone usual steps (the variance test's) from both the reading before it and the one after it, on
    the same side (a running mean at far_alpha). A heavy-tailed noise shows such draws before its z has shown
    its tail (before the profile its z's scale is widened); a level shift, a burst or a ramp is no lone one."""
    n_series, n_times = point.shape
    log10e = 1.0 / math.log(10.0)
    recent = np.empty(fast_rows)
    ordered = np.empty(fast_rows)
    slot_exceed = np.zeros(max(slots, 1))
    slot_seen = np.zeros(max(slots, 1))
    slot_excess = np.zeros(max(slots, 1))
    step_slot = np.ones(max(slots, 1))  # the usual squared step of each time-of-day slot
    step_seen = np.zeros(max(slots, 1))
    run_on = slots > 0 and run_slot_alpha > 0.0
    slot_lag = np.zeros(max(slots, 1))  # each slot's running mean of zc times the previous zc, and of zc squared
    slot_energy = np.zeros(max(slots, 1))
    slot_n = np.zeros(max(slots, 1))
    regime_seen = np.zeros(max(slots, 1))  # the regime z's own tail, per slot (adopt)
    regime_exceed = np.zeros(max(slots, 1))
    regime_excess = np.zeros(max(slots, 1))
    regime_step = np.ones(2)  # each regime's usual squared step, and the steps it learnt from
    regime_steps = np.zeros(2)
    regime_on = regime.shape == point.shape
    var_cap = var_clip * var_clip
    var_up = 0.5 * (1.0 - 1.0 / var_ratio)  # the log-likelihood ratio of a squared step q: var_up q - var_cost
    var_cost = 0.5 * math.log(var_ratio)
    for s in range(n_series):
        slot_exceed[:] = 0.0
        slot_seen[:] = 0.0
        slot_excess[:] = 0.0
        step_slot[:] = 1.0
        step_seen[:] = 0.0
        slot_lag[:] = 0.0
        slot_energy[:] = 0.0
        slot_n[:] = 0.0
        step_all = 1.0  # the series' usual squared step
        steps = var_sum = var_run = 0.0
        var_n = 0
        smallest = math.inf  # the smallest squared step (not 0) so far: the readings' resolution
        last_value = math.nan
        regime_step[:] = 1.0
        regime_steps[:] = 0.0
        last_regime = -1
        bias = upper = lower = run_up = run_down = 0.0
        explained = False  # a change was accepted: the drift evidence that follows is its new level
        calm = 0  # rows in a row without drift evidence
        n_up = n_down = 0
        lag_product = previous = 0.0
        energy = 1.0
        exceed = rows = excess = 0.0
        shape_n = shape_sum = shape_squares = 0.0  # the excesses that teach the tail's shape
        top = 0.0  # the largest of them: how far the series' own excesses have shown its tail
        lately = 0.0  # the running share of readings past u
        lone_lately = lone_n = 0.0  # the running share of lone excursions among the steps judged, and their count
        step_in = math.nan  # the step into the previous reading, where the variance test judged it
        filled = 0
        before1 = before2 = math.nan  # the bias-corrected z of the previous two readings
        adopt_at = adopt[s]
        r_rows = r_exceed = r_excess = r_shape_n = r_shape_sum = r_shape_squares = r_top = r_lately = 0.0
        if adopt_at >= 0:
            regime_seen[:] = 0.0
            regime_exceed[:] = 0.0
            regime_excess[:] = 0.0
        for t in range(n_times):
            z = point[s, t]
            best = flat_nats[s, t] * log10e - flat_offset if flat_nats[s, t] > 0 else 0.0
            kind = 2
            # The drift test after an accepted change sees the new level off the daily profile until the
            # profile learns it (days): the change explains that evidence, so the new normal stops scoring, until
            # the drift evidence has been 0 for drift_grace rows in a row (a later drift is judged again). A drift
            # that scored drift_accept decades is accepted the same way (below).
            calm = 0 if drift[s, t] > 0 else calm + 1
            if calm > drift_grace:
                explained = False
            d = _gauss_log10(drift[s, t]) - drift_offset if drift[s, t] > 0 and not explained else 0.0
            if d > best:
                best, kind = d, 3
            if d >= drift_accept:
                # The drift is reported on this row: from the next it is the new normal, as a change the CUSUM
                # accepts is. A step the CUSUM never accepted (the quick level takes the point z back near 0 by its
                # third row) was otherwise read as a drift off the profile until the profile learnt it, for hours.
                explained, calm = True, 0
            if math.isnan(z):
                out[s, t] = best if best > 0 else 0.0
                which[s, t] = kind if best > 0 else 0
                continue
            if t == adopt_at and r_excess / max(r_rows, 1.0) <= adopt_ratio * excess / max(rows, 1.0):
                # The regimes explain the point z's tail (its bursts): from here the tail is the regime z's.
                rows, exceed, excess = r_rows, r_exceed, r_excess
                shape_n, shape_sum, shape_squares = r_shape_n, r_shape_sum, r_shape_squares
                top, lately = r_top, r_lately
                slot_seen[:] = regime_seen
                slot_exceed[:] = regime_exceed
                slot_excess[:] = regime_excess
            zp = z - bias
            b = slot[s, t] if slots > 0 else 0
            if below_u_unread and abs(zp) <= u and abs(z) <= u:
                # Within u both against the bias and without it: slow and plain are normal tails of at most u
                # (below the caller's floor), and fast is not computed where they are at most hazard, so the
                # row's test is below what the caller reads. Its tail's share, mean excess and shape are read
                # only here and by the tests of readings past u: not needed either.
                row = slow = plain = share = mean_excess = xi = knee = xi_far = 0.0
            else:
                # The tail past u: the series' own, then (with slots) the time of day's, each shrunk to the last;
                # its shape from the excesses that were no anomaly (_tail_of).
                share, mean_excess, xi = _tail_of(exceed, rows, excess, slot_exceed[b], slot_seen[b], slot_excess[b],
                                                  shape_n, shape_sum, shape_squares, slots, prior_share, prior_rows,
                                                  prior_excess, prior_count, slot_rows, slot_count, xi_max, xi_prior)
                # The row itself: no change (against the baseline and the bias learnt after a change), or a
                # change in the last few rows (against their median), at a prior cost of `hazard` decades.
                # Past the excesses the series has shown, its tail is an extrapolation; where it has lately
                # had more excesses than a normal law (a heavy-tailed load whose first far draws come before
                # its tail is learnt), that far it is judged with its shape's uncertainty (_far_log10).
                knee = max(far_knee * mean_excess, top)
                xi_far = xi
                if far_shape > 0.0 and (lately >= far_share * prior_share
                                        or (far_lone > 0.0 and lone_lately >= far_share * far_lone_share)):
                    xi_far = max(xi, min(far_shape / math.sqrt(exceed + prior_count), xi_max))
                slow = _far_log10(zp, u, share, mean_excess, xi, knee, xi_far)
                # The bias learnt after a change may explain a reading, not accuse one the forecasters expected: a
                # reading within u of them (z ~0) after an accepted change is the change ending, not a new one,
                # although against the bias it looks like a shift back (the flicker at a rush hour's end).
                plain = _gauss_log10(z) if abs(z) <= u else math.inf
                fast = math.inf
                # fast is hazard plus a tail (>= 0 while every share is at most 1: learn_weight <= 1): where slow or
                # plain is at most hazard it cannot be the smaller, so its median and tail are skipped (most rows;
                # the same minimum, bit for bit).
                if filled >= fast_rows and not (min(slow, plain) <= hazard and learn_weight <= 1.0):
                    fast = hazard + _far_log10(z - _median_of(recent, fast_rows, ordered), u, share, mean_excess, xi,
                                               knee, xi_far)
                row = min(slow, fast, plain)
            if row >= best:
                best, kind = row, 0
            # CUSUM of the bias-corrected z (Page 1954), steps discounted for lag-1 autocorrelation.
            zc = min(max(zp, -h / 2), h / 2)
            lag_product += rho_alpha * (zc * previous - lag_product)
            energy += rho_alpha * (zc * zc - energy)
            rho = min(max(lag_product / max(energy, 1e-12), 0.0), 0.95)
            step = zc * math.sqrt((1.0 - rho) / (1.0 + rho))
            # The run test's own discount: a time of day whose departures persist (a rush hour's drop, a little
            # earlier or later each working day) makes runs of its own; judged as independent rows, its onset's
            # second row scored as a level shift's. Its slot's lag-1 autocorrelation (never below the series').
            rho_run = rho
            if run_on:
                seen_b = min(slot_n[b], 1.0 / run_slot_alpha)
                slot_rho = ((slot_lag[b] * seen_b + lag_product * run_slot_rows)
                            / max(slot_energy[b] * seen_b + energy * run_slot_rows, 1e-12))
                rho_run = max(rho, min(max(slot_rho, 0.0), 0.95))
                step_b = max(run_slot_alpha, 1.0 / (slot_n[b] + 1.0))
                slot_lag[b] += step_b * (zc * previous - slot_lag[b])
                slot_energy[b] += step_b * (zc * zc - slot_energy[b])
                slot_n[b] += 1.0
            previous = zc
            upper = max(0.0, upper + step - k)
            lower = max(0.0, lower - step - k)
            run_up = run_up + zp if upper > 0 else 0.0
            n_up = n_up + 1 if upper > 0 else 0
            run_down = run_down + zp if lower > 0 else 0.0
            n_down = n_down + 1 if lower > 0 else 0
            # Siegmund's approximation: P(a CUSUM with drift -k ever reaches S) ~ exp(-2 k S).
            # Checked at every row, so its own offset (a sum near h is common somewhere in a long series).
            shift = 2.0 * k * max(upper, lower) * log10e - shift_offset
            if shift > best:
                best, kind = shift, 1
            # A run: this reading and the one or two before it all past c > u on the same side, p(c)^w for
            # independent readings, each extra one discounted by the autocorrelation. The second row of a
            # shift is surprising even when its own noise pulls it back towards normal.
            for width in (2, 3):
                c = abs(zp)
                same = not math.isnan(before1) and before1 * zp > 0
                if same:
                    c = min(c, abs(before1))
                if width == 3:
                    same = same and not math.isnan(before2) and before2 * zp > 0
                    if same:
                        c = min(c, abs(before2))
                if same and c > u:  # every reading of the run in the tail
                    run = (min(_far_log10(c, u, share, mean_excess, xi, knee, xi_far), plain)
                           * (1.0 + (width - 1) * (1.0 - rho_run)))
                    if run > best:
                        best, kind = run, 0
            # A change of spread: the CUSUM of the log-likelihood ratio of var_ratio times the usual variance,
            # over each squared step (this reading less the previous one) against the usual squared step of
            # the series and of this time of day. p <= exp(-S) (Wald), checked at every row: its own offset.
            x = values[s, t] if var_on else math.nan
            here = regime[s, t] if regime_on else -1  # the regime of this reading (-1: none)
            within = here >= 0 and (last_regime == -1 or last_regime == here)
            if not math.isnan(x) and not math.isnan(last_value):
                square = (x - last_value) * (x - last_value)
                capped = square  # what the step teaches the usual steps: capped at var_cap usual ones once warm
                if steps >= var_warmup:
                    usual = (step_slot[b] * step_seen[b] + step_all * var_slot_rows) / (step_seen[b] + var_slot_rows)
                    if regime_on and bursty[s, t]:
                        # Judged against the regimes: the regime's own usual step, where larger.
                        usual = max(usual, (regime_step[here] * regime_steps[here] + usual * var_slot_rows)
                                    / (regime_steps[here] + var_slot_rows))
                    usual = max(usual, var_floor * step_all, 1e-12)
                    capped = min(square, var_cap * usual)
                    q = min(square / usual, var_cap)
                    if far_lone > 0.0:
                        # The previous reading, a lone excursion: far from both its neighbours, on the same side.
                        step_out = last_value - x
                        if not math.isnan(step_in):
                            lone = (step_in * step_out > 0.0
                                    and min(step_in * step_in, step_out * step_out) > far_lone * far_lone * usual)
                            lone_n += 1.0
                            lone_lately += max(far_alpha, 1.0 / lone_n) * ((1.0 if lone else 0.0) - lone_lately)
                        step_in = -step_out
                    if square <= var_grid * var_grid * smallest:  # one step of the resolution: never evidence
                        q = min(q, var_cost / var_up)  # for the larger spread (its log-likelihood ratio <= 0)
                    var_sum = max(0.0, var_sum + var_up * q - var_cost)
                    var_run = var_run + q if var_sum > 0 else 0.0
                    var_n = var_n + 1 if var_sum > 0 else 0
                    spread = var_sum * log10e - var_offset
                    if spread > best:
                        best, kind = spread, 4
                    if var_sum >= var_h:
                        # Accepted: the run's mean ratio is the new usual spread, everywhere.
                        gain = var_run / var_n
                        step_all *= gain
                        step_slot *= gain
                        regime_step *= gain
                        var_sum = var_run = 0.0
                        var_n = 0
                    else:
                        step_all += var_alpha * (capped - step_all)
                        step_slot[b] += max(var_slot_alpha, 1.0 / (step_seen[b] + 1.0)) * (capped - step_slot[b])
                        step_seen[b] += 1.0
                else:  # start-up: plain means
                    step_all += (square - step_all) / (steps + 1.0)
                    step_slot[b] += (square - step_slot[b]) / (step_seen[b] + 1.0)
                    step_seen[b] += 1.0
                steps += 1.0
                if within:
                    rate = max(var_slot_alpha, 1.0 / (regime_steps[here] + 1.0))
                    regime_step[here] += rate * (capped - regime_step[here])
                    regime_steps[here] += 1.0
                if square > 0.0:
                    smallest = min(smallest, square)
            if not math.isnan(x):
                last_value = x
                last_regime = here
            if upper >= h or lower >= h:
                explained, calm = True, 0
                # A change: the new level is the mean of the run that built the sum; judge the next rows
                # against it (the baseline itself adapts slowly), and start the sums again.
                bias += run_up / n_up if upper >= h else run_down / n_down
                upper = lower = run_up = run_down = 0.0
                n_up = n_down = 0
            else:
                bias += bias_alpha * (min(max(zp, -u), u))
            out[s, t] = best
            which[s, t] = kind
            # The series' own tail. A reading already past learn_max decades is an anomaly and teaches it
            # only with learn_weight (SPOT leaves such readings out: Siffer et al. 2017), else each spike
            # would teach the series that spikes are normal and the next one would score lower; a normal
            # that recurs (bursts) is still learnt, more slowly.
            rows += 1.0
            lately += max(far_alpha, 1.0 / rows) * ((1.0 if abs(zp) > u else 0.0) - lately)
            slot_seen[b] += 1.0
            if abs(zp) > u:
                weight, own = _taught(abs(zp) - u, slow, learn_max, learn_weight, excess_cap, learn_cap, share,
                                      mean_excess, xi)
                exceed += weight
                excess += weight * own
                slot_exceed[b] += weight
                slot_excess[b] += weight * own
                if slow < learn_max:
                    # The shape only from readings that were no anomaly: one 6-sigma spike on a quiet series
                    # would otherwise give it a shape of ~0.2 and the next spike a much lower score.
                    shape_n += 1.0
                    shape_sum += own
                    shape_squares += own ** 2
                    top = max(top, own)
            if t < adopt_at and not math.isnan(shadow[s, t]):
                # The regime z's own tail, learnt as the series' own is (the same weights and caps).
                zr = shadow[s, t]
                if abs(zr) > u:
                    r_share, r_mean, r_xi = _tail_of(r_exceed, r_rows, r_excess, regime_exceed[b], regime_seen[b],
                                                     regime_excess[b], r_shape_n, r_shape_sum, r_shape_squares, slots,
                                                     prior_share, prior_rows, prior_excess, prior_count, slot_rows,
                                                     slot_count, xi_max, xi_prior)
                    r_slow = _gpd_log10(zr, u, r_share, r_mean, r_xi)
                    weight, own = _taught(abs(zr) - u, r_slow, learn_max, learn_weight, excess_cap, learn_cap,
                                          r_share, r_mean, r_xi)
                    r_exceed += weight
                    r_excess += weight * own
                    regime_exceed[b] += weight
                    regime_excess[b] += weight * own
                    if r_slow < learn_max:
                        r_shape_n += 1.0
                        r_shape_sum += own
                        r_shape_squares += own ** 2
                        r_top = max(r_top, own)
                r_rows += 1.0
                r_lately += max(far_alpha, 1.0 / r_rows) * ((1.0 if abs(zr) > u else 0.0) - r_lately)
                regime_seen[b] += 1.0
            recent[filled % fast_rows] = z
            before2, before1 = before1, zp
            filled += 1


surprise = numba.njit(cache=True, nogil=True)(_surprise)


_LARGEST = np.finfo(np.float64).max


@numba.njit(cache=True, nogil=True, inline="always")
def _nan_to_num(v: float) -> float:
    """np.nan_to_num of one float: NaN 0, infinities the largest finite float of their sign."""
    if math.isnan(v):
        return 0.0
    if v == math.inf:
        return _LARGEST
    if v == -math.inf:
        return -_LARGEST
    return v


@numba.njit(cache=True, nogil=True, inline="always")
def _np_min(a: float, b: float) -> float:
    """np.minimum of two floats that are not NaN (on a tie, b: its sign of zero, as numpy returns)."""
    return a if a < b else b


@numba.njit(cache=True, nogil=True, inline="always")
def _np_max(a: float, b: float) -> float:
    """np.maximum of two floats that are not NaN (on a tie, b, as numpy returns)."""
    return a if a > b else b


@numba.njit(cache=True, nogil=True, inline="always")
def _both_sides(rz: float, sz: float, pz: float, has: bool) -> float:
    """The level evidence of one element (_combine's, _profile_pass'): where the profile's z is finite (`has`), how
    far the recent z, the profile's and its plain z are all past 0 on one side, else |recent z|; rz, sz, pz as
    np.nan_to_num gives them, np.minimum / np.maximum with numpy's choice on a tie."""
    up = _np_min(_np_min(rz, sz), pz)
    down = _np_min(_np_min(-rz, -sz), -pz)
    return _np_max(_np_max(up, down), 0.0) if has else abs(rz)


@numba.njit(cache=True, nogil=True, inline="always")
def _strongest(level: float, shift: float, seasonal: float, flat: float, drift: float) -> tuple[float, int]:
    """combined._strongest of one element: the evidence of the first detector (in DETECTORS' order) whose evidence
    is larger than all before it, and that detector."""
    best = level
    winner = 0
    if shift > best:
        best, winner = shift, 1
    if seasonal > best:
        best, winner = seasonal, 2
    if flat > best:
        best, winner = flat, 3
    if drift > best:
        best, winner = drift, 4
    return best, winner


def _combine(season_z: np.ndarray, plain_z: np.ndarray, season_scale: np.ndarray, season_expected: np.ndarray,
             recent_z: np.ndarray, recent_scale: np.ndarray, recent_expected: np.ndarray, recent_up: np.ndarray,
             recent_down: np.ndarray, season_up: np.ndarray, season_down: np.ndarray, plain_up: np.ndarray,
             plain_down: np.ndarray, flat: np.ndarray, drift: np.ndarray, level_out: np.ndarray,
             shift_out: np.ndarray, seasonal_out: np.ndarray, expected_out: np.ndarray, scale_out: np.ndarray,
             z_out: np.ndarray, best_out: np.ndarray, winner_out: np.ndarray, keep: bool = True) -> None:
    """combined._score_block's evidence, baseline and strongest evidence where a profile exists, in one pass over
    the (S, T) arrays instead of ~40 whole-array numpy passes: the same operations per element in the same order
    (np.nan_to_num, np.minimum / np.maximum with numpy's choice on a tie, np.where, _strongest's first larger),
    so the same bits (tests/analytics/test_score_kernels.py holds it to the numpy code). Every side of an element
    is read before any output of that element is written, so level_out, shift_out and seasonal_out may be three
    of the sides' own arrays (combined._combine's sides_spent): keep that order. Without `keep` only the strongest
    evidence and its detector are written (the other outputs may be any arrays: `city score` reads none of them)."""
    n_series, n_times = season_z.shape
    for s in range(n_series):
        for t in range(n_times):
            sz_raw = season_z[s, t]
            has = not (math.isnan(sz_raw) or math.isinf(sz_raw))
            use = has and season_scale[s, t] < recent_scale[s, t]
            rz = _nan_to_num(recent_z[s, t])
            sz = _nan_to_num(sz_raw)
            pz = _nan_to_num(plain_z[s, t])
            both = _both_sides(rz, sz, pz, has)
            if has:
                shift = _np_max(_np_min(season_up[s, t], plain_up[s, t]), _np_min(season_down[s, t], plain_down[s, t]))
            else:
                shift = _np_max(recent_up[s, t], recent_down[s, t])
            level = 0.0 if use else both
            seasonal = both if use else 0.0
            if keep:
                level_out[s, t] = level
                shift_out[s, t] = shift
                seasonal_out[s, t] = seasonal
                expected_out[s, t] = season_expected[s, t] if use else recent_expected[s, t]
                scale_out[s, t] = season_scale[s, t] if use else recent_scale[s, t]
                z_out[s, t] = sz_raw if use else recent_z[s, t]
            best_out[s, t], winner_out[s, t] = _strongest(level, shift, seasonal, flat[s, t], drift[s, t])


def _point(season_z: np.ndarray, plain_z: np.ndarray, season_scale: np.ndarray, recent_scale: np.ndarray,
           quick_z: np.ndarray, quick_scale: np.ndarray, ratio: np.ndarray, usual: np.ndarray, free_on: bool,
           limit: float, prev_limit: float, slid_at: np.ndarray, slid_by: np.ndarray, out: np.ndarray) -> None:
    """combined._score_block's point z where a profile exists, in one pass (ratio, usual: the free ratio and its
    running level, read only with free_on; slid_at, slid_by: profile_slides' list, the profile's z and plain z
    plus the move where a reading slides): the same operations per element in the same order as its numpy code, so
    the same bits."""
    n_series, n_times = season_z.shape
    k = 0
    for s in range(n_series):
        before = math.nan
        for t in range(n_times):
            sz_raw = season_z[s, t]
            pz_raw = plain_z[s, t]
            if k < slid_at.size and slid_at[k] == s * n_times + t:
                sz_raw = sz_raw + slid_by[k]
                pz_raw = pz_raw + slid_by[k]
                k += 1
            has = not (math.isnan(sz_raw) or math.isinf(sz_raw))
            use = has and season_scale[s, t] < recent_scale[s, t]
            qz = quick_z[s, t]
            rz = _nan_to_num(qz)
            sz = _nan_to_num(sz_raw)
            pz = _nan_to_num(pz_raw)
            up = _np_min(_np_min(rz, sz), pz)
            down = _np_min(_np_min(-rz, -sz), -pz)
            on_season = _np_max(_np_min(sz, pz), 0.0) - _np_max(_np_min(-sz, -pz), 0.0)
            signed = _np_max(up, 0.0) - _np_max(down, 0.0)
            # On a departure's later rows (the quick z before at least prev_limit, the same side) the quick level
            # has been pulled by the departure itself: its z no longer replaces a larger one of the profile's.
            pulled = abs(before) >= prev_limit and before * qz > 0
            if (quick_scale[s, t] < season_scale[s, t] and qz * on_season > 0 and abs(on_season) >= 0.5 * abs(qz)
                    and not (pulled and abs(on_season) > abs(qz))):
                on_season = qz
            point = on_season if use else (signed if has else qz)
            if free_on:
                r = ratio[s, t]
                if has and r > limit and usual[s, t] > limit and abs(before) < prev_limit and math.isfinite(qz):
                    point = qz
            if math.isnan(qz) and not has:
                point = math.nan
            out[s, t] = point
            before = qz


combine = numba.njit(cache=True, nogil=True)(_combine)
point_z = numba.njit(cache=True, nogil=True)(_point)


def _holt_two(x_a: np.ndarray, x_b: np.ndarray, expected_a: np.ndarray, scale_a: np.ndarray,
              expected_b: np.ndarray, scale_b: np.ndarray, a_level_a: float, a_scale_a: float, a_trend_a: float,
              a_level_b: float, a_scale_b: float, a_trend_b: float, warmup: int, clip: float, mad_to_sigma: float,
              rel_floor: float, abs_floor: float, gaps_b: np.ndarray, restart_b: float) -> None:
    """_holt on x_a and on x_b (two (S, T) arrays, or the same one twice) in one pass, each with its own smoothing
    factors, the second with _holt's gaps and restart: two independent recursions side by side, each step the
    same arithmetic in the same order as _holt's (the same bits), which the processor overlaps where one after
    the other it waits on each step's result (x_b is x_a for drift_evidence's fast and slow levels)."""
    n_series, n_times = x_a.shape
    for s in range(n_series):
        level_a = slope_a = deviation_a = count_a = quantum_a = 0.0
        level_b = slope_b = deviation_b = count_b = quantum_b = 0.0
        last_a = last_b = math.nan
        for t in range(n_times):
            xa = x_a[s, t]
            seen_a = count_a > 0
            warm_a = count_a >= warmup
            forecast_a = level_a + slope_a
            sc_a = holt_scale(forecast_a, deviation_a, quantum_a, mad_to_sigma, rel_floor, abs_floor)
            expected_a[s, t] = forecast_a if seen_a else math.nan
            scale_a[s, t] = sc_a if seen_a else math.nan
            xb = x_b[s, t]
            seen_b = count_b > 0
            warm_b = count_b >= warmup
            forecast_b = level_b + slope_b
            sc_b = holt_scale(forecast_b, deviation_b, quantum_b, mad_to_sigma, rel_floor, abs_floor)
            expected_b[s, t] = forecast_b if seen_b else math.nan
            scale_b[s, t] = sc_b if seen_b else math.nan
            if not math.isnan(xa):  # a missing reading freezes the state
                level_a, slope_a, deviation_a, count_a, quantum_a, last_a = holt_step(
                    xa, forecast_a, sc_a, seen_a, warm_a, slope_a, deviation_a, count_a, quantum_a, last_a,
                    a_level_a, a_scale_a, a_trend_a, clip)
            if not math.isnan(xb):
                if restart_b > 0 and seen_b and gaps_b[s, t] > restart_b:
                    level_b, slope_b, last_b = xb, 0.0, xb  # the level is stale after a long gap: it restarts here
                else:
                    level_b, slope_b, deviation_b, count_b, quantum_b, last_b = holt_step(
                        xb, forecast_b, sc_b, seen_b, warm_b, slope_b, deviation_b, count_b, quantum_b, last_b,
                        a_level_b, a_scale_b, a_trend_b, clip)


holt_two = numba.njit(cache=True, nogil=True)(_holt_two)


@numba.njit(cache=True, nogil=True)
def cusum_three(z_a: np.ndarray, z_b: np.ndarray, z_c: np.ndarray, upper_a: np.ndarray, lower_a: np.ndarray,
                upper_b: np.ndarray, lower_b: np.ndarray, upper_c: np.ndarray, lower_c: np.ndarray, k: float,
                h: float, rho_alpha: float, unit: float, cap: float) -> None:
    """_cusum of three (S, T) z arrays in one pass: three independent recursions side by side (the same bits as
    three calls), which the processor overlaps where one after the other it waits on each step's result."""
    n_series, n_times = z_a.shape
    for s in range(n_series):
        ua = la = pa = qa = 0.0
        ub = lb = pb = qb = 0.0
        uc = lc = pc = qc = 0.0
        ea = eb = ec = 1.0
        for t in range(n_times):
            ua, la, pa, qa, ea = cusum_step(z_a[s, t], ua, la, pa, qa, ea, k, h, rho_alpha, cap)
            ub, lb, pb, qb, eb = cusum_step(z_b[s, t], ub, lb, pb, qb, eb, k, h, rho_alpha, cap)
            uc, lc, pc, qc, ec = cusum_step(z_c[s, t], uc, lc, pc, qc, ec, k, h, rho_alpha, cap)
            upper_a[s, t] = ua * unit
            lower_a[s, t] = la * unit
            upper_b[s, t] = ub * unit
            lower_b[s, t] = lb * unit
            upper_c[s, t] = uc * unit
            lower_c[s, t] = lc * unit


def _profile_pass(x: np.ndarray, season_z: np.ndarray, plain_z: np.ndarray, season_scale: np.ndarray,
                  season_expected: np.ndarray, flat: np.ndarray, drift: np.ndarray, expected_out: np.ndarray,
                  scale_out: np.ndarray, z_out: np.ndarray, best_out: np.ndarray, winner_out: np.ndarray,
                  level_out: np.ndarray, shift_out: np.ndarray, seasonal_out: np.ndarray, a_level: float,
                  a_scale: float, a_trend: float, warmup: int, clip: float, mad_to_sigma: float, rel_floor: float,
                  abs_floor: float, widen: bool, a_wide: float, wide_floor: float, k: float, h: float,
                  rho_alpha: float, unit: float, cap: float, keep_evidence: bool) -> None:
    """combined._score_block with a profile (without the point z), from the recent level on, in one pass over
    each row: robust_baseline (the _holt recursion and its z after `warmup` readings), with `widen`
    combined._widened kept where the profile's z is finite (a flat _holt over the same errors, step a_wide, its
    scale times wide_floor, np.fmax with the recent scale, z against it, elsewhere), the three CUSUMs of that z,
    the profile's z and its plain z (cusum_three) and _combine's evidence, baseline and strongest evidence, given
    the profile (season_*), the flatline and the drift evidence. x and the inputs (S, T) float64; expected_out,
    scale_out, z_out, best_out (S, T) float64, winner_out (S, T) int8; level_out, shift_out, seasonal_out (S, T)
    only with keep_evidence. Each step the arithmetic of the passes it replaces (holt_step, cusum_step, _combine's
    per element) in their order, so the same bits (tests/analytics/test_profile_pass.py), without the recent
    level's six arrays and the CUSUMs' six written and read again."""
    n_series, n_times = x.shape
    for s in range(n_series):
        level = slope = deviation = count = quantum = 0.0
        last = math.nan
        w_level = w_slope = w_deviation = w_count = w_quantum = 0.0  # the flat recursion over the errors
        w_last = math.nan
        ua = la = pa = qa = 0.0
        ub = lb = pb = qb = 0.0
        uc = lc = pc = qc = 0.0
        ea = eb = ec = 1.0
        for t in range(n_times):
            xt = x[s, t]
            sz_raw = season_z[s, t]
            has = not (math.isnan(sz_raw) or math.isinf(sz_raw))
            # robust_baseline: the forecast and scale from the readings before t, and its z (warm_z).
            seen = count > 0
            warm = count >= warmup
            forecast = level + slope
            sc = holt_scale(forecast, deviation, quantum, mad_to_sigma, rel_floor, abs_floor)
            et = forecast if seen else math.nan
            st = sc if seen else math.nan
            error = xt - et
            zt = error / st if count >= warmup else math.nan
            if widen:
                # _widened: a flat _holt over the errors, its scale times wide_floor, np.fmax with st, except
                # where the profile's z is finite (np.where(keep, recent.scale, ...)); z against that scale.
                w_seen = w_count > 0
                w_forecast = w_level + w_slope
                w_sc = holt_scale(w_forecast, w_deviation, w_quantum, mad_to_sigma, rel_floor, abs_floor)
                if not has:
                    floor = (w_sc if w_seen else math.nan) * wide_floor
                    wide = floor if math.isnan(st) else (st if math.isnan(floor) else max(st, floor))
                    if not math.isnan(zt):
                        zt = error / wide
                    st = wide
                if not math.isnan(error):
                    w_level, w_slope, w_deviation, w_count, w_quantum, w_last = holt_step(
                        error, w_forecast, w_sc, w_seen, w_count >= warmup, w_slope, w_deviation, w_count, w_quantum,
                        w_last, a_wide, a_wide, 0.0, clip)
            # The three CUSUMs (cusum_three: the recent z, the profile's z, its plain z).
            pz_raw = plain_z[s, t]
            ua, la, pa, qa, ea = cusum_step(zt, ua, la, pa, qa, ea, k, h, rho_alpha, cap)
            ub, lb, pb, qb, eb = cusum_step(sz_raw, ub, lb, pb, qb, eb, k, h, rho_alpha, cap)
            uc, lc, pc, qc, ec = cusum_step(pz_raw, uc, lc, pc, qc, ec, k, h, rho_alpha, cap)
            # _combine's element.
            ss = season_scale[s, t]
            use = has and ss < st
            rz = _nan_to_num(zt)
            sz = _nan_to_num(sz_raw)
            pz = _nan_to_num(pz_raw)
            both = _both_sides(rz, sz, pz, has)
            if has:
                shift = _np_max(_np_min(ub * unit, uc * unit), _np_min(lb * unit, lc * unit))
            else:
                shift = _np_max(ua * unit, la * unit)
            lv = 0.0 if use else both
            seasonal = both if use else 0.0
            if keep_evidence:
                level_out[s, t] = lv
                shift_out[s, t] = shift
                seasonal_out[s, t] = seasonal
            expected_out[s, t] = season_expected[s, t] if use else et
            scale_out[s, t] = ss if use else st
            z_out[s, t] = sz_raw if use else zt
            best_out[s, t], winner_out[s, t] = _strongest(lv, shift, seasonal, flat[s, t], drift[s, t])
            if not math.isnan(xt):  # a missing reading freezes the state
                level, slope, deviation, count, quantum, last = holt_step(
                    xt, forecast, sc, seen, warm, slope, deviation, count, quantum, last, a_level, a_scale, a_trend,
                    clip)


# error_model numpy: a division by 0 gives inf or NaN as numpy's does, not ZeroDivisionError.
profile_pass = numba.njit(cache=True, nogil=True, error_model="numpy")(_profile_pass)


def _drift_pass(r: np.ndarray, scale: np.ndarray, a_fast: float, a_slow: float, a_gap: float, settle: float,
                warmup: int, clip: float, mad_to_sigma: float, rel_floor: float, abs_floor: float, unit: float,
                min_z: float, out: np.ndarray) -> None:
    """drift.drift_evidence before its running minimum, in one pass over each row of r (S, T): the fast and the
    slow flat _holt of r (holt_two), their gap once `settle` readings were seen (drift_gap), the z of the gap
    against a flat _holt of it (step a_gap) after `warmup` readings (robust_baseline's, warm_z) and the evidence
    (drift_tail, with `scale` (S, T)). Each step the arithmetic of those passes in their order (holt_step), so the
    same bits, without their seven arrays the size of r written and read again."""
    n_series, n_times = r.shape
    for s in range(n_series):
        level_f = slope_f = deviation_f = count_f = quantum_f = 0.0
        level_s = slope_s = deviation_s = count_s = quantum_s = 0.0
        level_g = slope_g = deviation_g = count_g = quantum_g = 0.0
        last_f = last_s = last_g = math.nan
        known = 0
        for t in range(n_times):
            rt = r[s, t]
            # The fast and the slow level: forecasts from the readings before t.
            seen_f = count_f > 0
            forecast_f = level_f + slope_f
            sc_f = holt_scale(forecast_f, deviation_f, quantum_f, mad_to_sigma, rel_floor, abs_floor)
            fast = forecast_f if seen_f else math.nan
            seen_s = count_s > 0
            forecast_s = level_s + slope_s
            sc_s = holt_scale(forecast_s, deviation_s, quantum_s, mad_to_sigma, rel_floor, abs_floor)
            slow = forecast_s if seen_s else math.nan
            if not math.isnan(rt):
                level_f, slope_f, deviation_f, count_f, quantum_f, last_f = holt_step(
                    rt, forecast_f, sc_f, seen_f, count_f >= warmup, slope_f, deviation_f, count_f, quantum_f, last_f,
                    a_fast, a_fast, 0.0, clip)
                level_s, slope_s, deviation_s, count_s, quantum_s, last_s = holt_step(
                    rt, forecast_s, sc_s, seen_s, count_s >= warmup, slope_s, deviation_s, count_s, quantum_s, last_s,
                    a_slow, a_slow, 0.0, clip)
                known += 1
            # drift_gap: up to and including t.
            gap = fast - slow if known >= settle else math.nan
            # robust_baseline of the gap (flat), its z (warm_z).
            seen_g = count_g > 0
            forecast_g = level_g + slope_g
            sc_g = holt_scale(forecast_g, deviation_g, quantum_g, mad_to_sigma, rel_floor, abs_floor)
            e_g = forecast_g if seen_g else math.nan
            s_g = sc_g if seen_g else math.nan
            trend = (gap - e_g) / s_g if count_g >= warmup else math.nan
            if not math.isnan(gap):
                level_g, slope_g, deviation_g, count_g, quantum_g, last_g = holt_step(
                    gap, forecast_g, sc_g, seen_g, count_g >= warmup, slope_g, deviation_g, count_g, quantum_g,
                    last_g, a_gap, a_gap, 0.0, clip)
            # drift_tail.
            sc = scale[s, t]
            off = _nan_to_num(fast / (sc * unit))
            now = _nan_to_num(rt / sc)
            tr = _nan_to_num(trend)
            up = _np_min(tr, off) * (1.0 if now >= min_z else 0.0)
            down = _np_min(-tr, -off) * (1.0 if now <= -min_z else 0.0)
            out[s, t] = _np_max(_np_max(up, down), 0.0)


drift_pass = numba.njit(cache=True, nogil=True, error_model="numpy")(_drift_pass)


@numba.njit(cache=True, nogil=True)
def running_minimum(x: np.ndarray, width: int, out: np.ndarray) -> None:
    """The minimum of each row of x (S, T) over its last `width` samples (x[s, 0] standing for those before the row):
    scipy.ndimage.minimum_filter1d(x, width, axis=1, origin=(width - 1) // 2, mode="nearest"), the same bits, NaN
    and signed zeros included. Its algorithm reproduced (Richard Harter's ascending minima in a ring of width
    (value, death) pairs: a value equal to the minimum replaces it; a NaN never does), not imported: scipy's import
    was ~0.2-0.4 s of every `city score`."""
    n_series, n_times = x.shape
    if width == 1 or n_times == 0:
        for s in range(n_series):  # a loop, not out[:] = x: numpy's assignment is ~100 KB more code to load
            for i in range(n_times):
                out[s, i] = x[s, i]
        return
    values = np.empty(width)
    deaths = np.empty(width, dtype=np.int64)
    for s in range(n_series):
        head = last = 0  # the ring's minimum and its newest pair
        values[0] = x[s, 0]
        deaths[0] = width
        for i in range(1, width + n_times - 1):
            value = x[s, max(i - width + 1, 0)]
            if deaths[head] == i:
                head = head + 1 if head + 1 < width else 0
            if value <= values[head]:
                values[head] = value
                deaths[head] = i + width
                last = head
            else:
                while values[last] >= value:
                    last = last - 1 if last > 0 else width - 1
                last = last + 1 if last + 1 < width else 0
                values[last] = value
                deaths[last] = i + width
            if i >= width - 1:
                out[s, i - width + 1] = values[head]
