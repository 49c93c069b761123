"""Hospitals: records and wards (admin), free beds and the duty roster (the hospital's own key, or
admin), sensors mapped to wards (admin), and the public "where is a free bed now" list.

A `hospital` key is bound to one hospital when it is made (POST /hospitals/{id}/keys): it may
update that hospital's wards and roster and nothing else; another hospital's ward answers 403.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api import queries
from api.auth import KEY_NAME_PATTERN, Admin, AnyRole, ApiKeyCreated, Principal, RequireRole
from api.citizens.hospitals import (
    BED_CLASSES,
    SLUG,
    BedClass,
    BedsUpdate,
    Hospital,
    HospitalConflict,
    HospitalNew,
    HospitalNotFound,
    HospitalStore,
    PublicHospital,
    Roster,
    Ward,
    WardNew,
    public_beds,
)
from api.errors import AUTH_RESPONSES, ErrorBody
from api.params import DEVICE_ID_PATTERN, STRICT_BODY
from api.ratelimit import public_rate_limit
from api.services import ApiServices, Services
from telemetry_shared.influx import InfluxError
from telemetry_shared.registry import DeviceNotFound

log = logging.getLogger("api")

router = APIRouter(prefix="/hospitals", tags=["hospitals"], responses=AUTH_RESPONSES)
public_router = APIRouter(prefix="/public/hospitals", tags=["public"], dependencies=[Depends(public_rate_limit)],
                          responses={429: {"description": "too many requests; see Retry-After"}})

HospitalId = Annotated[str, Path(pattern=SLUG, description="the hospital's slug")]
WardId = Annotated[str, Path(pattern=SLUG, description="the ward's slug")]
HospitalStaff = RequireRole("hospital")  # admin too
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such hospital or ward"},
             409: {"model": ErrorBody, "description": "conflicts with what is stored"}}


class KeyRequest(BaseModel):
    model_config = STRICT_BODY

    name: str = Field(min_length=1, max_length=64, pattern=KEY_NAME_PATTERN,
                      description="who at the hospital uses it; shown in the ward's `updated_by`")


class SensorMapping(BaseModel):
    model_config = STRICT_BODY

    device: str | None = Field(pattern=DEVICE_ID_PATTERN, description="a building device reporting beds_free; "
                                                                      "null unmaps")


class HospitalDetail(BaseModel):
    hospital: Hospital
    wards: list[Ward]


class RosterSaved(BaseModel):
    shifts: int


class PublicBeds(BaseModel):
    as_of_ms: int
    stale_after_s: float
    data: list[PublicHospital]
    count: int


def store(services: Services) -> HospitalStore:
    return services.hospitals


Hospitals = Annotated[HospitalStore, Depends(store)]


def _own(user: Principal, hospital_id: str, hospitals: HospitalStore) -> None:
    """Admin may touch any hospital; a hospital key only its own."""
    if user.role == "admin":
        return
    own = hospitals.hospital_of_key(user.key_id)
    if own != hospital_id:
        raise HTTPException(403, f"the key {user.name!r} belongs to another hospital")


def _found(call, *args):
    try:
        return call(*args)
    except HospitalNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except HospitalConflict as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("", status_code=201, summary="Add a hospital (its district from its position)", responses=NOT_FOUND)
def add_hospital(body: HospitalNew, user: Admin, services: Services) -> Hospital:
    district = services.settings.city.district_at(body.lat, body.lon)
    if district is None:
        # the data decides (the profile's boundaries), not the shape: 409 as elsewhere
        raise HTTPException(409, f"({body.lat}, {body.lon}) is in none of the city's districts")
    return _found(services.hospitals.add, body, district)


@router.get("", summary="Every hospital with its wards (staff)")
def list_hospitals(user: AnyRole, hospitals: Hospitals) -> list[HospitalDetail]:
    wards: dict[str, list[Ward]] = {}
    for ward in hospitals.wards():
        wards.setdefault(ward.hospital_id, []).append(ward)
    return [HospitalDetail(hospital=h, wards=wards.get(h.id, [])) for h in hospitals.hospitals()]


@router.get("/mine", summary="The hospital this key belongs to, with its wards (a hospital key)",
            responses=NOT_FOUND)
def my_hospital(user: HospitalStaff, hospitals: Hospitals) -> HospitalDetail:
    hospital_id = hospitals.hospital_of_key(user.key_id)
    if hospital_id is None:
        raise HTTPException(404, f"the key {user.name!r} belongs to no hospital")
    return HospitalDetail(hospital=_found(hospitals.get, hospital_id), wards=hospitals.wards(hospital_id))


@router.get("/{hospital_id}", summary="One hospital and its wards (staff, or its own key)", responses=NOT_FOUND)
def get_hospital(hospital_id: HospitalId, user: RequireRole("technician", "engineer", "operator", "hospital"),
                 hospitals: Hospitals) -> HospitalDetail:
    if user.role == "hospital":
        _own(user, hospital_id, hospitals)
    hospital = _found(hospitals.get, hospital_id)
    return HospitalDetail(hospital=hospital, wards=hospitals.wards(hospital_id))


@router.post("/{hospital_id}/wards", status_code=201, summary="Add a ward", responses=NOT_FOUND)
def add_ward(hospital_id: HospitalId, body: WardNew, user: Admin, hospitals: Hospitals) -> Ward:
    return _found(hospitals.add_ward, hospital_id, body)


@router.post("/{hospital_id}/keys", status_code=201, summary="A key for this hospital's staff (shown once)",
             responses=NOT_FOUND)
def hospital_key(hospital_id: HospitalId, body: KeyRequest, user: Admin, services: Services) -> ApiKeyCreated:
    _found(services.hospitals.get, hospital_id)
    created = services.keys.create(body.name, "hospital")
    services.hospitals.scope_key(created.id, hospital_id)
    return created


@router.put("/{hospital_id}/wards/{ward_id}/beds", summary="Free beds now (the hospital's staff)",
            responses=NOT_FOUND)
def set_beds(hospital_id: HospitalId, ward_id: WardId, body: BedsUpdate, user: HospitalStaff,
             services: Services) -> Ward:
    _own(user, hospital_id, services.hospitals)
    ward = _found(services.hospitals.set_beds, hospital_id, ward_id, body, user.name)
    services.public.forget("beds")
    return ward


@router.put("/{hospital_id}/wards/{ward_id}/sensor", summary="Feed a ward from a beds_free sensor",
            responses=NOT_FOUND)
def map_sensor(hospital_id: HospitalId, ward_id: WardId, body: SensorMapping, user: Admin,
               services: Services) -> Ward:
    if body.device is not None:
        try:
            device = services.registry.get(body.device)
        except DeviceNotFound as exc:
            raise HTTPException(404, f"no device {body.device}") from exc
        if device.kind != "building":
            raise HTTPException(409, f"{body.device} is a {device.kind} device; beds_free comes from building ones")
    return _found(services.hospitals.map_sensor, hospital_id, ward_id, body.device)


@router.put("/{hospital_id}/roster", summary="Upload the doctors-on-duty roster (replaces it)", responses=NOT_FOUND)
def set_roster(hospital_id: HospitalId, body: Roster, user: HospitalStaff, services: Services) -> RosterSaved:
    _own(user, hospital_id, services.hospitals)
    saved = _found(services.hospitals.set_roster, hospital_id, body)
    services.public.forget("beds")
    return RosterSaved(shifts=saved)


def _snapshot(services: ApiServices) -> tuple:
    """What the public list is made of, read at most once per cache period: sensor readings applied first."""
    now = queries.now_ms()
    stale_ms = int(services.settings.api_hospital_stale_after_s * 1000)
    try:
        readings = queries.per_device_last(services.influx, "building", "beds_free", now - stale_ms)
        services.hospitals.sensor_readings(readings)
    except InfluxError as exc:  # the staff's own updates still show
        log.warning("beds_free sensors not read: %s", exc)
    hospitals = services.hospitals
    return hospitals.hospitals(), hospitals.wards(), hospitals.on_duty(now)


@public_router.get("/beds", summary="Where is a free bed now: hospitals, wards by class, doctors on duty",
                   response_model=PublicBeds)
def beds(services: Services,
         bed_class: Annotated[BedClass | None, Query(description=f"one of {', '.join(BED_CLASSES)}")] = None,
         lat: Annotated[float | None, Query(ge=-90, le=90, description="with lon: nearest first; "
                                                                   "else by district")] = None,
         lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
         only_free: Annotated[bool, Query(description="only hospitals with a fresh free bed")] = False) -> Response:
    hospitals, wards, duty = services.public.get("beds", lambda: _snapshot(services))
    now = queries.now_ms()
    stale_s = services.settings.api_hospital_stale_after_s
    data = public_beds(hospitals, wards, duty, now, int(stale_s * 1000), bed_class,
                       (lat, lon) if lat is not None else None, only_free)
    # a public hot route: serialised once, not validated again on the way out (as GET /alerts)
    return Response(PublicBeds(as_of_ms=now, stale_after_s=stale_s, data=data, count=len(data)).model_dump_json(),
                    media_type="application/json")
