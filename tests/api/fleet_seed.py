"""A city's fleet registered at once for the scale tests and bench/bench_control_room.py: the simulator's
plan (positions inside the profile's districts), bulk-inserted (Registry.add_many), heard from in one
transaction, with open alerts on the first devices."""

import time

from telemetry_shared.registry import DeviceNew
from tests.api.harness import LiveApi, alert

SEVERITY_CYCLE = ("critical", "warning", "info")
HOUR_MS = 3_600_000


def seed_fleet(api: LiveApi, devices: int, alerts: int, silent_every: int = 0, never_every: int = 0) -> list[dict]:
    """Register `devices` devices of the simulator's plan; every one heard from now, but every
    `silent_every`-th (from the 2nd) an hour ago and every `never_every`-th (from the 1st) never (0: none);
    open alerts on the first `alerts` (critical, warning, info in turn). Returns the plan."""
    import fleetsim

    plan = fleetsim.plan_fleet(fleetsim.load_scenario(), devices, 1)
    registry = api.services.registry
    registry.add_many([DeviceNew.model_construct(**spec, note="") for spec in plan])  # the plan's are valid
    now = int(time.time() * 1000)
    heard = []
    for n, spec in enumerate(plan):
        if never_every and n % never_every == 0:
            continue
        heard.append((spec["id"], now - HOUR_MS if silent_every and n % silent_every == 1 else now, "0.1.0"))
    registry.seen_many(heard)
    for n, spec in enumerate(plan[:alerts]):
        api.services.alerts.store.apply(alert(f"inc-{n:05d}", device=spec["id"], district=spec["district"],
                                              kind=spec["kind"], severity=SEVERITY_CYCLE[n % 3]))
    return plan
