"""Pages kept for visitors without cookies, until what they show changes.

Most views of a public tracker or paste come from people (and crawlers)
who are not signed in and carry no session: for them a page depends only on
its URL and on the data it shows. Two helpers keep such a page's rendered
bytes per app (so per worker process):

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
view, on every answer, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import Response, current_app, g, make_response, request, session

from .changes import Change, RowFeed

__all__ = ["PageCache", "anonymous_page", "watch", "watched_page"]

#: Bytes of pages kept per app (per worker process).
BUDGET = 32 * 1024 * 1024
#: A page larger than this share of the budget is never kept.
LARGEST_SHARE = 8


class PageCache:
    """Rendered pages, least recently used out first, bounded in bytes.

    A page may be kept with the rows it watches; :meth:`forget` (the row
    feed's subscriber) drops the pages that watch a changed row.
    """

    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.used = 0
        self.hits = 0
        self.misses = 0
        #: Raised by every :meth:`forget`: a page rendered across one is not kept.
        self.generation = 0
        #: The row feed this cache listens to (see :func:`watched_page`).
        self.feed: RowFeed | None = None
        self._pages: OrderedDict[Hashable, _Page] = OrderedDict()
        #: table -> row id (None: the whole table) -> keys of pages watching it
        self._watchers: dict[str, dict[str | None, set[Hashable]]] = {}
        self._lock = Lock()
        self._subscribing = Lock()

    def get(self, key: Hashable) -> Response | None:
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
        return Response(page.body, page.status, page.headers)

    def put(
        self,
        key: Hashable,
        response: Response,
        *,
        watched: frozenset[Change] = frozenset(),
        generation: int | None = None,
    ) -> bool:
        """Keep ``response`` under ``key``; with ``generation``, only if no
        :meth:`forget` came since it was read. Whether it was kept."""
        body = response.get_data()
        if len(body) > self.budget // LARGEST_SHARE:
            return False
        headers = [
            (name, value)
            for name, value in response.headers.items()
            if name.lower() != "content-length"
        ]
        with self._lock:
            if key in self._pages or (generation is not None and generation != self.generation):
                return False
            self._pages[key] = _Page(body, response.status_code, headers, watched)
            for table, row in watched:
                self._watchers.setdefault(table, {}).setdefault(row, set()).add(key)
            self.used += len(body)
            while self.used > self.budget:
                self._drop(next(iter(self._pages)))
        return True

    def listen_to(self, feed: RowFeed) -> None:
        """Subscribe to ``feed`` (once; a new feed, as in a forked worker,
        replaces the old one and forgets every watched page)."""
        if self.feed is feed:
            return
        with self._subscribing:
            if self.feed is not feed:
                self.forget(None)
                feed.subscribe(self.forget)
                self.feed = feed

    def forget(self, changes: set[Change] | None) -> None:
        """Drop the pages watching any of ``changes``; ``None``: every page
        that watches rows."""
        with self._lock:
            self.generation += 1
            if changes is None:
                doomed = {
                    key
                    for rows in self._watchers.values()
                    for keys in rows.values()
                    for key in keys
                }
            else:
                doomed = set()
                for table, row in changes:
                    rows = self._watchers.get(table)
                    if not rows:
                        continue
                    if row is None:
                        for keys in rows.values():
                            doomed |= keys
                    else:
                        doomed |= rows.get(row, set()) | rows.get(None, set())
            for key in doomed:
                self._drop(key)

    def _drop(self, key: Hashable) -> None:
        page = self._pages.pop(key)
        self.used -= len(page.body)
        for table, row in page.watched:
            rows = self._watchers[table]
            rows[row].discard(key)
            if not rows[row]:
                del rows[row]
                if not rows:
                    del self._watchers[table]


class _Page(NamedTuple):
    body: bytes
    status: int
    headers: list[tuple[str, str]]
    watched: frozenset[Change]


def _cache() -> PageCache:
    cache: PageCache | None = current_app.extensions.get("srht.page_cache")
    if cache is None:
        cache = current_app.extensions.setdefault("srht.page_cache", PageCache())
    return cache


def _visitor_without_state() -> bool:
    from .identity import LOGIN_COOKIE

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
    cache = _cache()
    found = cache.get(key)
    _count(found is not None)
    if found is not None:
        return found
    response = make_response(render())
    if _keepable(response):
        cache.put(key, response)
    return response


def watched_page(render: Callable[[], Any]) -> Response:
    """Answer ``render()``'s page, kept for visitors without cookies until a
    row it :func:`watch`-ed changes.

    :param render: the whole view: lookup, access check and rendering, as a
        view would return its page. It must :func:`watch` every row whose
        change could change the page or who may see it; a page that
        watched nothing is not kept.

    A hit runs nothing of ``render``. The rows' tables must be watched by a
    migration (:func:`srht_core.changes.watch_rows`); without a live row
    feed (SQLite, or PostgreSQL while the feed's connection is down) every
    request renders.
    """
    db = current_app.extensions["srht.db"]
    feed = db.row_feed()
    if feed is None or not _visitor_without_state():
        return make_response(render())
    cache = _cache()
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
        cache.put(key, response, watched=frozenset(watched), generation=generation)
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
    count = current_app.extensions.get("srht.count_kept_page")  # see metrics
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
