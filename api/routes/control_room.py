"""The control-room page: static files, no build step. The page holds no
data of its own; it asks for an API key and then uses the API like any client."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["control room"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/control-room")


@router.get("/control-room", response_class=FileResponse, summary="The control-room page (HTML)",
            responses={200: {"content": {"text/html": {}}}})
def control_room() -> FileResponse:
    return FileResponse(STATIC / "control-room.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


@router.get("/control-room/kpis", response_class=FileResponse, summary="The alarm KPI page for the shift supervisor",
            responses={200: {"content": {"text/html": {}}}})
def alarm_kpis_page() -> FileResponse:
    return FileResponse(STATIC / "alarm-kpis.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/control-room/moderation", response_class=FileResponse,
            summary="The moderation queue of citizens' complaints (HTML; approving needs an operator's key)",
            responses={200: {"content": {"text/html": {}}}})
def moderation_page() -> FileResponse:
    return FileResponse(STATIC / "moderation.html", media_type="text/html", headers={"Cache-Control": "no-cache"})
