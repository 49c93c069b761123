"""API keys: admin only. The key itself is shown once, at creation."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from api.auth import Admin, ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeyRole
from api.errors import AUTH_RESPONSES, ErrorBody
from api.paging import Page, PageParams, page_params
from api.services import Services

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_RESPONSES)
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}$", description="the key's id (8 hex digits)")]
NO_KEY = {404: {"model": ErrorBody, "description": "no live key with that id"}}


@router.get("", summary="List API keys (never the secrets)")
def list_keys(user: Admin, services: Services, page: Annotated[PageParams, Depends(page_params)]) -> Page[ApiKeyPublic]:
    keys, total = services.keys.list(page.limit, page.offset)
    return Page(data=keys, count=total)


@router.post("", status_code=201, summary="Create an API key; the answer holds the key, once")
def create_key(body: ApiKeyCreate, user: Admin, services: Services) -> ApiKeyCreated:
    return services.keys.create(body.name, body.role)


@router.patch("/{key_id}", summary="Give an API key another role; its open streams end", responses=NO_KEY)
def change_role(key_id: KeyId, body: ApiKeyRole, user: Admin, services: Services) -> ApiKeyPublic:
    changed = services.keys.set_role(key_id, body.role)
    if changed is None:
        raise HTTPException(404, f"no live API key {key_id}")
    services.rights.check_soon()
    return changed


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key; its open streams end", responses=NO_KEY)
def revoke_key(key_id: KeyId, user: Admin, services: Services) -> None:
    if not services.keys.revoke(key_id):
        raise HTTPException(404, f"no live API key {key_id}")
    services.rights.check_soon()
