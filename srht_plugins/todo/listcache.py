"""A cache of rendered ticket lists, keyed by each tracker's revision.

A tracker's ticket list is the same for everyone who may browse the
tracker, and it changes only when something in it changes. So every flush
that touches a ticket, comment, label or the tracker itself raises the
tracker's ``revision`` in the same transaction (:func:`bump_revisions`, a
session listener: no write path can forget it), and the list's HTML is
kept per app (so per worker process) under ``(tracker id, revision, query
string)``. A repeat
view then costs the tracker's own row, which the page reads anyway to check
access: no ticket queries, no rendering of 25 rows.

Changes that bypass the ORM (bulk ``UPDATE``/``DELETE`` statements) must
call :func:`bump_all` or bump the trackers they touch themselves; the only
one today is :func:`srht_plugins.todo.tickets.forget_user`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app
from markupsafe import Markup
from sqlalchemy import event
from sqlalchemy.orm import Session

from srht_core import BoundedCache

from .models import Comment, Label, Ticket, Tracker, User

#: Rendered lists kept per app (one per worker process), about 10 kB each.
MAX_ENTRIES = 512


def cached_list(tracker: Tracker, query_string: bytes, render: Callable[[], str]) -> Markup:
    """The rendered list of ``tracker`` for this query string: kept while
    the tracker's revision is unchanged, else ``render()``-ed again.

    The key names the tracker by its id *and* when it was made: ids are
    never reused, but a SQLite database from before that was so may give a
    deleted tracker's id to a new one once, and a list kept for a private
    tracker must never be shown under a new one's name. The cache is the
    app's (two apps in one process, as in tests, have two databases with
    the same ids)."""
    cache: BoundedCache[tuple[Any, ...], Markup] | None = current_app.extensions.get(
        "todo.list_cache"
    )
    if cache is None:
        cache = current_app.extensions.setdefault("todo.list_cache", BoundedCache(MAX_ENTRIES))
    key = (tracker.id, tracker.created, tracker.revision, query_string)
    return cache.get_or_make(key, lambda: Markup(render()))  # noqa: S704 - our own template's


def bump_all(session: Session) -> None:
    """Invalidate every tracker's list (after a change that may show on any
    of them, such as a user's name)."""
    session.execute(sa.update(Tracker).values(revision=Tracker.revision + 1))


@event.listens_for(Session, "after_flush")
def bump_revisions(session: Session, _context: Any) -> None:
    """Raise the revision of every tracker whose list this flush changed.

    ``after_flush`` still sees what was new, changed and deleted, now with
    its ids assigned; the ``UPDATE`` runs in the flush's transaction, so the
    new revision and the change become visible together.
    """
    trackers: set[int] = set()
    tickets: set[int] = set()
    everything = False
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Tracker):
            trackers.add(obj.id)
        elif isinstance(obj, Ticket | Label):
            trackers.add(obj.tracker_id)
        elif isinstance(obj, Comment):
            tickets.add(obj.ticket_id)
        elif isinstance(obj, User) and (
            obj in session.deleted or sa.inspect(obj).attrs.username.history.has_changes()
        ):
            everything = True
    if everything:
        bump_all(session)
        return
    condition = []
    if trackers:
        condition.append(Tracker.id.in_(trackers))
    if tickets:
        condition.append(Tracker.id.in_(sa.select(Ticket.tracker_id).where(Ticket.id.in_(tickets))))
    if condition:
        session.execute(
            sa.update(Tracker).where(sa.or_(*condition)).values(revision=Tracker.revision + 1)
        )
