"""One bounded cache for everything the core and services keep in memory.

:class:`BoundedCache` keeps values by key, least recently used out first,
bounded by a number of entries and, when given a ``weigh`` function, by a
total weight (bytes, usually). It is thread-safe and counts its hits and
misses. Rendered pages, verified tokens, highlighted files and ticket lists
all use it, so each is bounded the same way and none grows without end.

A key must name what the value was made from in a way that cannot repeat
for different data: use ids that are never reused and a revision or a
content hash, never a position or a name alone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Generic, NamedTuple, TypeVar

from flask import Response

from .changes import Change, RowFeed

__all__ = ["BoundedCache", "PageCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A least-recently-used cache bounded by entries and, optionally, weight.

    :param max_entries: at most this many entries.
    :param max_weight: with ``weigh``, at most this total weight; a single
        value heavier than ``max_weight // 8`` is never kept (it would push
        out everything else).
    :param weigh: the weight of a value (``len`` of a body, say).
    :param on_evict: called (under the cache's lock) with each key and value
        that leave the cache: pushed out, replaced, popped or cleared.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
    ):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if (max_weight is None) != (weigh is None):
            raise ValueError("give max_weight and weigh together")
        self.max_entries = max_entries
        self.max_weight = max_weight
        self.weigh = weigh
        self.on_evict = on_evict
        self.weight = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        """The value kept under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` under ``key``, replacing what was there; whether
        it was kept (a value over the weight limit is not)."""
        weight = self.weigh(value) if self.weigh is not None else 0
        if self.max_weight is not None and weight > self.max_weight // 8:
            return False
        with self._lock:
            if key in self._items:
                self._remove(key)
            self._items[key] = value
            self.weight += weight
            while len(self._items) > self.max_entries or (
                self.max_weight is not None and self.weight > self.max_weight
            ):
                self._remove(next(iter(self._items)))
        return True

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value under ``key``, made and kept on a miss. ``make`` runs
        outside the lock: two threads missing at once may both make it."""
        found = self.get(key)
        if found is not None:
            return found
        value = make()
        self.put(key, value)
        return value

    def pop(self, key: K) -> V | None:
        """Remove and return the value under ``key``, if any."""
        with self._lock:
            if key not in self._items:
                return None
            return self._remove(key)

    def pop_where(self, doomed: Callable[[K], bool]) -> int:
        """Remove every entry whose key ``doomed`` says; how many."""
        with self._lock:
            keys = [key for key in self._items if doomed(key)]
            for key in keys:
                self._remove(key)
        return len(keys)

    def clear(self) -> None:
        with self._lock:
            for key in list(self._items):
                self._remove(key)

    def _remove(self, key: K) -> V:
        value = self._items.pop(key)
        if self.weigh is not None:
            self.weight -= self.weigh(value)
        if self.on_evict is not None:
            self.on_evict(key, value)
        return value


#: Bytes of pages kept per app (per worker process).
BUDGET = 32 * 1024 * 1024


class PageCache:
    """Rendered pages, least recently used out first, bounded in bytes (a
    :class:`BoundedCache` weighing each page's body).

    A page may be kept with the rows it watches; :meth:`forget` (the row
    feed's subscriber) drops the pages that watch a changed row.
    """

    def __init__(self, budget: int = BUDGET):
        self.pages: BoundedCache[Hashable, _Page] = BoundedCache(
            1_000_000,
            max_weight=budget,
            weigh=lambda page: len(page.body),
            on_evict=self._unwatch,
        )
        #: Raised by every :meth:`forget`: a page rendered across one is not kept.
        self.generation = 0
        #: The row feed this cache listens to (see :func:`srht_core.watched_page`).
        self.feed: RowFeed | None = None
        #: table -> row id (None: the whole table) -> keys of pages watching it
        self._watchers: dict[str, dict[str | None, set[Hashable]]] = {}
        self._lock = Lock()
        self._subscribing = Lock()

    @property
    def hits(self) -> int:
        return self.pages.hits

    @property
    def misses(self) -> int:
        return self.pages.misses

    def get(self, key: Hashable) -> Response | None:
        page = self.pages.get(key)
        if page is None:
            return None
        if page.expires is not None and time.monotonic() >= page.expires:
            self.pages.pop(key)
            return None
        return Response(page.body, page.status, page.headers)

    def put(
        self,
        key: Hashable,
        response: Response,
        *,
        watched: frozenset[Change] = frozenset(),
        generation: int | None = None,
        max_age: float | None = None,
    ) -> bool:
        """Keep ``response`` under ``key``; with ``generation``, only if no
        :meth:`forget` came since it was read; with ``max_age``, for at
        most that many seconds. Whether it was kept."""
        headers = [
            (name, value)
            for name, value in response.headers.items()
            if name.lower() != "content-length"
        ]
        expires = None if max_age is None else time.monotonic() + max_age
        page = _Page(response.get_data(), response.status_code, headers, watched, expires)
        with self._lock:
            if key in self.pages or (generation is not None and generation != self.generation):
                return False
            if not self.pages.put(key, page):
                return False
            for table, row in watched:
                self._watchers.setdefault(table, {}).setdefault(row, set()).add(key)
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
            doomed: set[Hashable] = set()
            if changes is None:
                for rows in self._watchers.values():
                    for keys in rows.values():
                        doomed |= keys
            else:
                for table, row in changes:
                    watched = self._watchers.get(table)
                    if not watched:
                        continue
                    rows = watched
                    if row is None:
                        for keys in rows.values():
                            doomed |= keys
                    else:
                        doomed |= rows.get(row, set()) | rows.get(None, set())
            for key in doomed:
                self.pages.pop(key)

    def _unwatch(self, key: Hashable, page: _Page) -> None:
        for table, row in page.watched:
            rows = self._watchers.get(table, {})
            keys = rows.get(row)
            if keys is None:
                continue
            keys.discard(key)
            if not keys:
                del rows[row]
                if not rows:
                    del self._watchers[table]


class _Page(NamedTuple):
    body: bytes
    status: int
    headers: list[tuple[str, str]]
    watched: frozenset[Change]
    #: ``time.monotonic()`` from which the page is not served (``None``: never).
    expires: float | None = None
