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
            grow = max(64, row)
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
