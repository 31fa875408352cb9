"""Users kept in memory: the user behind a token or a login cookie found
without a database round trip.

Every authenticated request loads its user (:func:`srht_core.api_user`,
:data:`srht_core.current_user`). Each worker process keeps the users it has
loaded, as the column values of their clean rows, and hands a request its
own copy of one, a row made from those values without a query: a view may
change it, commit it, or follow its relationships as it would a loaded
row, and what it does never reaches the kept values or another request.

The copy is a row of the request's session. When the user model has no
relationships and no deferred columns (every service's but meta's), a copy
outside a session behaves as one inside for everything a view can do
before it uses the database, so it is handed out detached and joins the
session the moment the request makes it
(:meth:`srht_core.db.Database.join_when_used`): an authenticated call that
reads nothing else pays for no session and no transaction. Otherwise it is
added to the request's session at once.

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
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, make_transient_to_detached

from .cache import BoundedCache
from .changes import Change, RowFeed

if TYPE_CHECKING:
    from .db import Database

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
        #: Each model's mapper, and whether a copy of its row may be handed
        #: out detached (no relationships, no deferred columns: see :meth:`load`).
        self._models: dict[type, tuple[Mapper[Any], bool]] = {}
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

    def load(self, db: Database, model: Any, user_id: int, feed: RowFeed | None) -> Any:
        """The ``model`` row of ``user_id`` in the app context's session of
        ``db``, or ``None`` when there is none: the one already there (or
        waiting to join it), from memory while ``feed`` is live, else from
        the database (and kept)."""
        if feed is None:
            return db.scoped().get(model, user_id)
        known = self._models.get(model)
        if known is None:
            mapper = sa.inspect(model)
            detachable = not mapper.relationships and not any(
                attribute.deferred for attribute in mapper.column_attrs
            )
            known = self._models[model] = (mapper, detachable)
        mapper, detachable = known
        identity = mapper.identity_key_from_primary_key((user_id,))
        found = db.context_row(identity)
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
                copy = _copy(mapper, kept)
                if detachable:
                    db.join_when_used(copy)  # a request that reads nothing makes no session
                else:  # its relationships load only in a session: make it now
                    db.scoped().add(copy)
                return copy
        generation = self.generation
        user = db.scoped().get(model, user_id)
        if user is not None and live:
            values = _clean_values(user)
            if values is not None:
                with self._lock:
                    if generation == self.generation and feed.live:
                        self.users.put(key, values)
        return user


def _clean_values(user: Any) -> dict[str, Any] | None:
    """``user``'s column values as loaded, or ``None`` when the row was
    already changed in this session (never kept)."""
    state = sa.inspect(user)
    if not state.persistent or state.modified or state.expired_attributes:
        return None
    loaded = state.dict
    return {
        attribute.key: loaded[attribute.key]
        for attribute in state.mapper.column_attrs
        if attribute.key in loaded  # deferred: loaded when used
    }


def _copy(mapper: Mapper[Any], values: dict[str, Any]) -> Any:
    """A detached row of ``mapper`` holding ``values`` as loaded."""
    copy = mapper.class_manager.new_instance()
    copy.__dict__.update(values)  # as a query's loading sets them
    make_transient_to_detached(copy)  # (which marks them as loaded)
    return copy
