"""Pages kept for visitors without cookies, until what they show changes.

Most views of a public tracker or paste come from people (and crawlers)
who are not signed in and carry no session: for them a page depends only on
its URL and on the data it shows. :func:`anonymous_page` keeps such a
page's rendered bytes per app (so per worker process) under the URL and a
*version* the view computes from what the page shows (a tracker's revision,
a paste's ``updated``), and serves them again while the version is the same.

The view still runs its own query and access check on every request: the
version comes from that query, so a page is never served to someone who
may no longer see it, nor after it changed. What is kept is the rendering.

A page is kept only when nothing in it is the visitor's own: the request has
no login cookie and an empty session, and rendering neither touched the
session (a CSRF token, a flashed message) nor set a cookie. Security headers
and the like are added after the view, on every answer, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any

from flask import Response, current_app, make_response, request, session

__all__ = ["PageCache", "anonymous_page"]

#: Bytes of pages kept per app (per worker process).
BUDGET = 32 * 1024 * 1024
#: A page larger than this share of the budget is never kept.
LARGEST_SHARE = 8


class PageCache:
    """Rendered pages, least recently used out first, bounded in bytes."""

    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._pages: OrderedDict[Hashable, tuple[bytes, int, list[tuple[str, str]]]] = \
            OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable) -> Response | None:
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
        body, status, headers = page
        return Response(body, status, headers)

    def put(self, key: Hashable, response: Response) -> None:
        body = response.get_data()
        if len(body) > self.budget // LARGEST_SHARE:
            return
        headers = [(name, value) for name, value in response.headers.items()
                   if name.lower() != "content-length"]
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = (body, response.status_code, headers)
            self.used += len(body)
            while self.used > self.budget:
                _key, (dropped, _status, _headers) = self._pages.popitem(last=False)
                self.used -= len(dropped)


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
    if found is not None:
        return found
    response = make_response(render())
    if (response.status_code == 200 and not response.direct_passthrough
            and not response.is_streamed and not session.modified and not session
            and "Set-Cookie" not in response.headers):
        cache.put(key, response)
    return response
