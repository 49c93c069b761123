"""The engine's own figures, for the control room's operators and the benches: how late it scores, how long its
passes take, what each checkpoint cost.

Written to InfluxDB every `CITY_ANALYTICS_STATS_INTERVAL_S` as one `analytics_stats,worker=<mqtt user>` point:
every engine counter (messages, readings, state_saves, state_snapshot_ms, ...), the series held, and two lag
histograms as cumulative counters, so the quantiles of any window are the difference of two points:
  lag_le_<b>:  live messages scored within b seconds of their newest reading's time (the device's clock),
  wait_le_<b>: live messages scored within b seconds of their arrival at the engine (this host's clock);
with lag_count, lag_sum_s, lag_max_s and wait_max_s (the max since the previous point), passes, pass_ms_max
(the longest scoring pass since the previous point) and inbox (messages waiting for the next pass).

And one `analytics_checkpoint,worker=<mqtt user>` point per periodic save, when it is done: snapshot_ms (the
longest slice of the copy, taken between passes: the stream's longest wait for it), copy_span_ms (the copy's
beginning to its end, passes ran between), save_ms (writing beside the stream), size_bytes and written_bytes,
and the passes scored while it was copied and written with the longest of them (passes_during,
longest_pass_ms): a save that stalls scoring shows there.
"""

import threading
import time
from collections.abc import Iterable

from telemetry_shared.lineproto import escape_key

LAG_BUCKETS_S = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


def bucket_name(prefix: str, bound: float) -> str:
    """`lag_le_0_5`, `lag_le_60`, ...: the field of the histogram bucket with upper bound `bound` seconds."""
    return f"{prefix}_le_{str(bound).replace('.', '_')}"


class SelfStats:
    """Thread-safe: the worker thread records, a thread of its own writes."""

    def __init__(self, worker: str):
        self.worker = worker
        self.lock = threading.Lock()
        self.lag_counts = [0] * len(LAG_BUCKETS_S)
        self.wait_counts = [0] * len(LAG_BUCKETS_S)
        self.lag_count = 0
        self.lag_sum_s = 0.0
        self.lag_max_s = 0.0
        self.wait_max_s = 0.0
        self.passes = 0
        self.pass_ms_max = 0.0

    def scored(self, messages: Iterable[tuple[int, int]], now_ms: int) -> None:
        """Live messages scored at `now_ms`: each (newest reading's time, arrival), Unix ms."""
        with self.lock:
            for newest_ms, received_ms in messages:
                lag_s = max(0.0, (now_ms - newest_ms) / 1000)
                wait_s = max(0.0, (now_ms - received_ms) / 1000)
                self.lag_count += 1
                self.lag_sum_s += lag_s
                self.lag_max_s = max(self.lag_max_s, lag_s)
                self.wait_max_s = max(self.wait_max_s, wait_s)
                for i, bound in enumerate(LAG_BUCKETS_S):
                    if lag_s <= bound:
                        self.lag_counts[i] += 1
                    if wait_s <= bound:
                        self.wait_counts[i] += 1

    def pass_done(self, ms: float) -> None:
        with self.lock:
            self.passes += 1
            self.pass_ms_max = max(self.pass_ms_max, ms)

    def stats_line(self, counters: dict[str, int], gauges: dict[str, float], t_ms: int | None = None) -> str:
        """The `analytics_stats` point; the maxima start again after it."""
        t_ms = t_ms if t_ms is not None else int(time.time() * 1000)
        with self.lock:
            fields = {bucket_name("lag", b): n for b, n in zip(LAG_BUCKETS_S, self.lag_counts, strict=True)}
            fields |= {bucket_name("wait", b): n for b, n in zip(LAG_BUCKETS_S, self.wait_counts, strict=True)}
            fields |= {"lag_count": self.lag_count, "passes": self.passes}
            floats = {"lag_sum_s": self.lag_sum_s, "lag_max_s": self.lag_max_s, "wait_max_s": self.wait_max_s,
                      "pass_ms_max": float(self.pass_ms_max)}
            self.lag_max_s = self.wait_max_s = self.pass_ms_max = 0.0
        fields = {f"counter_{k}" if k in fields or k in floats else k: v for k, v in counters.items()} | fields
        parts = [f"{escape_key(k)}={int(v)}i" for k, v in sorted(fields.items())]
        parts += [f"{escape_key(k)}={float(v)!r}" for k, v in sorted((floats | gauges).items())]
        return f"analytics_stats,worker={escape_key(self.worker)} {','.join(parts)} {t_ms}"

    def checkpoint_line(self, snapshot_ms: float, save_ms: float, size_bytes: int, written_bytes: int,
                        passes_during: int, longest_pass_ms: float, copy_span_ms: float = 0.0,
                        t_ms: int | None = None) -> str:
        t_ms = t_ms if t_ms is not None else int(time.time() * 1000)
        return (f"analytics_checkpoint,worker={escape_key(self.worker)} snapshot_ms={float(snapshot_ms)!r},"
                f"copy_span_ms={float(copy_span_ms)!r},"
                f"save_ms={float(save_ms)!r},size_bytes={int(size_bytes)}i,written_bytes={int(written_bytes)}i,"
                f"passes_during={int(passes_during)}i,longest_pass_ms={float(longest_pass_ms)!r} {t_ms}")
