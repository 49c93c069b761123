"""The slow, obviously correct validation of a telemetry message: every value checked on its own,
in sorted order, the way edge/contract.py did it before its one-pass check of the common case
(`_all_good`). The property tests in test_contract.py hold the contract to it, outcome for outcome."""

import math

from edge import contract
from edge.contract import ContractError


def validate_telemetry(body, kind, now_ms):
    if kind not in contract.KINDS:
        raise ContractError("unknown_kind", repr(kind)[:40])
    contract._check_envelope(body, "message")
    seq = body.get("seq")
    if not _is_int(seq) or not 0 <= seq <= contract.MAX_SEQ:
        raise ContractError("bad_seq", repr(seq)[:40])
    fw = body.get("fw")
    if type(fw) is not str or not 0 < len(fw) <= contract.MAX_FW_LEN:
        raise ContractError("bad_fw", repr(fw)[:40])
    boot = contract._boot(body)
    hist = body.get("hist", False)
    if type(hist) is not bool:
        raise ContractError("bad_type", "hist must be true or false")
    dropped = body.get("dropped", 0)
    if not _is_int(dropped) or not 0 <= dropped <= contract.MAX_SEQ:
        raise ContractError("bad_type", "dropped must be a count")
    rows = body.get("r")
    if type(rows) is not list or not rows:
        raise ContractError("bad_type", "r must be a non-empty list of samples")
    if len(rows) > contract.MAX_SAMPLES:
        raise ContractError("oversized", f"{len(rows)} samples > {contract.MAX_SAMPLES}")
    catalogue = contract.KINDS[kind]
    samples, rejects = [], []
    for row in rows:
        _check_sample(row, catalogue, now_ms, samples, rejects)
    return contract.Batch(seq, fw, hist, dropped, samples, rejects, boot)


def _is_int(value):
    return type(value) is int


def _check_sample(row, catalogue, now_ms, samples, rejects):
    if type(row) is not list or not 2 <= len(row) <= 3:
        raise ContractError("bad_type", "a sample is [t_ms, {metric: value}, quality?]")
    t_ms, values = row[0], row[1]
    quality = row[2] if len(row) == 3 else 0
    if not _is_int(t_ms) or t_ms < 0:
        raise ContractError("bad_timestamp", repr(t_ms)[:40])
    if type(values) is not dict or not values or len(values) > contract.MAX_METRICS_PER_SAMPLE:
        raise ContractError("bad_type", "sample values must be a non-empty object")
    if not _is_int(quality) or quality & ~contract.Q_ALL:
        raise ContractError("bad_quality", repr(quality)[:20])
    time_reason = None
    if t_ms > now_ms + contract.MAX_FUTURE_MS:
        time_reason = "future_timestamp"
    elif t_ms < now_ms - contract.MAX_AGE_MS:
        time_reason = "stale_timestamp"
    good = {}
    for metric in sorted(values):
        value = values[metric]
        reason = time_reason or _reading_problem(metric, value, catalogue)
        if reason:
            rejects.append((t_ms, str(metric)[:64], contract._printable(value), reason))
        else:
            good[metric] = float(value)
    if good:
        samples.append((t_ms, good, quality))


def _reading_problem(metric, value, catalogue):
    if metric not in catalogue:
        return "unknown_metric"
    if type(value) is not int and type(value) is not float:
        return "bad_type"
    if not math.isfinite(value):
        return "not_finite"
    lo, hi = catalogue[metric][1], catalogue[metric][2]
    if not lo <= value <= hi:
        return "out_of_bounds"
    return None
