"""Ring buffers for many series of one metric, stored as one (series x samples) block.

Each row holds one series' latest `capacity` samples in time order, newest
last, padded on the left with NaN values (and time 0, so times never
decrease along a row). Appending shifts a row left: a memcpy of one row,
and every series of a metric is then ready to score as one array.
"""

import copy
import math
import mmap
import platform
import uuid
import weakref

import numpy as np

GROWTH = 16  # row blocks grow by 1/GROWTH of their rows (at least their initial rows): ~3 % slack on average
GROWTH_RESERVED = 128  # the same where they grow in their reserved mappings (grown): a growth copies nothing
# there, so a finer step costs only more, smaller fills, and the rows allocated ahead (filled, so resident) are
# ~0.4 % instead of ~3 %


def growth(rows: int) -> int:
    """Rows a block of `rows` rows grows by (at least the caller's minimum): a 1/128 where the mappings are
    granted, a 1/16 where they are refused (each growth is then a copy of the whole block)."""
    return rows // (GROWTH_RESERVED if _mapping_granted else GROWTH)


RESERVE_FROM_BYTES = 1 << 20  # arrays smaller than this grow by concatenation (a copy of under 1 MB)
RESERVE_ROWS = 1 << 18  # rows of address space a growing array reserves (262,144 series of a metric; past it: 4x)
# MAP_NORESERVE (Python exposes it from 3.13 only; 0x4000 on x86-64 and arm64): the reservation is address
# space, not memory the kernel must promise. Elsewhere 0: the mapping is then counted whole, or refused (below).
_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if platform.machine() in ("x86_64", "AMD64", "aarch64") else 0)
_RESERVED: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()  # id -> flat mapping
_mapping_granted = True  # False once the system refused one (growth() then steps as for concatenations)


def _reserve(rows: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """A (rows, *shape) array over a fresh anonymous mapping (zeros, no page resident before it is written), or
    None where the system refuses the mapping (a strict overcommit policy, an address-space limit)."""
    size = rows * math.prod(shape) * dtype.itemsize
    try:
        mapping = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE)
    except (OSError, ValueError, OverflowError):
        global _mapping_granted  # noqa: PLW0603 - one process-wide fact: the system's policy
        _mapping_granted = False
        return None
    flat = np.frombuffer(mapping, dtype=dtype, count=rows * math.prod(shape))
    _RESERVED[id(flat)] = flat
    return flat.reshape(rows, *shape)


def grown(array: np.ndarray, rows: int, fill: float | int) -> np.ndarray:
    """`array` with `rows` rows (the block's per-series arrays grow by rows): its rows, then new ones of `fill`.

    Why not a concatenation: that holds the old array and the new one at once, a whole copy of the block beside
    the old one for a moment (7-10 KB a series above the engine's steady memory while the fleet's series are
    built, at 100,000 series a whole metric's block). Here the first growth moves the rows into an anonymous
    mapping with room for `RESERVE_ROWS` rows (address space: a page becomes memory when it is first written),
    and every later growth is a longer view of the same mapping: nothing copied, nothing freed, only the new
    rows written (the rows allocated ahead among them). The old array object
    stays valid and shows the same rows, as the engine changes them in place (a checkpoint's copy on write,
    analytics.statecopy, copies a row in keep() before any change, whichever object it went through).
    """
    old = array.shape[0]
    if rows <= old:
        return array
    if rows * math.prod(array.shape[1:]) * array.dtype.itemsize < RESERVE_FROM_BYTES:  # a small copy: as before
        return np.concatenate([array, np.full((rows - old, *array.shape[1:]), fill, dtype=array.dtype)])
    owner = array.base
    if owner is not None and _RESERVED.get(id(owner)) is owner and array.flags.c_contiguous \
            and array.ctypes.data == owner.ctypes.data and owner.dtype == array.dtype \
            and rows * math.prod(array.shape[1:]) <= owner.size:
        out = owner.reshape(-1, *array.shape[1:])[:rows]
    else:
        full = _reserve(max(RESERVE_ROWS, 4 * rows), array.shape[1:], array.dtype)
        if full is None:  # the concatenation, as before
            return np.concatenate([array, np.full((rows - old, *array.shape[1:]), fill, dtype=array.dtype)])
        full[:old] = array
        out = full[:rows]
    out[old:] = fill
    return out


def row_blocks(n_rows: int, block_rows: int) -> list[slice]:
    """Consecutive slices of at most block_rows rows (one slice of all when block_rows is 0): a pass over many
    series in blocks, so its temporaries are bounded by the block, not the fleet."""
    size = block_rows if block_rows > 0 else max(n_rows, 1)
    return [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


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
        # Per row, the samples ever appended; with `lineage` (this block's own name), what lets a checkpoint
        # save the samples appended since the previous one instead of the whole rows (analytics.statetails).
        # Rows change only by append() once a block is in use: the counts then say what changed.
        self.appended = np.zeros(initial_rows, dtype=np.int64)
        self.lineage = uuid.uuid4().hex

    def row(self, key: tuple[str, ...]) -> int:
        """The row of a series, created on first sight."""
        row = self.row_of.get(key)
        if row is not None:
            return row
        row = len(self.keys)
        if row == self.values.shape[0]:
            grow = max(self.initial_rows, growth(row))  # little slack at 100,000 series
            self.values = grown(self.values, row + grow, np.nan)
            self.times = grown(self.times, row + grow, 0)
        if row >= self.appended.size:
            self.appended = grown(self.appended, self.values.shape[0], 0)
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
        self.appended[row] += n
        return n

    def count(self, row: int) -> int:
        return int((~np.isnan(self.values[row])).sum())


class CoarseHistory:
    """Per series, bucket means over days for the daily profile: fine for the recent days, coarse for older ones.

    The fine ring buffer of a fast series (10-second readings, 1,440 samples:
    four hours) cannot hold the previous days the daily profile compares
    with; these bucket means can, in bounded memory. A bucket closes when a
    reading of a later bucket arrives. Two tiers, each a ring indexed by the
    bucket's number (so a bucket's time is implied, never stored):

    - fine: the newest `fine_capacity` buckets of `bucket_ms` (float32 means:
      4 bytes a bucket; the default, two days of minutes, is the peer
      check's window and the profile's yesterday and the day before);
    - coarse: older buckets, `capacity` in all, folded into `coarse_ms`
      buckets (the mean of the fine means leaving the fine tier, 4 bytes
      each): the profile's older days at a coarser grain.

    A bucket stands at its middle (a series slower than the bucket is found
    within the bucket's tolerance, as lookups allow). The open bucket keeps
    float64 sums (value, time offset, count) until it closes.
    """

    def __init__(self, bucket_ms: int, capacity: int, fine_capacity: int | None = None, coarse_ms: int | None = None):
        if bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        if capacity < 1:
            raise ValueError("a coarse history needs room for at least 1 bucket")
        self.bucket_ms = bucket_ms
        self.capacity = capacity
        self.fine_capacity = min(capacity, fine_capacity or capacity)
        self.coarse_ms = coarse_ms or 10 * bucket_ms
        if self.coarse_ms % bucket_ms or self.coarse_ms < bucket_ms:
            raise ValueError("coarse_ms must be a multiple of bucket_ms")
        older_ms = (capacity - self.fine_capacity) * bucket_ms
        self.coarse_capacity = math.ceil(older_ms / self.coarse_ms)
        self.fine = np.full((0, self.fine_capacity), np.nan, dtype=np.float32)
        self.fine_newest = np.full(0, -1, dtype=np.int64)  # per row: the newest fine bucket number, -1: none
        self.coarse = np.full((0, self.coarse_capacity), np.nan, dtype=np.float32)
        self.coarse_newest = np.full(0, -1, dtype=np.int64)  # per row: the newest closed coarse bucket
        self.coarse_open = np.full(0, -1, dtype=np.int64)  # per row: the coarse bucket being folded into
        self.coarse_sums = np.zeros((0, 3))  # per row: sum of fine means folded, their count, their offsets' sum
        self.open_bucket = np.full(0, -1, dtype=np.int64)
        self.sums = np.zeros((0, 3))  # per row: sum of values, sum of (time - bucket start), count
        self.rows = 0  # rows in use (the fine block's rows that ever had a reading here)

    ARRAYS = ("fine", "fine_newest", "coarse", "coarse_newest", "coarse_open", "coarse_sums", "open_bucket", "sums")

    def nbytes(self) -> int:
        """Bytes allocated for the rows (what a series costs here, times the rows allocated)."""
        return sum(getattr(self, name).nbytes for name in self.ARRAYS)

    def copy(self) -> "CoarseHistory":
        """A copy of the rows in use that later add() calls cannot change (a checkpoint's snapshot)."""
        other = copy.copy(self)
        for name in self.ARRAYS:
            setattr(other, name, getattr(self, name)[:self.rows].copy())
        return other

    def _ensure_rows(self, n_rows: int) -> None:
        allocated = self.open_bucket.size
        if n_rows > allocated:
            grow = max(n_rows - allocated, 64, growth(allocated))
            for name in self.ARRAYS:
                array = getattr(self, name)
                fill = np.nan if array.dtype.kind == "f" and array.ndim == 2 and name not in ("sums", "coarse_sums") \
                    else (-1 if array.dtype.kind == "i" else 0)
                setattr(self, name, grown(array, allocated + grow, fill))
        self.rows = max(self.rows, n_rows)

    # ------------------------------------------------------------ input

    def add(self, row: int, times: np.ndarray, values: np.ndarray) -> None:
        """Readings of one series, in time order and newer than the ones before (as SeriesBlock.append keeps)."""
        self._ensure_rows(row + 1)
        times, values = np.asarray(times, dtype=np.int64), np.asarray(values, dtype=np.float64)
        buckets = times // self.bucket_ms
        keep = buckets >= self.open_bucket[row]  # older than the open bucket: its bucket has closed already
        times, values, buckets = times[keep], values[keep], buckets[keep]
        if buckets.size == 0:
            return
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        counts = np.diff(np.r_[starts, buckets.size])
        value_sums = np.add.reduceat(values, starts)
        offset_sums = np.add.reduceat(times - buckets * self.bucket_ms, starts)
        for bucket, total, offset, count in zip(buckets[starts].tolist(), value_sums.tolist(),
                                                offset_sums.tolist(), counts.tolist(), strict=True):
            if bucket != self.open_bucket[row]:
                self._close(row)
                self.open_bucket[row] = bucket
            self.sums[row] += (total, offset, count)

    def _close(self, row: int) -> None:
        total, _offset, count = self.sums[row]
        if count:
            self._store_fine(row, int(self.open_bucket[row]), total / count)
        self.sums[row] = 0.0

    def _store_fine(self, row: int, bucket: int, value: float) -> None:
        size, newest = self.fine_capacity, int(self.fine_newest[row])
        if newest >= 0:
            # The buckets whose slots are taken now leave the fine tier: folded into the coarse one, in order.
            leaving = np.arange(newest + 1 - size, min(bucket - size, newest) + 1)
            if self.coarse_capacity and leaving.size:
                old = self.fine[row, leaving % size]
                for gone, mean in zip(leaving[~np.isnan(old)].tolist(), old[~np.isnan(old)].tolist(), strict=True):
                    self._fold(row, gone, mean)
            gap = np.arange(newest + 1, bucket)[-size:]
            self.fine[row, gap % size] = np.nan
        self.fine[row, bucket % size] = value
        self.fine_newest[row] = bucket

    def _fold(self, row: int, bucket: int, mean: float) -> None:
        coarse = bucket * self.bucket_ms // self.coarse_ms
        if coarse != self.coarse_open[row]:
            total, count, _ = self.coarse_sums[row]
            if count:
                self._store_coarse(row, int(self.coarse_open[row]), total / count)
            self.coarse_open[row] = coarse
            self.coarse_sums[row] = 0.0
        self.coarse_sums[row] += (mean, 1.0, bucket * self.bucket_ms - coarse * self.coarse_ms)

    def _store_coarse(self, row: int, coarse: int, value: float) -> None:
        size, newest = self.coarse_capacity, int(self.coarse_newest[row])
        if newest >= 0:
            gap = np.arange(newest + 1, coarse)[-size:]
            self.coarse[row, gap % size] = np.nan
        self.coarse[row, coarse % size] = value
        self.coarse_newest[row] = coarse

    # ------------------------------------------------------------ output

    def window(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """The closed buckets of these rows, oldest first: (values, times, tolerance_ms).

        values (float64) and times (int64) are (rows, coarse + 1 + fine
        columns), the buckets with a mean right-aligned in time order and NaN
        (time 0) on their left; tolerance_ms is each entry's bucket (an array
        of the same shape when there is a coarse tier, else bucket_ms): how
        far from a wanted time an entry still stands for it.
        """
        rows = np.asarray(rows, dtype=np.int64)
        self._ensure_rows(int(rows.max()) + 1 if rows.size else 0)
        fine_values, fine_times = self._tier(self.fine, self.fine_newest, rows, self.bucket_ms)
        if not self.coarse_capacity:
            return fine_values, fine_times, float(self.bucket_ms)
        coarse_values, coarse_times = self._tier(self.coarse, self.coarse_newest, rows, self.coarse_ms)
        total, count, offsets = self.coarse_sums[rows].T
        with np.errstate(invalid="ignore", divide="ignore"):
            open_value = np.where(count > 0, total / count, np.nan)
            open_time = self.coarse_open[rows] * self.coarse_ms + np.nan_to_num(offsets / count).astype(np.int64) \
                + self.bucket_ms // 2
        values = np.concatenate([coarse_values, open_value[:, None], fine_values], axis=1)
        times = np.concatenate([coarse_times, open_time[:, None], fine_times], axis=1)
        tolerance = np.full(values.shape, float(self.bucket_ms), dtype=np.float32)
        tolerance[:, :self.coarse_capacity + 1] = self.coarse_ms
        # Right-align what holds a mean, in time order (a stable sort of the empty-or-not flags).
        order = np.argsort(~np.isnan(values), axis=1, kind="stable")
        values, times = np.take_along_axis(values, order, axis=1), np.take_along_axis(times, order, axis=1)
        times[np.isnan(values)] = 0
        return values, times, np.take_along_axis(tolerance, order, axis=1)

    @staticmethod
    def _tier(ring: np.ndarray, newest: np.ndarray, rows: np.ndarray, bucket_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """One tier of these rows laid out oldest first: (values as float64, the buckets' middles)."""
        size = ring.shape[1]
        buckets = newest[rows, None] - size + 1 + np.arange(size)
        values = np.take_along_axis(ring[rows], buckets % size, axis=1).astype(np.float64)
        values[newest[rows] < 0] = np.nan
        return values, buckets * bucket_ms + bucket_ms // 2

    def fine_grid(self, rows: np.ndarray, first: int, last: int, dtype: type = np.float64) -> np.ndarray:
        """The fine bucket means of these rows for buckets first..last (one column each), NaN where none; as
        `dtype` (float32: the means as kept, half the memory, exact in float64 again)."""
        buckets = np.arange(first, last + 1)
        rows = np.asarray(rows, dtype=np.int64)
        contiguous = rows.size and rows[-1] - rows[0] + 1 == rows.size and (np.diff(rows) == 1).all()
        ring = self.fine[rows[0]:rows[-1] + 1] if contiguous else self.fine[rows]  # a view: one copy, not two
        values = np.take(ring, buckets % self.fine_capacity, axis=1).astype(dtype, copy=False)
        newest = self.fine_newest[rows, None]
        values[(buckets > newest) | (buckets <= newest - self.fine_capacity)] = np.nan
        return values

    # ------------------------------------------------------------ from older files

    def fill_closed(self, values: np.ndarray, times: np.ndarray) -> None:
        """Rebuild the tiers from closed bucket means (rows, any): time > 0 and a value where there is one,
        times never decreasing along a row (as state files of version 1 to 3 kept them, one bucket an entry)."""
        self._ensure_rows(values.shape[0])
        for row in range(values.shape[0]):
            has = (times[row] > 0) & ~np.isnan(values[row])
            if has.any():
                self._fill_row(row, times[row][has] // self.bucket_ms, values[row][has])

    def _fill_row(self, row: int, buckets: np.ndarray, values: np.ndarray) -> None:
        newest, size = int(buckets[-1]), self.fine_capacity
        fine = buckets > newest - size
        self.fine[row, buckets[fine] % size] = values[fine]
        self.fine_newest[row] = newest
        if not self.coarse_capacity or fine.all():
            return
        older, older_values = buckets[~fine], values[~fine]
        coarse = older * self.bucket_ms // self.coarse_ms
        open_coarse = int(coarse[-1])
        now = coarse == open_coarse
        self.coarse_open[row] = open_coarse
        self.coarse_sums[row] = (older_values[now].sum(), now.sum(),
                                 (older[now] * self.bucket_ms - open_coarse * self.coarse_ms).sum())
        if now.all():
            return
        closed, inverse = np.unique(coarse[~now], return_inverse=True)
        means = np.bincount(inverse, older_values[~now]) / np.bincount(inverse)
        kept = closed > closed[-1] - self.coarse_capacity
        self.coarse[row, closed[kept] % self.coarse_capacity] = means[kept]
        self.coarse_newest[row] = closed[-1]
