"""Slow, obviously correct versions of the detectors: plain Python, one series
and one sample at a time, written from the docstrings. The fast vectorised
code in analytics.detectors is checked against these."""

import math
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import integrate, stats

from analytics.config import DetectorParams


def robust_baseline(series: list[float], p: DetectorParams, alpha: float | None = None,
                    trend_on: bool = True) -> tuple[list[float], list[float], list[float]]:
    a = p.level_alpha if alpha is None else alpha
    level = trend = deviation = quantum = 0.0
    last = math.nan
    count = 0
    expected, scale, z = [], [], []
    for x in series:
        forecast = level + trend
        s = max(deviation * p.mad_to_sigma, p.rel_scale_floor * abs(forecast) + p.abs_scale_floor, quantum / 2)
        expected.append(forecast if count else math.nan)
        scale.append(s if count else math.nan)
        if math.isnan(x):
            z.append(math.nan)
            continue
        residual = x - forecast
        z.append(residual / s if count >= p.warmup else math.nan)
        if count == 0:
            level = x
        else:
            warm = count >= p.warmup
            limit = p.huber_clip * s
            clipped = max(-limit, min(limit, residual)) if warm else residual
            spread = min(abs(residual), limit) if warm else abs(residual)
            level = forecast + max(a, 1 / (count + 1)) * clipped
            if warm and trend_on:
                trend += a * p.trend_beta * clipped
            deviation += max(p.scale_alpha if alpha is None else alpha, 1 / count) * (spread - deviation)
        if not math.isnan(last) and x != last and (quantum == 0 or abs(x - last) < quantum):
            quantum = abs(x - last)
        last = x
        count += 1
    return expected, scale, z


def cusum_evidence(z: list[float], p: DetectorParams) -> list[float]:
    upper, lower = cusum_sides(z, p)
    return [max(u, d) for u, d in zip(upper, lower, strict=True)]


def cusum_sides(z: list[float], p: DetectorParams) -> tuple[list[float], list[float]]:
    upper = lower = lag_product = previous = 0.0
    energy = 1.0
    out_upper, out_lower = [], []
    for value in z:
        zt = 0.0 if math.isnan(value) else max(-p.cusum_h / 2, min(p.cusum_h / 2, value))
        lag_product += p.cusum_rho_alpha * (zt * previous - lag_product)
        energy += p.cusum_rho_alpha * (zt * zt - energy)
        rho = max(0.0, min(0.95, lag_product / max(energy, 1e-12)))
        step = zt * math.sqrt((1 - rho) / (1 + rho))
        previous = zt
        upper = min(max(0.0, upper + step - p.cusum_k), p.cusum_cap * p.cusum_h)
        lower = min(max(0.0, lower - step - p.cusum_k), p.cusum_cap * p.cusum_h)
        out_upper.append(upper * p.z_mid / p.cusum_h)
        out_lower.append(lower * p.z_mid / p.cusum_h)
    return out_upper, out_lower


def seasonal_expected(series: list[float], times: list[int], period_ms: int, p: DetectorParams) -> list[float]:
    steps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    # Half the 90th-percentile interval (linear interpolation, as numpy's default quantile).
    tolerance = 0.5 * float(np.quantile(steps, 0.9)) if steps else math.nan
    half = p.profile_smooth_samples
    def weekend(t_ms: int) -> bool:
        return (datetime.fromtimestamp(t_ms / 1000, UTC) + timedelta(hours=p.utc_offset_h)).weekday() >= 5

    by_day_type = p.day_types and period_ms == 24 * 3600 * 1000
    out = []
    for t in times:
        own, anyday = [], []
        for lag in range(1, max(7, p.season_lags) + 1 if by_day_type else p.season_lags + 1):
            target = t - lag * period_ms
            # The first of the nearest samples (ties go to the earlier one).
            nearest = min(range(len(times)), key=lambda i: (abs(times[i] - target), i))
            if abs(times[nearest] - target) > tolerance:
                continue
            # The running median over `half` samples either side (within (2 half + 1) tolerances of the
            # reading), if all of them are before t; else the reading itself.
            around = [i for i in range(nearest - half, nearest + half + 1)
                      if 0 <= i < len(times) and abs(times[i] - times[nearest]) <= (2 * half + 1) * tolerance]
            values = [series[i] for i in around if not math.isnan(series[i])]
            value = math.nan
            if max(times[i] for i in around) < t:
                if values:
                    value = statistics.median(values)
            elif not math.isnan(series[nearest]):
                value = series[nearest]
            if math.isnan(value):
                continue
            if lag <= p.season_lags:
                anyday.append(value)
            if not by_day_type or (weekend(t) == weekend(target) and lag <= 7):
                own.append(value)
        expected = statistics.median(own) if len(own) >= p.season_min_lags else math.nan
        # Two days of its own type: the median of the previous season_lags days (any type) breaks the tie when
        # it is nearer to one of them than they are to each other.
        if by_day_type and p.day_type_tiebreak and len(own) == 2 and len(anyday) >= p.season_min_lags:
            low, high = sorted(own)
            whole = statistics.median(anyday)
            if min(abs(whole - low), abs(whole - high)) < high - low:
                expected = min(max(whole, low), high)
        out.append(expected)
    return out


def flatline_nats(series: list[float], p: DetectorParams) -> list[float]:
    out = []
    repeats = steps = 0  # over the whole history
    run = 0
    repeats_before = steps_before = 0  # at the start of the current run
    previous = math.nan
    lowest = math.inf  # the lowest value so far
    lowest_before_run = math.inf
    for x in series:
        if math.isnan(x):
            out.append(out[-1] if out else 0.0)  # a gap neither extends nor breaks the run
            continue
        if not math.isnan(previous):
            steps += 1
            if x == previous:
                repeats += 1
                run += 1
            else:
                run = 0
                repeats_before, steps_before = repeats, steps
                lowest_before_run = lowest
        lowest = min(lowest, x)
        previous = x
        p_repeat = (repeats_before + 1) / (steps_before + 2)
        ready = steps_before >= p.warmup and run >= p.flatline_min_run and x > lowest_before_run
        out.append(run * -math.log(p_repeat) if ready else 0.0)
    return out


def flatline_tail_nats(series: list[float], p: DetectorParams) -> list[float]:
    """The row score's stuck test (kernels.flatline_tail_nats): flatline_nats, but each repeat after a run's
    first flatline_min_run costs ln(1 / q), q the share of repeats among the steps that earlier runs (not at the
    lowest value) took once flatline_min_run long, shrunk towards p0 by flatline_long_prior steps, at least p0;
    and 0 at a reading at least the highest before it."""
    m = p.flatline_min_run
    out = []
    repeats = steps = long_repeats = long_steps = 0
    run = 0
    repeats_before = steps_before = long_repeats_before = long_steps_before = 0
    previous = math.nan
    lowest = math.inf
    lowest_before_run = math.inf
    highest = -math.inf
    nats = 0.0
    for x in series:
        if math.isnan(x):
            out.append(nats)  # a gap neither extends nor breaks the run
            continue
        if not math.isnan(previous):
            long_run = run >= m and previous > lowest_before_run
            steps += 1
            long_steps += long_run
            if x == previous:
                repeats += 1
                long_repeats += long_run
                run += 1
            else:
                run = 0
                repeats_before, steps_before = repeats, steps
                long_repeats_before, long_steps_before = long_repeats, long_steps
                lowest_before_run = lowest
        lowest = min(lowest, x)
        previous = x
        p0 = (repeats_before + 1) / (steps_before + 2)
        q = max((long_repeats_before + p.flatline_long_prior * p0) / (long_steps_before + p.flatline_long_prior), p0)
        ready = steps_before >= p.warmup and run >= m and x > lowest_before_run
        nats = (m * -math.log(p0) + (run - m) * -math.log(q)) if ready else 0.0
        out.append(0.0 if x >= highest else nats)
        highest = max(highest, x)
    return out


def peer_residual(rows: list[list[float]], groups: list[str], p: DetectorParams) -> list[list[float]]:
    out = [[math.nan] * len(rows[0]) for _ in rows]
    for t in range(len(rows[0])):
        for i, group in enumerate(groups):
            peers = [rows[j][t] for j, g in enumerate(groups) if g == group]
            finite = [v for v in peers if not math.isnan(v)]
            if len(peers) >= p.peer_min_peers and len(finite) >= p.peer_min_peers:
                median = statistics.median(finite)
                out[i][t] = (rows[i][t] - median) / max(abs(median), p.abs_scale_floor)
    return out


def drift_evidence(residual: list[float], scale: list[float], p: DetectorParams) -> list[float]:
    """A fast and a slow clipped level of the residual; their gap's z against its own baseline; the fast level
    in standard errors; both in the reading's direction; the least over the last drift_hold_samples."""
    fast = robust_baseline(residual, p, alpha=p.drift_fast_alpha, trend_on=False)[0]
    slow = robust_baseline(residual, p, alpha=p.drift_slow_alpha, trend_on=False)[0]
    seen, gap = 0, []
    for r, f, s in zip(residual, fast, slow, strict=True):
        seen += not math.isnan(r)
        gap.append(f - s if seen >= 1 / p.drift_slow_alpha else math.nan)
    trend = robust_baseline(gap, p, alpha=p.drift_scale_alpha, trend_on=False)[2]
    error = math.sqrt(p.drift_fast_alpha / (2 - p.drift_fast_alpha))
    raw = []
    for r, f, sc, tr in zip(residual, fast, scale, trend, strict=True):
        off = f / (sc * error) if not (math.isnan(f) or math.isnan(sc) or sc == 0) else 0.0
        now = r / sc if not (math.isnan(r) or math.isnan(sc) or sc == 0) else 0.0
        tr = 0.0 if math.isnan(tr) else tr
        off = 0.0 if math.isnan(off) else off
        up = min(tr, off) if now >= p.drift_min_z else 0.0
        down = min(-tr, -off) if now <= -p.drift_min_z else 0.0
        raw.append(max(up, down, 0.0))
    width = p.drift_hold_samples
    return [min(raw[max(0, t - width + 1):t + 1]) for t in range(len(raw))]


def _normal_tail_log10(z: float) -> float:
    return -math.log10(max(math.erfc(abs(z) / math.sqrt(2)), 1e-300))


def _where_tail_reaches(decades_at, decades: float, top: float) -> float:
    """The excess in [0, top] where decades_at(excess) first reaches `decades` (top if it never does)."""
    if decades_at(top) < decades:
        return top
    low, high = 0.0, top
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if decades_at(middle) >= decades else (middle, high)
    return high


def row_surprise(point: list[float], flat_nats: list[float], p: DetectorParams,
                 slots: list[int] | None = None, values: list[float] | None = None,
                 drift: list[float] | None = None, shadow: list[float] | None = None, adopt: int = -1) -> list[float]:
    """The CSV row surprise (decades) of one series, from the docstring of analytics.detectors.surprise;
    with `slots` (each row's time-of-day slot) the tail is also learnt per slot; with `values` (the
    readings) a change of their spread is tested too; with `drift` (sigmas) the drift test; with `shadow`
    (a bursty series' regime z) a second tail is learnt from it until row `adopt`, where it replaces the
    series' own if its excess per reading is at most surprise_adopt_ratio of the series'."""
    u = p.surprise_tail_u
    share0 = math.erfc(u / math.sqrt(2))
    bias = upper = lower = 0.0
    run_up: list[float] = []
    run_down: list[float] = []
    lag_product = previous = 0.0
    energy = 1.0
    # Each time-of-day slot's running means of zc times the previous zc and of zc squared, and its rows:
    # the run test's own autocorrelation there (a rush hour's departures persist).
    slot_lag: dict[int, float] = {}
    slot_energy: dict[int, float] = {}
    slot_n: dict[int, int] = {}
    run_slots = slots is not None and p.surprise_slots > 0 and p.surprise_run_slot_alpha > 0
    excesses: list[tuple[float, float, int]] = []  # (weight, weighted excess, slot) of each reading past u
    slot_rows: dict[int, int] = {}
    rows = 0
    history: list[float] = []
    corrected: list[float] = []  # the bias-corrected z of every reading so far
    out = []
    # The variance test: the usual squared step of the series and of each slot, how many steps each has
    # taught, the CUSUM of the log-likelihood ratio and the squared-step ratios of its current run.
    usual_all = 1.0
    usual_slot: dict[int, float] = {}
    taught: dict[int, int] = {}
    steps = 0
    var_sum = 0.0
    var_run: list[float] = []
    smallest = math.inf  # the smallest squared step (not 0) so far: the readings' resolution
    last_value = math.nan
    # Lone excursions (surprise_far_lone): the readings far from both neighbours on the same side, a running share,
    # against a normal law's (2 E[Phi(Z - c sqrt 2)^2], by quadrature).
    lone_lately, lone_seen, step_in = 0.0, 0, math.nan
    gap = p.surprise_far_lone * math.sqrt(2)
    lone0 = 2 * integrate.quad(lambda y: stats.norm.pdf(y) * stats.norm.cdf(y - gap) ** 2, -np.inf, np.inf)[0]

    heavy = False  # lately heavier than a normal law (its z, or its lone excursions), as of the row's start

    def tail(z: float, b: int, far: bool = True) -> float:  # normal to u, then the series' (and its slot's) tail
        return tail_of(z, b, excesses, rows, slot_rows, shape, (max(shaping, default=0.0), heavy) if far else None)

    def shape_of(shaping: list[float]) -> float:  # method of moments, shrunk towards an exponential tail (shape 0)
        if p.surprise_xi_max <= 0:
            return 0.0
        m0, k = p.surprise_prior_excess, p.surprise_xi_prior
        m = (sum(shaping) + m0 * k) / (len(shaping) + k)
        var = (sum(e * e for e in shaping) + 2 * m0 * m0 * k) / (len(shaping) + k) - m * m
        return min(max(0.5 * (1 - m * m / var), 0.0), p.surprise_xi_max) if var > 0 else 0.0

    def tail_of(z: float, b: int, excesses: list, rows: int, slot_rows: dict, shape: float,
                far: tuple[float, bool] | None = None) -> float:
        if abs(z) <= u:
            return _normal_tail_log10(z)
        exceed = sum(w for w, _, _ in excesses)
        share = (exceed + share0 * p.surprise_prior_rows) / (rows + p.surprise_prior_rows)
        mean_excess = (sum(e for _, e, _ in excesses) + p.surprise_prior_excess * p.surprise_prior_count) / (
            exceed + p.surprise_prior_count)
        if slots is not None:
            mine = [(w, e) for w, e, at in excesses if at == b]
            exceed_b = sum(w for w, _ in mine)
            share = max((exceed_b + share * p.surprise_slot_rows) / (slot_rows.get(b, 0) + p.surprise_slot_rows),
                        min(share, share0))  # never lighter than both the series' tail and a normal law's
            mean_excess = max((sum(e for _, e in mine) + mean_excess * p.surprise_slot_count) / (
                exceed_b + p.surprise_slot_count), min(mean_excess, p.surprise_prior_excess))
        if far is not None and p.surprise_far_shape > 0 and far[1]:
            # Lately heavier than a normal law's (its z, or its lone excursions): past the series' own largest
            # excess that was no anomaly (and far_knee mean excesses), the tail extrapolated with a shape of
            # far_shape / sqrt(its excesses and the prior's), scale mean_excess from there.
            knee = max(p.surprise_far_knee * mean_excess, far[0])
            far_shape = min(p.surprise_far_shape / math.sqrt(exceed + p.surprise_prior_count), p.surprise_xi_max)
            if abs(z) - u > knee and far_shape > shape:
                return (tail_of(u + knee, b, excesses, rows, slot_rows, shape)
                        + math.log1p(far_shape * (abs(z) - u - knee) / mean_excess) / far_shape / math.log(10))
        if shape > 0:  # a generalised Pareto tail of that shape and mean excess
            excess = math.log1p(shape * (abs(z) - u) / (mean_excess * (1 - shape))) / shape
            return -math.log10(share) + excess / math.log(10)
        return -math.log10(share) + (abs(z) - u) / mean_excess / math.log(10)

    shaping: list[float] = []  # the excesses of readings that were no anomaly: the tail's shape
    # The regime z's own tail (learnt as the series' own is), until row `adopt`.
    r_excesses: list[tuple[float, float, int]] = []
    r_shaping: list[float] = []
    r_slot_rows: dict[int, int] = {}
    r_rows = 0
    lately = r_lately = 0.0  # the running share of readings past u (the regime z's own, until `adopt`)
    explained, calm = False, 0
    for index, (z, nats) in enumerate(zip(point, flat_nats, strict=True)):
        b = 0 if slots is None else slots[index]
        if index == adopt and not math.isnan(z) and (sum(e for _, e, _ in r_excesses) / max(r_rows, 1)
                                                     <= p.surprise_adopt_ratio
                                                     * sum(e for _, e, _ in excesses) / max(rows, 1)):
            excesses, shaping, slot_rows, rows = list(r_excesses), list(r_shaping), dict(r_slot_rows), r_rows
            lately = r_lately
        shape = shape_of(shaping)
        heavy = lately >= p.surprise_far_share * share0 or (
            p.surprise_far_lone > 0 and lone_lately >= p.surprise_far_share * lone0)
        best = nats / math.log(10) - p.surprise_flat_offset if nats > 0 else 0.0
        d = 0.0 if drift is None else drift[index]
        calm = 0 if d > 0 else calm + 1
        explained = explained and calm <= p.surprise_drift_grace  # an accepted change explains the drift after it
        if d > 0 and not explained:
            drifted = _normal_tail_log10(d) - p.surprise_drift_offset
            best = max(best, drifted)
            if drifted >= p.surprise_drift_accept:  # reported on this row: from the next, the new normal
                explained, calm = True, 0
        if math.isnan(z):
            out.append(max(best, 0.0))
            continue
        zp = z - bias
        candidates = [tail(zp, b)]
        if len(history) >= p.surprise_fast_rows:
            candidates.append(p.surprise_hazard + tail(z - statistics.median(history[-p.surprise_fast_rows:]), b))
        # The bias may explain a reading, not accuse one within u of the forecasters.
        plain = _normal_tail_log10(z) if abs(z) <= u else math.inf
        best = max(best, min(candidates + [plain]))
        zc = max(-p.cusum_h / 2, min(p.cusum_h / 2, zp))
        lag_product += p.cusum_rho_alpha * (zc * previous - lag_product)
        energy += p.cusum_rho_alpha * (zc * zc - energy)
        rho = max(0.0, min(0.95, lag_product / max(energy, 1e-12)))
        step = zc * math.sqrt((1 - rho) / (1 + rho))
        rho_run = rho
        if run_slots:  # never below the series' own; the slot's shrunk towards it
            n_b = slot_n.get(b, 0)
            seen = min(n_b, 1 / p.surprise_run_slot_alpha)
            w = p.surprise_run_slot_rows
            slot_rho = ((slot_lag.get(b, 0.0) * seen + lag_product * w)
                        / max(slot_energy.get(b, 0.0) * seen + energy * w, 1e-12))
            rho_run = max(rho, min(0.95, max(0.0, slot_rho)))
            a = max(p.surprise_run_slot_alpha, 1 / (n_b + 1))
            slot_lag[b] = slot_lag.get(b, 0.0) + a * (zc * previous - slot_lag.get(b, 0.0))
            slot_energy[b] = slot_energy.get(b, 0.0) + a * (zc * zc - slot_energy.get(b, 0.0))
            slot_n[b] = n_b + 1
        previous = zc
        upper = max(0.0, upper + step - p.cusum_k)
        lower = max(0.0, lower - step - p.cusum_k)
        run_up = run_up + [zp] if upper > 0 else []
        run_down = run_down + [zp] if lower > 0 else []
        best = max(best, 2 * p.cusum_k * max(upper, lower) / math.log(10) - p.surprise_shift_offset)
        for width in (2, 3):  # runs: all of the last `width` readings past c on this side
            last = corrected[-(width - 1):] + [zp]
            if len(last) == width and all(v * zp > 0 and abs(v) > u for v in last):
                best = max(best, min(tail(min(abs(v) for v in last), b), plain) * (1 + (width - 1) * (1 - rho_run)))
        x = math.nan if values is None else values[index]
        if not math.isnan(x) and not math.isnan(last_value):
            square = (x - last_value) ** 2
            mine = usual_slot.get(b, 1.0)
            n_b = taught.get(b, 0)
            if steps >= p.surprise_var_warmup:
                usual = (mine * n_b + usual_all * p.surprise_var_slot_rows) / (n_b + p.surprise_var_slot_rows)
                usual = max(usual, p.surprise_var_floor * usual_all, 1e-12)
                q = min(square / usual, p.surprise_var_clip ** 2)
                if p.surprise_far_lone > 0:  # was the previous reading far from both neighbours, on one side?
                    step_out = last_value - x
                    if not math.isnan(step_in):
                        lone = step_in * step_out > 0 and min(abs(step_in), abs(step_out)) > p.surprise_far_lone * \
                            math.sqrt(usual)
                        lone_seen += 1
                        lone_lately += max(1 / max(p.surprise_far_rows, 1), 1 / lone_seen) * (float(lone) - lone_lately)
                    step_in = -step_out
                ratio = p.surprise_var_ratio
                if square <= p.surprise_var_grid ** 2 * smallest:  # one step of the resolution: never evidence
                    q = min(q, math.log(ratio) / (1 - 1 / ratio))  # for the larger spread
                var_sum = max(0.0, var_sum + 0.5 * q * (1 - 1 / ratio) - 0.5 * math.log(ratio))
                var_run = var_run + [q] if var_sum > 0 else []
                best = max(best, var_sum / math.log(10) - p.surprise_var_offset)
                if var_sum >= p.surprise_var_h:  # accepted: the run's mean ratio is the new usual spread
                    gain = sum(var_run) / len(var_run)
                    usual_all *= gain
                    usual_slot = {key: v * gain for key, v in usual_slot.items()}
                    var_sum, var_run = 0.0, []
                else:
                    square = min(square, p.surprise_var_clip ** 2 * usual)
                    usual_all += p.surprise_var_alpha * (square - usual_all)
                    usual_slot[b] = mine + max(p.surprise_var_slot_alpha, 1 / (n_b + 1)) * (square - mine)
                    taught[b] = n_b + 1
            else:  # start-up: plain means
                usual_all += (square - usual_all) / (steps + 1)
                usual_slot[b] = mine + (square - mine) / (n_b + 1)
                taught[b] = n_b + 1
            steps += 1
            if x != last_value:
                smallest = min(smallest, (x - last_value) ** 2)
        if not math.isnan(x):
            last_value = x
        if upper >= p.cusum_h or lower >= p.cusum_h:
            explained, calm = True, 0
            run = run_up if upper >= p.cusum_h else run_down
            bias += sum(run) / len(run)
            upper = lower = 0.0
            run_up, run_down = [], []
        else:
            bias += p.surprise_bias_alpha * max(-u, min(u, zp))
        out.append(best)
        # An anomaly (its own surprise past surprise_learn_max) teaches the tail with a smaller weight.
        anomaly = tail(zp, b) >= p.surprise_learn_max
        weight = p.surprise_learn_weight if anomaly else 1.0
        own = min(abs(zp) - u, p.surprise_excess_cap)
        if anomaly and p.surprise_learn_cap < math.inf:  # the excess where its tail reaches surprise_learn_cap
            own = _where_tail_reaches(lambda e, b=b: tail(u + e, b, far=False), p.surprise_learn_cap, own)
        rows += 1
        lately += max(1 / max(p.surprise_far_rows, 1), 1 / rows) * ((1.0 if abs(zp) > u else 0.0) - lately)
        slot_rows[b] = slot_rows.get(b, 0) + 1
        if abs(zp) > u:
            excesses.append((weight, weight * own, b))
            if not anomaly:
                shaping.append(min(abs(zp) - u, p.surprise_excess_cap))
        if shadow is not None and index < adopt and not math.isnan(shadow[index]):
            zr = shadow[index]
            r_shape = shape_of(r_shaping)

            def regime_tail(z: float, b: int = b, r_shape: float = r_shape, r_rows: int = r_rows) -> float:
                return tail_of(z, b, r_excesses, r_rows, r_slot_rows, r_shape)

            anomaly = regime_tail(zr) >= p.surprise_learn_max
            weight = p.surprise_learn_weight if anomaly else 1.0
            own = min(abs(zr) - u, p.surprise_excess_cap)
            if anomaly and p.surprise_learn_cap < math.inf:
                own = _where_tail_reaches(lambda e: regime_tail(u + e), p.surprise_learn_cap, own)
            r_rows += 1
            r_lately += max(1 / max(p.surprise_far_rows, 1), 1 / r_rows) * ((1.0 if abs(zr) > u else 0.0) - r_lately)
            r_slot_rows[b] = r_slot_rows.get(b, 0) + 1
            if abs(zr) > u:
                r_excesses.append((weight, weight * own, b))
                if not anomaly:
                    r_shaping.append(min(abs(zr) - u, p.surprise_excess_cap))
        history.append(z)
        corrected.append(zp)
    return out


def hysteresis(score: list[float], p: DetectorParams, hold: tuple[list[float], ...] | None = None) -> list[bool]:
    """rules.Hysteresis.step for one series, from its docstring: open after confirm_samples known scores in a row
    at or above open_score (at once at critical_score), close after clear_samples known scores in a row below
    clear_score on which it is not held. hold = (values, profile, bias, scale): an open incident is held while
    the running mean (weight hold_alpha) of (value - profile - bias) / scale, with bias and scale as they were at
    the last calm row before it opened, calibrates to clear_score or more; at most hold_max_samples rows in a row."""
    from analytics.detectors.base import calibrate

    active, pending, calm, held_for = False, 0, 0, 0
    frozen_bias = frozen_scale = departure = math.nan
    out = []
    for t, s in enumerate(score):
        known = not math.isnan(s)
        if known:
            pending = pending + 1 if s >= p.open_score and not active else 0
        opening = not active and known and s >= p.open_score and (pending >= p.confirm_samples
                                                                   or s >= p.critical_score)
        quiet = known and active and s < p.clear_score
        if hold:
            values, profile, bias, scale = hold
            with np.errstate(invalid="ignore", divide="ignore"):
                now = float((np.float64(values[t]) - profile[t] - frozen_bias) / np.float64(frozen_scale))
            if math.isnan(departure):
                departure = now
            elif not math.isnan(now):
                departure += p.hold_alpha * (now - departure)
            held = quiet and float(calibrate(np.array(departure), p)) >= p.clear_score
            held_for = held_for + 1 if held else 0
            quiet = quiet and (not held or held_for > p.hold_max_samples)
        if known and active:
            calm = calm + 1 if quiet else 0
        closing = active and calm >= p.clear_samples
        active = (active or opening) and not closing
        if opening or closing:
            calm = 0
        if opening:
            pending = 0
        if hold:
            if known and not active and s < p.clear_score:
                frozen_bias, frozen_scale = hold[2][t], hold[3][t]
            if opening or closing:
                held_for, departure = 0, math.nan
        out.append(active)
    return out


def regime_point(x: list[float], point: list[float], slot: list[int], p: DetectorParams) -> list[float]:
    """detectors.regimes.regime_point, one reading at a time: the point z, or once the series is bursty (two
    regimes apart that forecast better than one quick level and than the time of day) the z against the regime
    the reading is likelier under."""
    return regimes(x, point, slot, p, 0)[0]


def regimes(x: list[float], point: list[float], slot: list[int], p: DetectorParams,
            least_rows: int) -> tuple[list[float], list[float], int]:
    """detectors.regimes.regimes: regime_point's z; the z against the likelier regime wherever the second regime
    has regime_confirm readings (NaN elsewhere); the first row judged against the regimes with least_rows such z
    before it (-1: none)."""
    from analytics.detectors import regimes as r

    def log_normal(v: float, mean: float, variance: float) -> float:
        return -0.5 * (v - mean) ** 2 / variance - 0.5 * math.log(variance) - 0.5 * math.log(2 * math.pi)

    def learn(v: float, level: float, var: float, spread: float, n: float, clip: float) -> tuple[float, float]:
        e, a = v - level, max(r._ALPHA, 1 / n)
        if clip <= 0:
            return level + a * e, var + a * (e * e - var)
        c = clip * clip * spread
        return level + a * max(min(e, math.sqrt(c)), -math.sqrt(c)), var + a * (min(e * e, c) - var)

    out = list(point)
    shadow = [math.nan] * len(point)
    adopt = -1
    level, var, count = [math.nan, math.nan], [0.0, 0.0], [0.0, 0.0]
    share, idle, gain, hour_gain, bursty = 1.0, 0, 0.0, 0.0, False
    quick = quick_var = math.nan
    hours: dict[int, list[float]] = {}
    resolution, last, run = math.inf, math.nan, 0
    for t, v in enumerate(x):
        if math.isnan(v):
            continue
        run = run + 1 if v == last else 0
        repeat = run >= r._STUCK_RUN
        if not math.isnan(last) and v != last:
            resolution = min(resolution, abs(v - last))
        last = v
        floor = max(resolution * resolution / 16 if resolution < math.inf else 0.0, 1e-12 * v * v, 1e-300)
        if math.isnan(level[0]):
            level[0] = quick = v
            count[0] = 1.0
            continue
        if count[0] < 2:
            var[0] = quick_var = max((v - level[0]) ** 2, floor)
        v0 = max(var[0], floor)
        quick_ll = log_normal(v, quick, max(quick_var, floor))
        err = v - quick
        quick_var += r._QUICK_ALPHA * (min(err * err, 16 * r._CLIP ** 2 * max(quick_var, floor)) - quick_var)
        quick += r._QUICK_ALPHA * err
        hour_ll = math.nan
        if slot[t] not in hours:
            hours[slot[t]] = [v, max(quick_var, floor)]
        else:
            h = hours[slot[t]]
            hv = max(h[1], floor)
            hour_ll = log_normal(v, h[0], hv)
            h[1] += r._SLOT_ALPHA * (min((v - h[0]) ** 2, 16 * r._CLIP ** 2 * hv) - h[1])
            h[0] += r._SLOT_ALPHA * (v - h[0])
        if math.isnan(level[1]):
            if count[0] >= 3 and abs(v - level[0]) > p.regime_separation * math.sqrt(v0):
                level[1], var[1], count[1], idle, share = v, v0, 1.0, 0, 1 - r._RUNNING_ALPHA
            elif not repeat:
                count[0] += 1
                level[0], var[0] = learn(v, level[0], var[0], v0, count[0], r._CLIP if count[0] > 3 else 0.0)
            continue
        v1 = max(var[1], floor)
        lik = [math.log(max(share, 1e-3)) + log_normal(v, level[0], v0),
               math.log(max(1 - share, 1e-3)) + log_normal(v, level[1], v1)]
        top = max(lik)
        mixture_ll = top + math.log(math.exp(lik[0] - top) + math.exp(lik[1] - top))
        gain += r._RUNNING_ALPHA * (mixture_ll - quick_ll - gain)
        if not math.isnan(hour_ll):
            hour_gain += r._RUNNING_ALPHA * (mixture_ll - hour_ll - hour_gain)
        k = 0 if lik[0] >= lik[1] else 1
        vk = v0 if k == 0 else v1
        apart = count[1] >= p.regime_confirm and abs(level[1] - level[0]) > p.regime_separation * math.sqrt(max(v0, v1))
        held = (count[1] >= p.regime_confirm and hour_gain > p.regime_hold * p.regime_hour_gain
                and abs(level[1] - level[0]) > p.regime_hold * p.regime_separation * math.sqrt(max(v0, v1)))
        bursty = (apart and (bursty or (gain > p.regime_gain and hour_gain > p.regime_hour_gain))) or (bursty and held)
        ready = adopt < 0 and sum(not math.isnan(z) for z in shadow[:t]) >= least_rows
        if bursty and not math.isnan(point[t]) and ready:
            adopt = t
        if count[1] >= p.regime_confirm and not math.isnan(point[t]):
            shadow[t] = (v - level[k]) / math.sqrt(vk)
        if bursty and not math.isnan(point[t]):
            out[t] = (v - level[k]) / math.sqrt(vk)
        if repeat:  # a stuck run's repeats teach no regime
            continue
        count[k] += 1
        level[k], var[k] = learn(v, level[k], var[k], vk, count[k], r._CLIP)
        share += r._RUNNING_ALPHA * ((1.0 if k == 0 else 0.0) - share)
        idle = 0 if k == 1 else idle + 1
        if count[1] < p.regime_confirm and idle > r._FORGET:
            level[1], var[1], count[1], share = math.nan, 0.0, 0.0, 1.0
    return out, shadow, adopt


def slide_profile(times: list[float], profile: list[float], scale: list[float], z: list[float],
                  plain_z: list[float], p: DetectorParams) -> tuple[list[float], list[float]]:
    """The point z's profile z and plain z, one series, from the docstring of kernels.profile_slides: a reading
    past profile_slide_gain is judged against the profile at the time up to profile_slide_ms earlier or later
    whose value is nearest it, where that brings its z at least profile_slide_gain nearer 0."""
    z_out, plain_out = list(z), list(plain_z)
    for t, zt in enumerate(z):
        if not abs(zt) > p.profile_slide_gain or math.isnan(profile[t]) or not scale[t] > 0:
            continue
        moves = [(profile[t] - profile[j]) / scale[t] for j in range(len(z))
                 if j != t and abs(times[j] - times[t]) <= p.profile_slide_ms and not math.isnan(profile[j])]
        if moves:
            move = min(moves, key=lambda m: abs(zt + m))
            if abs(zt + move) + p.profile_slide_gain <= abs(zt):
                z_out[t], plain_out[t] = zt + move, plain_z[t] + move
    return z_out, plain_out
