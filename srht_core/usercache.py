"""Users kept in memory: the user behind a token or a login cookie found
without a database round trip.

Every authenticated request loads its user (:func:`srht_core.api_user`,
:data:`srht_core.current_user`). Each worker process keeps the users it has
loaded, as clean copies of their rows (column values only), and hands a
request its own copy of one, attached to the request's session without a
query (``Session.merge(..., load=False)``): a view may change it, commit
it, or follow its relationships as it would a loaded row, and what it does
never reaches the kept copy or another request.

A kept user is dropped as soon as its row changes, whoever changes it: the
user table is watched (:func:`srht_core.changes.watch_rows`, put in place
by ``srht migrate`` for every service that keeps users), so PostgreSQL
notifies every worker of every committed change (an identity event that
updates, suspends or deletes the mirror, a first sight, meta suspending an
account or changing its type), and the worker's row feed drops the user.
A worker's own writes to the table drop every user at once, on commit. A
user read before a change and kept after it is refused (the cache's
generation moved in between).

Users are kept only while the row feed is live: on SQLite, or while the
feed's connection is down, every request reads its user from the database,
as it always did. Revocation (of a token, a login session, a deleted
account) is checked on every request before the user is looked at, as
before (see :mod:`.revocation`), and the suspended or deleted state is
checked on every copy handed out.

What it must not know: which service, or which user model, it keeps; the
caller gives the model and the session.
"""

from __future__ import annotations

from collections.abc import Callable
from threading import Lock
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from .cache import BoundedCache
from .changes import Change, RowFeed

__all__ = ["MAX_USERS", "UserCache"]

#: Users kept per app (per worker process). A copy takes about 1.2 kB (a
#: mirrored user's columns), so at most about 12 MB per worker.
MAX_USERS = 10_000


class UserCache:
    """Users by id, least recently used out first, each kept until its row
    changes (see the module's docstring).

    :param max_entries: at most this many users.
    """

    def __init__(self, max_entries: int = MAX_USERS):
        self.users: BoundedCache[tuple[str, int], Any] = BoundedCache(max_entries)
        #: Raised by every :meth:`forget`: a user read across one is not kept.
        self.generation = 0
        #: The row feed this cache listens to.
        self.feed: RowFeed | None = None
        #: Called with ``True`` for a user answered from memory, ``False``
        #: for one read while the feed is live (the metrics count them).
        self.count: Callable[[bool], None] | None = None
        self._mappers: dict[type, Mapper[Any]] = {}
        self._lock = Lock()
        self._subscribing = Lock()

    @property
    def hits(self) -> int:
        return self.users.hits

    @property
    def misses(self) -> int:
        return self.users.misses

    def listen_to(self, feed: RowFeed) -> None:
        """Subscribe to ``feed`` (once; a new feed, as in a forked worker,
        replaces the old one and forgets every user)."""
        if self.feed is feed:
            return
        with self._subscribing:
            if self.feed is not feed:
                self.forget(None)
                feed.subscribe(self.forget)
                self.feed = feed

    def forget(self, changes: set[Change] | None) -> None:
        """Drop the users whose rows are among ``changes``; ``None``: every user."""
        with self._lock:
            self.generation += 1
            if changes is None:
                self.users.clear()
                return
            for table, row in changes:
                if row is None:
                    self.users.pop_where(lambda key, table=table: key[0] == table)  # type: ignore[misc]
                elif row.isdigit():
                    self.users.pop((table, int(row)))

    def load(self, session: Session, model: Any, user_id: int, feed: RowFeed | None) -> Any:
        """The ``model`` row of ``user_id`` in ``session``, or ``None`` when
        there is none: from the session's identity map, from memory while
        ``feed`` is live, else from the database (and kept)."""
        if feed is None:
            return session.get(model, user_id)
        mapper = self._mappers.get(model)
        if mapper is None:
            mapper = self._mappers[model] = sa.inspect(model)
        found = session.identity_map.get(mapper.identity_key_from_primary_key((user_id,)))
        if found is not None:
            return found
        self.listen_to(feed)
        key = (getattr(mapper.persist_selectable, "name", ""), user_id)
        live = feed.live
        if live:
            kept = self.users.get(key)
            if self.count is not None:
                self.count(kept is not None)
            if kept is not None:
                return session.merge(kept, load=False)
        generation = self.generation
        user = session.get(model, user_id)
        if user is not None and live:
            copy = _clean_copy(user)
            if copy is not None:
                with self._lock:
                    if generation == self.generation and feed.live:
                        self.users.put(key, copy)
        return user


def _clean_copy(user: Any) -> Any:
    """A detached copy of ``user``'s column values as loaded, or ``None``
    when the row was already changed in this session (never kept)."""
    state = sa.inspect(user)
    if not state.persistent or state.modified or state.expired_attributes:
        return None
    mapper = state.mapper
    copy = mapper.class_manager.new_instance()
    for attribute in mapper.column_attrs:
        if attribute.key not in state.dict:  # deferred: loaded when used
            continue
        set_committed_value(copy, attribute.key, state.dict[attribute.key])
    make_transient_to_detached(copy)
    return copy
