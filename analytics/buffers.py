"""Ring buffers for many series of one metric, stored as one (series x samples) block.

Each row holds one series' latest `capacity` samples in time order, newest
last, padded on the left with NaN values (and time 0, so times never
decrease along a row). Appending shifts a row left: a memcpy of one row,
and every series of a metric is then ready to score as one array.
"""

import numpy as np


class SeriesBlock:
    def __init__(self, capacity: int, initial_rows: int = 64):
        if capacity < 2:
            raise ValueError("a ring buffer needs room for at least 2 samples")
        self.capacity = capacity
        self.initial_rows = initial_rows
        self.values = np.full((initial_rows, capacity), np.nan)
        self.times = np.zeros((initial_rows, capacity), dtype=np.int64)
        self.keys: list[tuple[str, ...]] = []
        self.row_of: dict[tuple[str, ...], int] = {}
        self.rejected_out_of_order = 0

    def row(self, key: tuple[str, ...]) -> int:
        """The row of a series, created on first sight."""
        row = self.row_of.get(key)
        if row is not None:
            return row
        row = len(self.keys)
        if row == self.values.shape[0]:
            grow = max(self.initial_rows, row)  # doubling: at most twice the rows in use
            self.values = np.vstack([self.values, np.full((grow, self.capacity), np.nan)])
            self.times = np.vstack([self.times, np.zeros((grow, self.capacity), dtype=np.int64)])
        self.keys.append(key)
        self.row_of[key] = row
        return row

    def last_time(self, row: int) -> int:
        return int(self.times[row, -1])

    def append(self, row: int, times: np.ndarray, values: np.ndarray) -> int:
        """Append samples in time order; samples not newer than the row's last are refused (counted).

        Returns how many were appended.
        """
        order = np.argsort(times, kind="stable")
        times, values = np.asarray(times, dtype=np.int64)[order], np.asarray(values, dtype=np.float64)[order]
        newer = times > self.last_time(row)
        # Equal times within one batch: keep the last (a replay overwrites, as in InfluxDB).
        keep = newer & np.append(times[1:] != times[:-1], True)
        self.rejected_out_of_order += int((~newer).sum())
        times, values = times[keep][-self.capacity:], values[keep][-self.capacity:]
        n = times.size
        if n == 0:
            return 0
        self.values[row, :-n] = self.values[row, n:].copy()
        self.times[row, :-n] = self.times[row, n:].copy()
        self.values[row, -n:] = values
        self.times[row, -n:] = times
        return n

    def count(self, row: int) -> int:
        return int((~np.isnan(self.values[row])).sum())


class CoarseHistory:
    """Per series, the means of fixed time buckets (e.g. one minute) over a long span (e.g. eight days).

    The fine ring buffer of a fast series (10-second readings, 1,440 samples:
    four hours) cannot hold the previous days the daily profile compares
    with; these bucket means can, in bounded memory: `capacity` closed
    buckets per series (16 bytes each) plus one open bucket. A bucket closes
    when a reading of a later bucket arrives; its mean value is stored at the
    mean time of its readings, so a series slower than the bucket keeps its
    readings as they were.
    """

    def __init__(self, bucket_ms: int, capacity: int):
        if bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        self.bucket_ms = bucket_ms
        self.closed = SeriesBlock(capacity, initial_rows=4)  # long rows: start small, double as series come
        self.open_bucket = np.full(0, -1, dtype=np.int64)
        self.sums = np.zeros((0, 3))  # per row: sum of values, sum of (time - bucket start), count

    def window(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The closed buckets (values, times) of these rows, oldest first."""
        self._ensure_rows(int(rows.max()) + 1 if rows.size else 0)
        return self.closed.values[rows], self.closed.times[rows]

    def _ensure_rows(self, n_rows: int) -> None:
        while len(self.closed.keys) < n_rows:  # the closed block's rows are the fine block's rows
            self.closed.row((len(self.closed.keys),))

    def add(self, row: int, times: np.ndarray, values: np.ndarray) -> None:
        """Readings of one series, in time order and newer than the ones before (as SeriesBlock.append keeps)."""
        if row >= self.open_bucket.size:
            grow = max(64, row + 1 - self.open_bucket.size)
            self.open_bucket = np.concatenate([self.open_bucket, np.full(grow, -1, dtype=np.int64)])
            self.sums = np.vstack([self.sums, np.zeros((grow, 3))])
        for t_ms, value in zip(times.tolist(), values.tolist(), strict=True):
            bucket = t_ms // self.bucket_ms
            if bucket < self.open_bucket[row]:
                continue  # older than the open bucket: its bucket has closed already
            if bucket != self.open_bucket[row]:
                self._close(row)
                self.open_bucket[row] = bucket
            self.sums[row] += (value, t_ms - bucket * self.bucket_ms, 1.0)

    def _close(self, row: int) -> None:
        total, offset, count = self.sums[row]
        if count:
            start = int(self.open_bucket[row]) * self.bucket_ms
            self._ensure_rows(row + 1)
            self.closed.append(row, np.array([start + round(offset / count)]), np.array([total / count]))
        self.sums[row] = 0.0
