"""The fleet simulator: the same edge agent code, many devices at once.

Public API: plan_fleet, generate, load_scenario, label_rows, write_labels (see README.md).
"""

from fleetsim.faults import Fault, label_rows, write_labels
from fleetsim.generate import generate
from fleetsim.plan import plan_fleet as _plan_fleet
from fleetsim.scenario import DEFAULT_SCENARIO, ScenarioError, load_scenario, validate_scenario


def plan_fleet(scenario: dict, devices: int, seed: int, tag: str = "") -> list[dict]:
    """Device specs {id, kind, district, lat, lon} for a scenario (validated first)."""
    return _plan_fleet(validate_scenario(scenario), devices, seed, tag)


__all__ = ["DEFAULT_SCENARIO", "Fault", "ScenarioError", "generate", "label_rows", "load_scenario", "plan_fleet",
           "validate_scenario", "write_labels"]
