"""Citizens' complaints linked to the detectors' own incidents on the simulated city, as `city evaluate`
simulates and detects (tests/api/linking_replay.py says how complaints are made and what counts).

For each seed: fleetsim simulates DEVICES devices every INTERVAL s for 8 days from Thursday 2026-01-01
local (the first 5 days are the baselines' warm-up: no complaint is filed then), the detectors find
their incidents, and the complaints and incidents are replayed through the alert store and the linker.
--dense N multiplies the share of leaks, bursts and outages in the scenario by N (more to measure, and
more incidents at once in a district).

    python bench/bench_linking.py [--devices 600] [--interval 60] [--seeds 7 11 3] [--dense 1] [--cache DIR]

--cache DIR keeps each simulation (readings through the detectors: minutes a seed) to measure another linker
on the same incidents.
"""

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware-sim"))

from fleetsim.scenario import load_scenario  # noqa: E402

from telemetry_shared.settings import Settings  # noqa: E402
from tests.api.linking_replay import dense, measure, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=600)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 3])
    parser.add_argument("--dense", type=float, default=1.0)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-linking-"))
    settings = Settings(environment="test", data_dir=folder / "var")
    scenario = load_scenario(city=settings.city)
    if args.dense != 1:
        scenario = dense(scenario, args.dense)
    print(f"{'seed':>5} {'faults':>6} {'found':>5} {'incidents':>9} {'right':>12} {'unrelated linked':>17} "
          f"{'clusters':>8}  {'s':>4}  not right")
    totals = [0, 0, 0, 0, 0, 0]
    for seed in args.seeds:
        started = time.monotonic()
        name = f"sim-{args.devices}-{args.interval:g}-{args.dense:g}-{seed}.pickle"
        cached = args.cache / name if args.cache else None
        if cached and cached.exists():
            sim = pickle.loads(cached.read_bytes())  # our own file, written below
        else:
            sim = simulate(scenario, args.devices, seed, 192, args.interval, 120, settings.city.utc_offset_hours)
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(pickle.dumps(sim))
        m = measure(settings, folder / f"seed{seed}", sim, seed=seed)
        for n, value in enumerate((m.faults, m.found, m.right, m.fault_complaints, m.false_links, m.unrelated)):
            totals[n] += value
        print(f"{seed:>5} {m.faults:>6} {m.found:>5} {m.incidents:>9} {m.right:>4}/{m.fault_complaints:<4}"
              f"{m.right_share:>4.0%} {m.false_links:>5}/{m.unrelated:<4}{m.false_share:>6.1%} {m.citizen_alerts:>8}  "
              f"{time.monotonic() - started:>4.0f}  {dict(m.wrong)} {dict(m.false_by_rule)}", flush=True)
    faults, found, right, complaints, false_links, unrelated = totals
    print(f"{'all':>5} {faults:>6} {found:>5} {'':>9} {right:>4}/{complaints:<4}{right / max(1, complaints):>4.0%} "
          f"{false_links:>5}/{unrelated:<4}{false_links / max(1, unrelated):>6.1%}   (goals: right >= 90 %, "
          "unrelated linked < 5 %)")


if __name__ == "__main__":
    main()
