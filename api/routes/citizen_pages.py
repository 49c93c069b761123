"""The citizens' pages (static, no build step, no login): free hospital beds and complaints.
They hold no data of their own and use the public API like any client. Indonesian paths too."""

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.routes.control_room import STATIC

router = APIRouter(tags=["citizens"])
HTML = {200: {"content": {"text/html": {}}}}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/beds", response_class=FileResponse, summary="Free hospital beds now (page)", responses=HTML)
def beds_page() -> FileResponse:
    return _page("beds.html")


@router.get("/tempat-tidur", include_in_schema=False)
def beds_page_id() -> FileResponse:
    return _page("beds.html")


@router.get("/complaint", response_class=FileResponse, summary="File and follow a complaint (page)", responses=HTML)
def complaint_page() -> FileResponse:
    return _page("complaint.html")


@router.get("/pengaduan", include_in_schema=False)
def complaint_page_id() -> FileResponse:
    return _page("complaint.html")


@router.get("/hospital-desk", response_class=FileResponse, summary="A hospital's staff update free beds and the "
            "duty roster (page; asks for the hospital's key)", responses=HTML)
def hospital_desk_page() -> FileResponse:
    return _page("hospital-desk.html")
