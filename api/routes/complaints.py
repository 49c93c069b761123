"""Complaints for staff: the moderation queue, a complaint with its contact (operators call back),
approve or reject its text and photo for the public, answer it, link or unlink it to an incident
(audited in the incident's trail). The public reads complaints through Open311 (routes/open311.py)
and a moderated photo here."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.alerts.store import Alert, AlertNotFound
from api.auth import AnyRole, RequireRole
from api.citizens.complaints import CODE_PATTERN, Complaint
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.params import NOT_BLANK_PATTERN, STRICT_BODY
from api.ratelimit import public_rate_limit
from api.services import Services

router = APIRouter(prefix="/complaints", tags=["complaints"], responses=AUTH_RESPONSES)
public_router = APIRouter(prefix="/public/complaints", tags=["public"], dependencies=[Depends(public_rate_limit)])
Responder = RequireRole("operator")
ComplaintId = Annotated[str, Path(pattern=CODE_PATTERN, description="the tracking code, e.g. PGD-7K3M9Q2A")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such complaint or incident"}}
JPEG = {200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorBody, "description": "no (public) photo"}}


class ComplaintDetail(BaseModel):
    complaint: Complaint
    contact: dict[str, str] = Field(description="first_name, last_name, email, phone as given (opened for staff)")


class Moderation(BaseModel):
    model_config = STRICT_BODY

    approve: bool = Field(description="true: its text, point and photo become public; false: never")


class Answer(BaseModel):
    model_config = STRICT_BODY | ConfigDict(regex_engine="python-re")

    status: Literal["open", "closed"]
    notes: str = Field(min_length=1, max_length=1000, pattern=NOT_BLANK_PATTERN, description="the city's public answer")


class LinkBody(BaseModel):
    model_config = STRICT_BODY

    alert_id: str = Field(min_length=1, max_length=64)


def _complaint(services, complaint_id: str) -> Complaint:
    try:
        return services.complaints.get(complaint_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("", summary="Complaints, newest first (staff): filter by moderation, status, incident")
def list_complaints(user: AnyRole, services: Services, page: Annotated[PageParams, Depends(page_params)],
                    moderation: Literal["pending", "approved", "rejected"] | None = None,
                    status: Literal["open", "closed"] | None = None,
                    alert_id: Annotated[str | None, Field(max_length=64)] = None) -> Page[Complaint]:
    found, total = services.complaints.find(statuses=[status] if status else None, moderation=moderation,
                                            alert_id=alert_id, limit=page.limit, offset=page.offset)
    return Page(data=found, count=total)


@router.get("/{complaint_id}", summary="One complaint with its contact (operators call back)", responses=NOT_FOUND)
def detail(complaint_id: ComplaintId, user: Responder, services: Services) -> ComplaintDetail:
    complaint = _complaint(services, complaint_id)
    return ComplaintDetail(complaint=complaint, contact=services.complaints.contact(complaint_id))


@router.get("/{complaint_id}/photo", summary="Its photo (staff; re-encoded, no metadata)", response_class=Response,
            responses=JPEG)
def staff_photo(complaint_id: ComplaintId, user: AnyRole, services: Services) -> Response:
    photo = services.complaints.photo(complaint_id, public=False)
    if not photo:
        raise HTTPException(404, "no photo")
    return Response(photo, media_type="image/jpeg")


@router.post("/{complaint_id}/moderate", summary="Approve or reject its text and photo for the public",
             responses=NOT_FOUND)
def moderate(complaint_id: ComplaintId, body: Moderation, user: Responder, services: Services) -> Complaint:
    _complaint(services, complaint_id)
    return services.complaints.moderate(complaint_id, body.approve, user.name)


@router.post("/{complaint_id}/answer", summary="The city's public answer and the status", responses=NOT_FOUND)
def answer(complaint_id: ComplaintId, body: Answer, user: Responder, services: Services) -> Complaint:
    _complaint(services, complaint_id)
    return services.complaints.answer(complaint_id, body.status, body.notes.strip())


@router.put("/{complaint_id}/link", summary="Link to an incident by hand (audited)", responses=NOT_FOUND)
def link(complaint_id: ComplaintId, body: LinkBody, user: Responder, services: Services) -> Alert:
    _complaint(services, complaint_id)
    try:
        return services.linker.link(complaint_id, body.alert_id, user.name)
    except AlertNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.delete("/{complaint_id}/link", status_code=204, summary="Unlink from its incident (audited)",
               responses=NOT_FOUND)
def unlink(complaint_id: ComplaintId, user: Responder, services: Services) -> None:
    _complaint(services, complaint_id)
    try:
        services.linker.unlink(complaint_id, user.name)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc


@public_router.get("/{complaint_id}/photo.jpg", summary="A complaint's photo, once a moderator approved it",
                   response_class=Response, responses=JPEG)
def public_photo(complaint_id: ComplaintId, services: Services) -> Response:
    photo = services.complaints.photo(complaint_id, public=True)
    if not photo:
        raise HTTPException(404, "no public photo")
    return Response(photo, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=300"})
