"""Pages kept for visitors without cookies, until what they show changes.

Most views of a public tracker or paste come from people (and crawlers)
who are not signed in and carry no session: for them a page depends only on
its URL and on the data it shows. Two helpers keep such a page's rendered
bytes per app (so per worker process), in its
:class:`~srht_core.cache.PageCache`:

- :func:`watched_page` keeps a page until PostgreSQL reports a change to a
  row it :func:`watch`-ed (see :mod:`srht_core.changes`). A hit runs no
  query at all: not even the view's lookup and access check, since a row
  that changes so that a visitor may no longer see the page drops it.
- :func:`anonymous_page` keeps a page under a *version* the view computes
  from its own query (a paste's ``updated``). The view's lookup and access
  check run on every request; what is kept is the rendering. It works on
  SQLite too.

A page is kept only when nothing in it is the visitor's own: the request has
no login cookie and an empty session, and rendering neither touched the
session (a CSRF token, a flashed message) nor set a cookie. Only answers
with status 200 are kept. Security headers and the like are added after the
view, on every answer, as before; what a page added to its own
Content-Security-Policy (:func:`~srht_core.allow_csp`) is kept with it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa
from flask import Response, g, make_response, request, session

from .changes import Change
from .globals import current_service
from .identity import LOGIN_COOKIE
from .security import keep_page_policy

__all__ = ["anonymous_page", "watch", "watched_page"]


def _visitor_without_state() -> bool:
    return LOGIN_COOKIE not in request.cookies and not session


def anonymous_page(version: Hashable, render: Callable[[], Any]) -> Response:
    """Answer ``render()``'s page, kept for visitors without cookies until
    ``version`` changes.

    :param version: what the page shows, as a hashable value that changes
        whenever the page would (for instance ``(tracker.id,
        tracker.revision)``). The URL (path and query string) is part of the
        key already.
    :param render: builds the page as a view would return it; called for
        signed-in visitors, visitors with a session, and on a miss.

    Call it after the view's own lookup and access check, never instead.
    """
    if not _visitor_without_state():
        return make_response(render())
    key = (request.path, request.query_string, version)
    cache = current_service().page_cache
    found = cache.get(key)
    _count(found is not None)
    if found is not None:
        return found
    response = make_response(render())
    if _keepable(response):
        keep_page_policy(response)
        cache.put(key, response)
    return response


def watched_page(render: Callable[[], Any], max_age: float | None = None) -> Response:
    """Answer ``render()``'s page, kept for visitors without cookies until a
    row it :func:`watch`-ed changes.

    :param render: the whole view: lookup, access check and rendering, as a
        view would return its page. It must :func:`watch` every row whose
        change could change the page or who may see it; a page that
        watched nothing is not kept.
    :param max_age: keep it at most this many seconds as well: for a page
        that also shows what no row of the service holds (what another
        service answered, kept that long).

    A hit runs nothing of ``render``. The rows' tables must be watched by a
    migration (:func:`srht_core.changes.watch_rows`); without a live row
    feed (SQLite, or PostgreSQL while the feed's connection is down) every
    request renders.

    .. versionchanged:: 0.1
        ``max_age``.
    """
    feed = current_service().db.row_feed()
    if feed is None or not _visitor_without_state():
        return make_response(render())
    cache = current_service().page_cache
    cache.listen_to(feed)
    key = ("watched", request.path, request.query_string)
    found = cache.get(key) if feed.live else None
    _count(found is not None)
    if found is not None:
        return found
    generation = cache.generation
    was_live = feed.live
    watched: set[Change] = set()
    g.srht_watched = watched
    try:
        response = make_response(render())
    finally:
        g.pop("srht_watched", None)
    if was_live and feed.live and watched and _keepable(response):
        keep_page_policy(response)
        cache.put(
            key,
            response,
            watched=frozenset(watched),
            generation=generation,
            max_age=max_age,
        )
    return response


def watch(*rows: Any) -> None:
    """Inside :func:`watched_page`'s ``render``: keep the page only until one
    of ``rows`` changes. A row is a loaded ORM object with an ``id``
    primary key; a model class watches every row of its table. Outside a
    watched page, nothing."""
    watched: set[Change] | None = g.get("srht_watched")
    if watched is None:
        return
    for row in rows:
        if isinstance(row, type):
            watched.add((sa.inspect(row).persist_selectable.name, None))
            continue
        state = sa.inspect(row)
        table = state.mapper.persist_selectable.name
        if state.identity is None or len(state.identity) != 1:
            raise ValueError(f"watch() needs a saved {table} row with a one-column id, not {row!r}")
        watched.add((table, str(state.identity[0])))


def _count(hit: bool) -> None:
    count = current_service().count_kept_page
    if count is not None:
        count(hit)


def _keepable(response: Response) -> bool:
    return (
        response.status_code == 200
        and not response.direct_passthrough
        and not response.is_streamed
        and not session.modified
        and not session
        and "Set-Cookie" not in response.headers
    )
