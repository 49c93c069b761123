"""Every list answers {data, count}: a page of items and how many match in all."""

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 1000


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int


class PageParams(BaseModel):
    limit: int = 100
    offset: int = 0


def page_params(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
                offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0) -> PageParams:
    return PageParams(limit=limit, offset=offset)
