"""Pagination: numbered pages for web lists, opaque cursors for APIs.

Both run two bounded queries at most (the page and, for numbered pages, a
count), however long the list, so a page's query count never grows with the
number of items.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from flask import request
from sqlalchemy.orm import Session

from .errors import ApiError

__all__ = ["CursorPage", "Page", "cursor_paginate", "paginate", "paginate_list"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a numbered list."""

    items: list[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def paginate(
    session: Session,
    stmt: sa.Select[Any],
    *,
    per_page: int = 25,
    number: int | None = None,
    scalars: bool = True,
) -> Page[Any]:
    """Page ``stmt`` (which must have a stable ORDER BY) by ``?page=N``."""
    number = number or _page_number()
    total = (
        session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    )
    window = stmt.limit(per_page).offset((number - 1) * per_page)
    result = session.scalars(window) if scalars else session.execute(window)
    return Page(list(result.all()), number, per_page, total)


@dataclass(frozen=True)
class CursorPage(Generic[T]):
    """One page of an API list and the cursor of the next, if any."""

    items: list[T]
    next: str | None

    def json(self, item: Callable[[T], Any]) -> dict[str, Any]:
        """The page as every API of the site answers a list:
        ``{"results": [item(x) for x in items], "next": cursor-or-null}``."""
        return {"results": [item(x) for x in self.items], "next": self.next}


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "not a cursor this API gave out", field="cursor") from None


def _encode(value: object) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def _limit(limit: int | None) -> int:
    if limit is not None:
        return limit
    raw = request.args.get("limit", "25")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ApiError(400, "must be a number from 1 to 100", field="limit")
    return int(raw)


def cursor_paginate(
    session: Session,
    stmt: sa.Select[Any],
    key: Any,
    *,
    limit: int | None = None,
    descending: bool = True,
    scalars: bool = True,
) -> CursorPage[Any]:
    """Page ``stmt`` by the integer column ``key`` with ``?cursor=`` and
    ``?limit=`` (1-100, default 25): at most one bounded query, however long
    the list. ``scalars=False`` pages rows of a Core select."""
    limit = _limit(limit)
    cursor = request.args.get("cursor")
    if cursor:
        raw = _decode(cursor)
        if not raw.lstrip("-").isdigit():
            raise ApiError(400, "not a cursor this API gave out", field="cursor")
        after = int(raw)
        stmt = stmt.where(key < after if descending else key > after)
    stmt = stmt.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    result = session.scalars(stmt) if scalars else session.execute(stmt)
    items = list(result.all())
    more = len(items) > limit
    items = items[:limit]
    next_cursor = _encode(getattr(items[-1], key.key)) if more and items else None
    return CursorPage(items, next_cursor)


def paginate_list(
    items: Iterable[T], key: Callable[[T], str], *, limit: int | None = None
) -> CursorPage[T]:
    """Page a list that is not in the database (a repository's refs, say),
    in its given order, by each item's unique ``key``, with the same
    ``?cursor=`` and ``?limit=`` as :func:`cursor_paginate`."""
    limit = _limit(limit)
    cursor = request.args.get("cursor")
    listed = list(items)
    if cursor:
        after = _decode(cursor)
        keys = [key(item) for item in listed]
        if after not in keys:
            raise ApiError(
                400, "not a cursor this API gave out (or its item is gone)", field="cursor"
            )
        listed = listed[keys.index(after) + 1 :]
    page = listed[:limit]
    return CursorPage(page, _encode(key(page[-1])) if len(listed) > limit and page else None)
