"""The public pages (static, no build step, no login): the city page with its district map. They hold
no data of their own and read the public routes (/public/map, /public/city) like any client, so they
can show nothing the public routes do not. Each page has an Indonesian path too. More public pages
(complaints, hospital beds, open data) join the navigation in api/static/public.js.
Served from memory with an ETag (api/static_page.py)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.routes.control_room import STATIC
from api.static_page import RESPONSES as HTML
from api.static_page import StaticPage

router = APIRouter(tags=["public pages"])
CITY = StaticPage(STATIC / "city.html")
DATA = StaticPage(STATIC / "data.html")


@router.get("/city", response_class=HTMLResponse, summary="The public city page: districts on a map with their "
            "power and traffic status (HTML)", responses=HTML)
async def city_page(request: Request) -> Response:
    return CITY.response(request)


@router.get("/kota", include_in_schema=False)
async def city_page_id(request: Request) -> Response:
    return CITY.response(request)


@router.get("/data", response_class=HTMLResponse, summary="The public open-data page: charts of the open summaries "
            "and a link to every dataset (HTML)", responses=HTML)
async def data_page(request: Request) -> Response:
    return DATA.response(request)


@router.get("/data-terbuka", include_in_schema=False)
async def data_page_id(request: Request) -> Response:
    return DATA.response(request)
