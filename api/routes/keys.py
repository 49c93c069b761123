"""API keys: admin only. The key itself is shown once, at creation."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from api.auth import Admin, ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.services import Services

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_RESPONSES)


@router.get("", summary="List API keys (never the secrets)")
def list_keys(user: Admin, services: Services, page: Annotated[PageParams, Depends(page_params)]) -> Page[ApiKeyPublic]:
    keys, total = services.keys.list(page.limit, page.offset)
    return Page(data=keys, count=total)


@router.post("", status_code=201, summary="Create an API key; the answer holds the key, once")
def create_key(body: ApiKeyCreate, user: Admin, services: Services) -> ApiKeyCreated:
    return services.keys.create(body.name, body.role)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key",
               responses={404: {"model": ErrorBody, "description": "no live key with that id"}})
def revoke_key(key_id: str, user: Admin, services: Services) -> None:
    if not services.keys.revoke(key_id):
        raise HTTPException(404, f"no live API key {key_id[:40]!r}")
