"""The utilities' network topology (telemetry_shared/network.py): district meter areas (DMAs) with their
inlet and customer meters, feeders with their transformer and customer meters. Engineers set them; every
staff role reads them. A network is set whole (PUT) and checked whole: a refusal names the reason and
changes nothing."""

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.exceptions import HTTPException
from pydantic import BaseModel, Field, field_validator

from api.auth import AnyRole, Engineer
from api.errors import ErrorBody
from api.paging import Page
from api.params import DEVICE_ID_PATTERN, SLUG_PATTERN, STRICT_BODY
from api.services import Services
from telemetry_shared.network import MAX_METERS, Network, NetworkSpec, TopologyError

MeterId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Meters = Annotated[list[MeterId], Field(max_length=MAX_METERS)]
NetworkPath = Annotated[str, Path(pattern=SLUG_PATTERN, description="a DMA or feeder id: a-z, 0-9 and '-'")]
Name = Field("", max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")


class DmaSet(BaseModel):
    model_config = STRICT_BODY

    name: str = Name
    parent: str | None = Field(None, pattern=SLUG_PATTERN, description="the DMA this one lies in (a sub-DMA); "
                               "its inlet meters then count as the parent's exports")
    inlets: Meters = Field(json_schema_extra={"minItems": 1},
                           description="the bulk flow meters feeding the DMA (water devices)")
    customers: Meters = Field(default_factory=list, description="the customers' meters (water devices)")

    @field_validator("inlets")
    @classmethod
    def _inlet(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a DMA needs at least one inlet meter, or its system input cannot be measured")
        return value


class FeederSet(BaseModel):
    model_config = STRICT_BODY

    name: str = Name
    transformer: MeterId = Field(description="the meter at the feeder's transformer (a power device)")
    customers: Meters = Field(default_factory=list, description="the customers' meters (power devices)")


class NetworkPublic(BaseModel):
    id: str
    utility: str = Field(description="water: a DMA; power: a feeder")
    name: str
    parent: str | None
    meters: dict[str, list[str]] = Field(description="device ids by role: inlet and customer (a DMA), "
                                                     "transformer and customer (a feeder)")
    updated_ms: int

    @classmethod
    def of(cls, network: Network) -> "NetworkPublic":
        return cls(**network.model_dump())


class Removed(BaseModel):
    removed: str


ERRORS = {401: {"model": ErrorBody, "description": "no API key, or an unknown or revoked one"},
          403: {"model": ErrorBody, "description": "the key's role may not do this"},
          404: {"model": ErrorBody, "description": "no such DMA or feeder"},
          409: {"model": ErrorBody, "description": "refused, with the reason: a meter in another network, a loop "
                                                   "of parent DMAs, an unknown or wrong-kind meter, a DMA that "
                                                   "still holds sub-DMAs; nothing changed"}}
router = APIRouter(prefix="/network", tags=["network"], responses=ERRORS)


def _run(action, *args):
    try:
        return action(*args)
    except TopologyError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


def _one(services, utility: str, network_id: str) -> Network:
    network = _run(services.registry.network, network_id)
    if network.utility != utility:
        raise HTTPException(404, f"{network_id} is not a {'DMA' if utility == 'water' else 'feeder'}")
    return network


def _remove(services, utility: str, network_id: str) -> Removed:
    _one(services, utility, network_id)
    _run(services.registry.remove_network, network_id)
    return Removed(removed=network_id)


@router.get("/dmas", summary="Every district meter area with its meters")
def list_dmas(user: AnyRole, services: Services) -> Page[NetworkPublic]:
    networks = services.registry.networks("water")
    return Page(data=[NetworkPublic.of(n) for n in networks], count=len(networks))


@router.get("/dmas/{network_id}", summary="One district meter area")
def show_dma(network_id: NetworkPath, user: AnyRole, services: Services) -> NetworkPublic:
    return NetworkPublic.of(_one(services, "water", network_id))


@router.put("/dmas/{network_id}", summary="Create or replace a district meter area (checked whole)")
def set_dma(network_id: NetworkPath, body: DmaSet, user: Engineer, services: Services) -> NetworkPublic:
    spec = NetworkSpec(id=network_id, utility="water", name=body.name, parent=body.parent,
                       meters={"inlet": body.inlets, "customer": body.customers})
    return NetworkPublic.of(_run(services.registry.set_network, spec))


@router.delete("/dmas/{network_id}", summary="Remove a district meter area (its meters stay registered)")
def remove_dma(network_id: NetworkPath, user: Engineer, services: Services) -> Removed:
    return _remove(services, "water", network_id)


@router.get("/feeders", summary="Every feeder with its meters")
def list_feeders(user: AnyRole, services: Services) -> Page[NetworkPublic]:
    networks = services.registry.networks("power")
    return Page(data=[NetworkPublic.of(n) for n in networks], count=len(networks))


@router.get("/feeders/{network_id}", summary="One feeder")
def show_feeder(network_id: NetworkPath, user: AnyRole, services: Services) -> NetworkPublic:
    return NetworkPublic.of(_one(services, "power", network_id))


@router.put("/feeders/{network_id}", summary="Create or replace a feeder (checked whole)")
def set_feeder(network_id: NetworkPath, body: FeederSet, user: Engineer, services: Services) -> NetworkPublic:
    spec = NetworkSpec(id=network_id, utility="power", name=body.name,
                       meters={"transformer": [body.transformer], "customer": body.customers})
    return NetworkPublic.of(_run(services.registry.set_network, spec))


@router.delete("/feeders/{network_id}", summary="Remove a feeder (its meters stay registered)")
def remove_feeder(network_id: NetworkPath, user: Engineer, services: Services) -> Removed:
    return _remove(services, "power", network_id)
