"""The utilities' network topology: district meter areas (DMAs) and feeders.

A **DMA** (water) is an area of the pipe network fed through its *inlet* meters
(bulk flow meters, L/s) and serving its *customer* meters; it may lie inside a
*parent* DMA (a sub-DMA): the parent's own area then ends at the sub-DMA's inlet
meters, which count as the parent's exports. A **feeder** (power) is a medium or
low voltage line fed through its one *transformer* meter and serving its
*customer* meters. A meter belongs to at most one network.

Stored in the registry (telemetry_shared/registry.py: tables `networks` and
`network_meters`); set through the API (`PUT /network/dmas/{id}`,
`PUT /network/feeders/{id}`, engineer role) or `city network ...`.

Reading it for analytics (all meters at once, as arrays):

    topo = registry.topology("power")        # or "water"
    topo.ids                                 # network ids, sorted: row i of every per-network array
    topo.meters, topo.network_of, topo.role  # one entry per meter: device id, network row, role
    topo.meters_of("feeder-7", "customer")   # the device ids of one network's meters of one role
    topo.rows_of(device_ids)                 # network row of each device id (-1: in no network)
    topo.transformer                         # power: the transformer meter of each feeder (row order)
    topo.parent                              # water: the parent DMA row of each DMA (-1: none)
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, field_validator

from edge import contract

UTILITIES = {"water": "dma", "power": "feeder"}  # the utility (a device kind) -> its kind of network
ROLES = {"water": ("inlet", "customer"), "power": ("transformer", "customer")}
MAX_METERS = 20_000  # meters in one network: far above any real DMA (~500-5,000 connections)
MAX_DEPTH = 16  # DMA nesting; a real network has 2-3 levels


class TopologyError(ValueError):
    """Topology refused: `reason` is a stable code, the message names the network and meters at fault."""

    def __init__(self, reason: str, message: str, status: int = 409):
        super().__init__(message)
        self.reason = reason
        self.status = status


class NetworkSpec(BaseModel):
    """One network as set by an engineer: its meters by role."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    utility: str
    name: str = Field("", max_length=120)
    parent: str | None = None
    meters: dict[str, list[str]]

    @field_validator("utility")
    @classmethod
    def _utility(cls, value: str) -> str:
        if value not in UTILITIES:
            raise ValueError(f"utility is one of {', '.join(UTILITIES)}")
        return value


class Network(NetworkSpec):
    updated_ms: int


def check(spec: NetworkSpec, kinds: Mapping[str, str], owner: Mapping[str, str],
          parents: Mapping[str, str | None], utilities: Mapping[str, str]) -> None:
    """Refuse a network (TopologyError) before it is stored.

    kinds: device id -> kind, of the devices named in `spec`. owner: device id
    -> the network that holds it now. parents: DMA id -> its parent, of every
    stored DMA. utilities: network id -> utility, of every stored network.
    """
    what = UTILITIES[spec.utility]
    unknown_roles = sorted(set(spec.meters) - set(ROLES[spec.utility]))
    if unknown_roles:
        raise TopologyError("bad_role", f"a {what} has meters of role {', '.join(ROLES[spec.utility])}, "
                                        f"not {', '.join(unknown_roles)}", 422)
    _check_counts(spec, what)
    named = [device for role in ROLES[spec.utility] for device in spec.meters.get(role, [])]
    twice = sorted(d for d, n in Counter(named).items() if n > 1)
    if twice:
        raise TopologyError("duplicate_meter", f"{what} {spec.id}: {', '.join(twice[:10])} named more than once")
    if utilities.get(spec.id, spec.utility) != spec.utility:
        raise TopologyError("id_taken", f"{spec.id} is already a {UTILITIES[utilities[spec.id]]}")
    unknown = [d for d in named if d not in kinds]
    if unknown:
        raise TopologyError("unknown_device", f"{what} {spec.id}: no device {', '.join(unknown[:10])}"
                                              f"{' ...' if len(unknown) > 10 else ''} in the registry")
    wrong = [d for d in named if kinds[d] != spec.utility]
    if wrong:
        raise TopologyError("wrong_kind", f"{what} {spec.id}: {', '.join(f'{d} ({kinds[d]})' for d in wrong[:10])}"
                                          f" is not a {spec.utility} meter")
    taken = [(d, owner[d]) for d in named if owner.get(d, spec.id) != spec.id]
    if taken:
        listed = ", ".join(f"{d} is in {UTILITIES[spec.utility]} {net}" for d, net in taken[:10])
        raise TopologyError("meter_elsewhere", f"{what} {spec.id}: a meter belongs to one {what} only: {listed}")
    _check_parent(spec, parents, utilities)


def _check_counts(spec: NetworkSpec, what: str) -> None:
    if sum(len(ids) for ids in spec.meters.values()) > MAX_METERS:
        raise TopologyError("too_many", f"{what} {spec.id}: more than {MAX_METERS} meters", 422)
    bad = [d for ids in spec.meters.values() for d in ids if not contract.valid_device_id(d)]
    if bad:
        raise TopologyError("bad_id", f"{what} {spec.id}: {bad[0][:40]!r} is not a device id", 422)
    if spec.utility == "water" and not spec.meters.get("inlet"):
        raise TopologyError("no_inlet", f"dma {spec.id} has no inlet meter: its system input could not be measured")
    if spec.utility == "power":
        if len(spec.meters.get("transformer", [])) != 1:
            raise TopologyError("no_transformer", f"feeder {spec.id} needs exactly one transformer meter, "
                                                  f"got {len(spec.meters.get('transformer', []))}")
        if spec.parent is not None:
            raise TopologyError("bad_parent", f"feeder {spec.id}: feeders have no parent", 422)


def _check_parent(spec: NetworkSpec, parents: Mapping[str, str | None], utilities: Mapping[str, str]) -> None:
    if spec.parent is None:
        return
    if utilities.get(spec.parent) != "water":
        raise TopologyError("unknown_parent", f"dma {spec.id}: no dma {spec.parent} to lie in")
    chain, at = [spec.id], spec.parent
    while at is not None:
        chain.append(at)
        if at == spec.id:
            raise TopologyError("loop", f"dma {spec.id}: parent {spec.parent} would make a loop: "
                                        f"{' -> '.join(chain)}")
        if len(chain) > MAX_DEPTH:
            raise TopologyError("too_deep", f"dma {spec.id}: more than {MAX_DEPTH} levels of parent dmas")
        at = parents.get(at)


@dataclass(frozen=True)
class Topology:
    """Every network of one utility as arrays (see the module's docstring)."""

    utility: str
    ids: np.ndarray  # network ids (str), sorted
    names: np.ndarray  # their names (str)
    parent: np.ndarray  # int64: row of the parent network, -1 none
    meters: np.ndarray  # device ids (str), sorted by network row then role then id
    network_of: np.ndarray  # int64: network row of each meter
    role: np.ndarray  # str: the role of each meter

    def rows_of(self, device_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """The network row of each device id (-1: not in any network of this utility)."""
        devices = np.asarray(device_ids, dtype=str)
        if len(self.meters) == 0:
            return np.full(len(devices), -1, dtype=np.int64)
        order = np.argsort(self.meters)
        sorted_ids = self.meters[order]
        at = np.clip(np.searchsorted(sorted_ids, devices), 0, len(sorted_ids) - 1)
        found = sorted_ids[at] == devices
        return np.where(found, self.network_of[order][at], -1)

    def meters_of(self, network: str, role: str | None = None) -> np.ndarray:
        """The device ids of one network's meters (of one role), sorted."""
        rows = np.flatnonzero(self.ids == network)
        if len(rows) == 0:
            return np.array([], dtype=str)
        keep = self.network_of == rows[0]
        if role is not None:
            keep &= self.role == role
        return np.sort(self.meters[keep])

    @property
    def transformer(self) -> np.ndarray:
        """Power: the transformer meter of each feeder, in row order ('' where none)."""
        out = np.full(len(self.ids), "", dtype=object)
        keep = self.role == "transformer"
        out[self.network_of[keep]] = self.meters[keep]
        return out.astype(str)


def topology(utility: str, networks: Sequence[Network]) -> Topology:
    """Arrays from stored networks (all of one utility)."""
    ordered = sorted((n for n in networks if n.utility == utility), key=lambda n: n.id)
    ids = np.array([n.id for n in ordered], dtype=str)
    row = {n.id: i for i, n in enumerate(ordered)}
    parent = np.array([row.get(n.parent, -1) if n.parent else -1 for n in ordered], dtype=np.int64)
    entries = [(d, row[n.id], role) for n in ordered for role in ROLES[utility] for d in sorted(n.meters.get(role, []))]
    return Topology(utility=utility, ids=ids, names=np.array([n.name for n in ordered], dtype=str), parent=parent,
                    meters=np.array([e[0] for e in entries], dtype=str),
                    network_of=np.array([e[1] for e in entries], dtype=np.int64),
                    role=np.array([e[2] for e in entries], dtype=str))
