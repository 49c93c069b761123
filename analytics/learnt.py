"""What the streaming engine learnt from the readings, in one place: the part a restart must not lose.

`LearntState` holds every array and table the engine's scorers and its
incident lifecycle carry from one batch to the next. analytics.state saves
it and loads it whole (`save_state`, `load_state`); the engine swaps it in
with `AnalyticsEngine.restore`. Transient work (readings waiting for the next
scoring pass, the clock scorer's hysteresis, counters) lives in the engine
and its scorers, never here.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from analytics.buffers import CoarseHistory, SeriesBlock
from analytics.config import DetectorParams, EngineParams
from analytics.detectors.stream import StreamState
from analytics.incidents import Incident
from analytics.rules import Hysteresis


@dataclass
class LearntState:
    """The engine's learnt state. Rows of `history[m]` and `states[m]` are the rows of `blocks[m]`."""

    # metric -> ring buffer of its latest readings, one row per device
    blocks: dict[str, SeriesBlock]
    # per device: when its messages arrived (its pace, for the silence check) and how late against their newest
    # reading (the clock scorer's delays; analytics.clock)
    arrivals: SeriesBlock
    # metric -> coarse history (bucket means over days) that the daily profile reads
    history: dict[str, CoarseHistory] = field(default_factory=dict)
    # metric, or 'peer:<metric>' for the district check -> incident state per row
    states: dict[str, Hysteresis] = field(default_factory=lambda: defaultdict(Hysteresis))
    # device -> row of `silence`, the silence check's incident state
    silence_rows: dict[str, int] = field(default_factory=dict)
    silence: Hysteresis = field(default_factory=Hysteresis)
    # (device, 'readings' or a device-wide rule or 'night_flow') -> its open incident
    incidents: dict[tuple[str, str], Incident] = field(default_factory=dict)
    last_seen_ms: dict[str, int] = field(default_factory=dict)  # device -> when its last message arrived
    info: dict[str, tuple[str, str]] = field(default_factory=dict)  # device -> (kind, district), from the registry
    # per flow_lps row: the minimum night flow of earlier nights, oldest first (analytics.nightflow)
    night_history: np.ndarray = field(default_factory=lambda: np.full((0, 1), np.nan))
    last_night: int = -1  # the local day number of the last night window scored
    peer_scored: dict[str, int] = field(default_factory=dict)  # metric -> the last bucket fed to its peer check
    # metric -> the detectors' state carried between passes (detectors.stream), rows as blocks[m]; a metric or
    # a row without one is rebuilt from its buffer on its next pass
    streams: dict[str, StreamState] = field(default_factory=dict)

    @classmethod
    def empty(cls, params: EngineParams, detector: DetectorParams) -> "LearntState":
        """A fresh engine's state: nothing learnt yet, sized by `params` (buffers) and `detector` (nights kept)."""
        nights = np.full((0, detector.night_history + 1), np.nan)
        return cls({}, SeriesBlock(params.arrival_samples), night_history=nights)

    def stream(self, metric: str, detector: DetectorParams) -> StreamState:
        """The detectors' state of `metric`, created empty on first use."""
        if metric not in self.streams:
            self.streams[metric] = StreamState.empty(detector)
        return self.streams[metric]

    def block(self, metric: str, capacity: int) -> SeriesBlock:
        """The ring buffers of `metric`, created with `capacity` samples a row on first use."""
        if metric not in self.blocks:
            self.blocks[metric] = SeriesBlock(capacity)
        return self.blocks[metric]


def new_history(params: EngineParams) -> CoarseHistory:
    """A coarse history sized by `params`: profile_days in all, the newest profile_fine_days fine."""
    day_buckets = 86_400_000 // params.profile_bucket_ms
    return CoarseHistory(params.profile_bucket_ms, params.profile_days * day_buckets,
                         fine_capacity=params.profile_fine_days * day_buckets, coarse_ms=params.profile_coarse_ms)
