"""The citizens' pages (static, no build step, no login): free hospital beds and complaints.
They hold no data of their own and use the public API like any client. Indonesian paths too.
Served from memory with an ETag (api/static_page.py)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.routes.control_room import STATIC
from api.static_page import RESPONSES as HTML
from api.static_page import StaticPage

router = APIRouter(tags=["citizens"])
BEDS = StaticPage(STATIC / "beds.html")
COMPLAINT = StaticPage(STATIC / "complaint.html")
HOSPITAL_DESK = StaticPage(STATIC / "hospital-desk.html")


@router.get("/beds", response_class=HTMLResponse, summary="Free hospital beds now (page)", responses=HTML)
async def beds_page(request: Request) -> Response:
    return BEDS.response(request)


@router.get("/tempat-tidur", include_in_schema=False)
async def beds_page_id(request: Request) -> Response:
    return BEDS.response(request)


@router.get("/complaint", response_class=HTMLResponse, summary="File and follow a complaint (page)", responses=HTML)
async def complaint_page(request: Request) -> Response:
    return COMPLAINT.response(request)


@router.get("/pengaduan", include_in_schema=False)
async def complaint_page_id(request: Request) -> Response:
    return COMPLAINT.response(request)


@router.get("/hospital-desk", response_class=HTMLResponse, summary="A hospital's staff update free beds and the "
            "duty roster (page; asks for the hospital's key)", responses=HTML)
async def hospital_desk_page(request: Request) -> Response:
    return HOSPITAL_DESK.response(request)
