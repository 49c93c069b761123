"""What one series costs the analytics engine in memory, after 8 days of one reading a minute.

    python3 bench/bench_memory.py                      # 256 series of one metric
    python3 bench/bench_memory.py --series 2048 --days 8

An engine is fed `--days` days of one-minute readings for `--series` power
meters (one metric each) through the same structures its ingest() uses (the
ring buffer, then the daily profile's coarse history), in hour-long batches.
Printed: the bytes its learnt arrays hold per series (allocated, as numpy
reports them; before any pass: no detectors' state nor error ring), the
growth of the process' resident memory per series (what the operating system
sees: arrays, Python objects, allocator slack) and the time of one scoring
pass over every series with one new reading each, the whole of the engine's
per-minute work at one reading a minute. The budget
(issue 22): < 40 KB a series, so 100,000 series fit in 4 GB.

    python3 bench/bench_memory.py --stream 2000 --duty-cycle 2 --minutes 6 [--trace]

`--stream N`: the engine as the city-scale bench drives it, without the network: N devices of the
simulator's scenario (its kinds and metrics, its models' readings) registered in a SQLite registry, each
waking every `--duty-cycle` minutes at its own second with that many readings in one message (contract
encoded), fed through `AnalyticsEngine.ingest` and scored by `process()` every `--pass-s` simulated
seconds (the rebuild budget as configured: new series are built while the fleet comes up), for
`--minutes`. Printed: resident memory (now and peak, VmHWM) above the engine before the fleet, per
series, while the series were being built and at the end, and the learnt arrays by component (allocated
bytes a series); with `--trace`, tracemalloc's split of what is live into numpy arrays and Python objects,
the rest of the resident growth being the allocator's slack (freed, not given back).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.config import EngineParams  # noqa: E402
from analytics.engine import AnalyticsEngine  # noqa: E402
from telemetry_shared.registry import Registry  # noqa: E402
from telemetry_shared.settings import Settings, get_settings  # noqa: E402

START_MS = 1_767_546_000_000
MINUTE_MS = 60_000


def rss_bytes(field: str = "VmRSS") -> int:
    """Resident memory of this process (Linux /proc; field VmHWM: the peak since the last reset_peak())."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """VmHWM back to the current RSS (Linux: 5 written to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def learnt_bytes(engine: AnalyticsEngine) -> int:
    """Bytes of every numpy array the engine's learnt state holds (buffers, histories, incident states)."""
    seen: set[int] = set()
    total = 0

    def walk(obj: object, depth: int = 0) -> None:
        nonlocal total
        if depth > 4 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for value in obj[:8]:  # key lists: Python objects, counted in the RSS figure only
                walk(value, depth + 1)
        elif hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                walk(value, depth + 1)

    walk(engine.learnt)
    return total


def fill(engine: AnalyticsEngine, series: int, days: int, rng: np.random.Generator) -> int:
    """Feed `days` of one-minute readings for `series` meters, an hour at a time; returns the last time."""
    minutes = days * 1440
    learnt = engine.learnt
    block = learnt.block("power_kw", engine.params.buffer_samples)
    rows = [block.row((f"pwr-{i:05d}",)) for i in range(series)]
    for i in range(series):
        learnt.info[f"pwr-{i:05d}"] = ("power", get_settings().city.districts[0].slug)
    daily = 5 + 2 * np.sin(2 * np.pi * np.arange(1440) / 1440)
    for hour in range(0, minutes, 60):
        times = START_MS + MINUTE_MS * np.arange(hour, hour + 60) + 17_000
        for row in rows:
            values = daily[np.arange(hour, hour + 60) % 1440] + rng.normal(0, 0.2, 60)
            added = block.append(row, times, values)
            if added and engine.params.profile_days > 0:
                engine._coarse("power_kw").add(row, block.times[row, -added:], block.values[row, -added:])
    return int(START_MS + MINUTE_MS * minutes)


def scoring_pass(engine: AnalyticsEngine, series: int, now_ms: int, rng: np.random.Generator) -> float:
    """Seconds of one pass with one new reading on every series."""
    block = engine.learnt.blocks["power_kw"]
    for row in range(series):
        added = block.append(row, np.array([now_ms]), np.array([5 + rng.normal(0, 0.2)]))
        engine._coarse("power_kw").add(row, block.times[row, -added:], block.values[row, -added:])
        engine.pending["power_kw"].append((row, added, True))
    start = time.perf_counter()
    engine.process(now_ms + 1000)
    return time.perf_counter() - start


def components(engine: AnalyticsEngine) -> dict[str, int]:
    """Bytes allocated by each part of the learnt state (numpy nbytes), and the series it holds."""
    learnt = engine.learnt
    out = {"ring buffers (values, times, counts)": sum(b.values.nbytes + b.times.nbytes + b.appended.nbytes
                                                        for b in learnt.blocks.values()),
           "profile tiers (coarse history)": sum(h.nbytes() for h in learnt.history.values()),
           "detectors' state (arrays)": sum(sum(a.nbytes for a in s.arrays.values()) for s in learnt.streams.values()),
           "detectors' error rings": sum(sum(e.nbytes for e in s.errors if e is not None)
                                         for s in learnt.streams.values()),
           "incident state (Hysteresis)": sum(sum(getattr(h, name).nbytes for name in h.FIELDS)
                                              for h in (*learnt.states.values(), learnt.silence)),
           "arrivals (per device)": learnt.arrivals.values.nbytes + learnt.arrivals.times.nbytes
           + learnt.arrivals.appended.nbytes,
           "night minima": learnt.night_history.nbytes}
    return out


def series_held(engine: AnalyticsEngine) -> tuple[int, int, int]:
    """(series held, rows allocated, series whose detectors' state is built)."""
    learnt = engine.learnt
    held = sum(len(b.keys) for b in learnt.blocks.values())
    allocated = sum(b.values.shape[0] for b in learnt.blocks.values())
    built = sum(int((s.arrays["scored"] != 0).sum()) for s in learnt.streams.values())
    return held, allocated, built


class StreamFleet:
    """The scenario's devices, duty-cycled: each wakes every `duty` minutes at its own second with `duty`
    readings of its model (the simulator's) in one contract-encoded message."""

    def __init__(self, registry: Registry, devices: int, duty: int, start_ms: int, seed: int = 1):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware-sim"))
        import fleetsim  # noqa: PLC0415 (the simulator's package lives beside the server's)
        from fleetsim.models import finish, make_model  # noqa: PLC0415

        from edge import contract  # noqa: PLC0415
        from telemetry_shared.registry import DeviceNew  # noqa: PLC0415
        scenario = fleetsim.load_scenario()
        self.specs = fleetsim.plan_fleet(scenario, devices, seed)
        registry.add_many([DeviceNew(id=s["id"], kind=s["kind"], district=s["district"]) for s in self.specs])
        self.models = [make_model(scenario, spec, seed) for spec in self.specs]
        self.finish, self.encode = finish, contract.encode_telemetry
        self.duty, self.start_ms = duty, start_ms
        rng = np.random.default_rng(seed)
        self.phase_s = rng.integers(0, 60 * duty, len(self.specs))
        self.seq = [0] * len(self.specs)

    def messages(self, second: int) -> list[tuple[str, bytes, int]]:
        """(device, payload, received_ms) of the devices waking at this second of the run."""
        period = 60 * self.duty
        out = []
        for i in np.flatnonzero((second >= self.phase_s) & ((second - self.phase_s) % period == 0)).tolist():
            now_ms = self.start_ms + second * 1000
            spec, model = self.specs[i], self.models[i]
            samples = []
            for j in range(self.duty):
                t_ms = now_ms - (self.duty - 1 - j) * MINUTE_MS
                samples.append((t_ms, self.finish(spec["kind"], model.values(t_ms)), 0))
            self.seq[i] += 1
            out.append((spec["id"], self.encode(self.seq[i], samples, "bench"), now_ms + 200))
        return out


def run_stream(registry: Registry, devices: int, duty: int, minutes: int, pass_s: int,
               report: bool = True, checkpoint_s: int = 0, state_file: Path | None = None,
               trim_s: float = 0.0, buffer_samples: int = EngineParams().buffer_samples) -> AnalyticsEngine:
    """The engine driven as the service drives it: messages in, a pass every pass_s, the checks every
    silence_check_s (the peer check beside the stream included), a checkpoint every checkpoint_s (0: none) saved
    on a thread through the copy on write, the allocator trimmed every trim_s seconds of the clock, as the
    service does (analytics.alloc; 0: never); a line a minute (when `report`) with the series, the rebuilds
    waiting and the memory."""
    import threading  # noqa: PLC0415

    from analytics import alloc  # noqa: PLC0415
    from analytics.state import save_state  # noqa: PLC0415
    engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=buffer_samples))
    saver: threading.Thread | None = None
    next_save = checkpoint_s
    next_trim = time.monotonic() + trim_s
    fleet = StreamFleet(registry, devices, duty, START_MS)
    base = rss_bytes()
    reset_peak()
    building_peak, next_check = 0, 0
    if report:
        print(f"{'minute':>6} {'series':>8} {'built':>8} {'waiting':>8} {'RSS MB':>8} {'peak MB':>8}"
              f" {'KB/series':>10} {'peak KB/series':>15} {'pass s':>7}")
    slowest = 0.0
    kept_peak, kept_rows, saves = 0, 0, 0  # the checkpoints' copy on write: the most it held, the rows it kept

    def ended(copying: object) -> None:
        nonlocal kept_peak, kept_rows, saves
        kept_peak, kept_rows, saves = max(kept_peak, copying.peak_kept_bytes), kept_rows + copying.kept_rows, saves + 1
        engine.end_copy()

    for second in range(0, minutes * 60, pass_s):
        for message in (m for s in range(second, second + pass_s) for m in fleet.messages(s)):
            engine.ingest(*message)
        now_ms = START_MS + (second + pass_s) * 1000
        started = time.perf_counter()
        engine.process(now_ms)
        slowest = max(slowest, time.perf_counter() - started)
        if second >= next_check:
            next_check = second + engine.params.silence_check_s
            engine.check_silence(now_ms)
            engine.check_night_flow(now_ms)
            engine.check_peers_beside(now_ms)
        if trim_s and time.monotonic() >= next_trim:
            next_trim = time.monotonic() + trim_s
            alloc.trim()
        if saver is not None and not saver.is_alive():
            ended(engine.copying)
            saver = None
        if checkpoint_s and state_file is not None and second >= next_save and saver is None:
            next_save = second + checkpoint_s
            copying = engine.begin_copy()
            saver = threading.Thread(target=save_state, args=(copying.learnt, state_file, now_ms))
            saver.start()
        if engine.counters["rebuilds_waiting"] or series_held(engine)[2] < series_held(engine)[0]:
            building_peak = max(building_peak, rss_bytes("VmHWM"))
        if report and (second + pass_s) % 60 == 0:
            held, _, built = series_held(engine)
            rss, peak = rss_bytes() - base, rss_bytes("VmHWM") - base
            print(f"{(second + pass_s) // 60:>6} {held:>8,} {built:>8,} {engine.counters['rebuilds_waiting']:>8,}"
                  f" {rss / 1e6:>8.1f} {peak / 1e6:>8.1f} {rss / max(held, 1) / 1e3:>10.1f}"
                  f" {peak / max(held, 1) / 1e3:>15.1f} {slowest:>7.2f}")
            slowest = 0.0
    if saver is not None:
        saver.join()
        ended(engine.copying)
    if engine.peer_running is not None:
        engine.peer_running[1].result()
    engine.bench_kept = (kept_peak, kept_rows, saves)  # type: ignore[attr-defined]
    engine.bench_base = base  # type: ignore[attr-defined]
    engine.bench_building_peak = building_peak - base if building_peak else 0  # type: ignore[attr-defined]
    return engine


def stream_main(args: argparse.Namespace) -> None:
    """--stream: the engine fed as by the stream, memory by component."""
    import gc  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415
    with tempfile.TemporaryDirectory() as tmp:
        warm = Registry(Path(tmp) / "warm.sqlite3")  # numba's compiled recursions and the imports, before the base
        run_stream(warm, 40, args.duty_cycle, 3, args.pass_s, report=False)
        warm.close()
        gc.collect()
        if args.trace:
            tracemalloc.start()
        registry = Registry(Path(tmp) / "registry.sqlite3")
        started = time.perf_counter()
        engine = run_stream(registry, args.stream, args.duty_cycle, args.minutes, args.pass_s,
                            checkpoint_s=args.checkpoint_s, state_file=Path(tmp) / "engine.npz",
                            trim_s=args.malloc_trim_s, buffer_samples=args.buffer_samples)
        seconds = time.perf_counter() - started
        gc.collect()
        held, allocated, built = series_held(engine)
        rss = rss_bytes() - engine.bench_base
        peak = rss_bytes("VmHWM") - engine.bench_base
        parts = components(engine)
        arrays = sum(parts.values())
        print(f"\n{args.stream:,} devices, {held:,} series ({allocated:,} rows allocated), {built:,} built, "
              f"{args.minutes} min at K={args.duty_cycle}, a pass every {args.pass_s} s ({seconds:.0f} s), "
              f"malloc_trim every {args.malloc_trim_s:g} s")
        print(f"resident above the engine before the fleet: {rss / 1e6:.1f} MB now, {rss / held / 1e3:.1f} KB a series;"
              f" peak {peak / 1e6:.1f} MB ({peak / held / 1e3:.1f} KB a series); peak while series were being built"
              f" {engine.bench_building_peak / 1e6:.1f} MB")
        kept_peak, kept_rows, saves = engine.bench_kept
        print(f"checkpoints' copy on write: {saves} saves, {kept_rows:,} rows kept in all, the most held at once"
              f" {kept_peak / 1e6:.1f} MB ({kept_peak / held / 1e3:.2f} KB a series)")
        for name, nbytes in parts.items():
            print(f"  {name:<40} {nbytes / held / 1e3:8.2f} KB a series ({nbytes / 1e6:.1f} MB)")
        print(f"  {'learnt arrays, allocated':<40} {arrays / held / 1e3:8.2f} KB a series")
        if args.trace:
            snap = tracemalloc.take_snapshot()
            python = sum(s.size for s in snap.filter_traces([tracemalloc.DomainFilter(True, 0)]).statistics("filename"))
            traced, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"  {'traced: numpy arrays':<40} {(traced - python) / held / 1e3:8.2f} KB a series")
            print(f"  {'traced: Python objects':<40} {python / held / 1e3:8.2f} KB a series")
            print(f"  {'allocator slack (RSS - traced)':<40} {(rss - traced) / held / 1e3:8.2f} KB a series")
            print(f"  {'traced peak':<40} {traced_peak / held / 1e3:8.2f} KB a series")
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=256)  # a multiple of 64: no rows allocated ahead
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--buffer-samples", type=int, default=EngineParams().buffer_samples,
                        help="samples a ring buffer (default: the engine's)")
    parser.add_argument("--stream", type=int, default=0, metavar="DEVICES",
                        help="the engine fed as by the stream: this many devices of the scenario (see above)")
    parser.add_argument("--duty-cycle", type=int, default=2, help="--stream: a wake every K minutes, K readings")
    parser.add_argument("--minutes", type=int, default=6, help="--stream: minutes of the fleet's run")
    parser.add_argument("--pass-s", type=int, default=1, help="--stream: simulated seconds between passes")
    parser.add_argument("--checkpoint-s", type=int, default=60,
                        help="--stream: simulated seconds between checkpoints saved beside the stream (0: none)")
    parser.add_argument("--malloc-trim-s", type=float,
                        default=Settings.model_fields["analytics_malloc_trim_s"].default,
                        help="--stream: seconds between the allocator's trims, as the service (0: never)")
    parser.add_argument("--trace", action="store_true", help="--stream: tracemalloc's split (slower)")
    args = parser.parse_args()
    if args.stream:
        stream_main(args)
        return
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry.sqlite3")
        engine = AnalyticsEngine(registry, None, None, EngineParams(buffer_samples=args.buffer_samples))
        before = rss_bytes()
        start = time.perf_counter()
        now_ms = fill(engine, args.series, args.days, rng)
        filled_s = time.perf_counter() - start
        grown = rss_bytes() - before
        arrays = learnt_bytes(engine)
        scoring_pass(engine, args.series, now_ms, rng)  # the first pass compiles the recursions (numba)
        seconds = scoring_pass(engine, args.series, now_ms + MINUTE_MS, rng)
        peak = rss_bytes() - before
        registry.close()
    print(f"{args.series} series x {args.days} days of one-minute readings, {args.buffer_samples:,}-sample buffers "
          f"(filled in {filled_s:.1f} s)")
    print(f"learnt arrays      {arrays / args.series / 1e3:8.1f} KB a series (allocated)")
    print(f"resident growth    {grown / args.series / 1e3:8.1f} KB a series (RSS after filling)")
    print(f"after two passes   {peak / args.series / 1e3:8.1f} KB a series (RSS: numba's compiler and the passes'"
          " temporaries included, kept by the allocator)")
    print(f"one scoring pass   {seconds:8.3f} s ({seconds / args.series * 1e3:.2f} ms a series)")


if __name__ == "__main__":
    main()
