"""The public pages (static, no build step, no login): the city page with its district map. They hold
no data of their own and read the public routes (/public/map, /public/city) like any client, so they
can show nothing the public routes do not. Each page has an Indonesian path too. More public pages
(complaints, hospital beds, open data) join the navigation in api/static/public.js."""

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.routes.control_room import STATIC

router = APIRouter(tags=["public pages"])
HTML = {200: {"content": {"text/html": {}}}}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/city", response_class=FileResponse, summary="The public city page: districts on a map with their "
            "power and traffic status (HTML)", responses=HTML)
def city_page() -> FileResponse:
    return _page("city.html")


@router.get("/kota", include_in_schema=False)
def city_page_id() -> FileResponse:
    return _page("city.html")


@router.get("/data", response_class=FileResponse, summary="The public open-data page: charts of the open summaries "
            "and a link to every dataset (HTML)", responses=HTML)
def data_page() -> FileResponse:
    return _page("data.html")


@router.get("/data-terbuka", include_in_schema=False)
def data_page_id() -> FileResponse:
    return _page("data.html")
