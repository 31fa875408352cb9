"""The data layer: one database per service.

Owns the SQLAlchemy engine and session of a service (attached to its Flask
app as ``app.extensions["srht.db"]``), the mixins services build their
models on (see :mod:`srht_core.models`), and a statement counter that
tests use to prove a page's query count does not grow with its items.
It knows nothing of any service's models.

Requests that only read (GET, HEAD, OPTIONS) run on a second pool whose
PostgreSQL connections are in autocommit and read-only: no ``BEGIN`` and
``ROLLBACK`` round trips around a page's queries, and the database itself
refuses a write. A view that must write on such a request says so with
:func:`writes`; any other write there fails loudly, in tests first.

A database restart must cost no request once the database is back. A pooled
connection is not pinged on every checkout (``pool_pre_ping``: one more
round trip on every request, most of a small page's database time); it is
checked for free instead. When PostgreSQL stops, restarts or ends a
connection, the server closes its end of the socket, so an idle pooled
connection whose socket has become readable has been cut (or was sent a
message out of turn): only then is it pinged, and replaced if dead, before
a request sees it. One ``poll()`` system call, no round trip; the same
check the Go MySQL driver and redis-py make before reusing a connection.
What no socket can show (a host that vanished without closing anything, a
firewall that forgot the connection) is covered by pinging connections idle
for :data:`PING_AFTER_IDLE` seconds or more, and by SQLAlchemy invalidating
the whole pool on the first disconnect it meets. Retrying a failed request
instead was rejected: a request cannot tell whether its own statements ran
before the connection died, and replaying a request body is the view's
business, not the pool's. What remains (a connection cut between the check
and its first statement) fails like any other database outage: a 503 with
``Retry-After`` (:mod:`srht_core.errors`), and writes that carry an
``Idempotency-Key`` can be retried safely (:mod:`srht_core.idempotency`).

Whether an error means "the database is unavailable" rather than "this
statement is wrong" is :func:`database_unavailable`'s answer, shared by the
error pages and the workers.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask import globals as flask_globals
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.orm.attributes import instance_state
from werkzeug.local import LocalProxy

from .changes import RowFeed
from .text import check_rows

__all__ = [
    "Database",
    "HeldCommit",
    "ReadOnlyRequestError",
    "db_session",
    "database_unavailable",
    "default_url",
    "error_summary",
    "hold_commits",
    "release_commits",
    "utcnow",
    "writes",
]

#: Where :meth:`Database.join_when_used` keeps the rows waiting for the
#: app context's session (in :data:`flask.g`).
_JOINING = "_srht_joining_rows"

#: Requests that read only: their sessions use the read-only pool.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

F = TypeVar("F", bound=Callable[..., Any])


def writes(view: F) -> F:
    """Mark a view that writes to the database on a GET or HEAD request
    (an OAuth callback, say), so its requests get a read-write transaction
    like a POST. Any other write during a GET, HEAD or OPTIONS request
    raises :class:`ReadOnlyRequestError`. A link sent by mail should not
    write on GET at all: mail scanners open links, so show a button that
    posts (as meta's confirmation links do)."""
    view.srht_writes = True  # type: ignore[attr-defined]
    return view


class ReadOnlyRequestError(RuntimeError):
    """A GET, HEAD or OPTIONS request tried to write through the request's
    session, and its view is not marked with :func:`writes`."""


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be used right now (it is
    down, restarting, refusing connections, or dropped the connection; the
    pool is exhausted; a lock or statement timed out) rather than that a
    statement is wrong. Such a request answers 503 with ``Retry-After``; a
    worker waits and tries again."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            sa.exc.OperationalError
            | sa.exc.InterfaceError
            | sa.exc.DisconnectionError
            | sa.exc.TimeoutError,
        ):
            return True
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__
    return False


def error_summary(error: BaseException) -> str:
    """The first line of ``error`` (a driver's message runs on), for a log
    line about an outage."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what every timestamp column stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def default_url(data_dir: str | os.PathLike[str], service: str) -> str:
    """The SQLite database of a service with no ``connection-string``."""
    return f"sqlite:///{Path(data_dir) / (service + '.db')}"


class Database:
    """A service's engine and sessions, attachable to a Flask app.

    :param url: SQLAlchemy URL (``postgresql://...`` or ``sqlite:///...``).
    :param app: the app to attach to now; or call :meth:`init_app` later.

    In a request (or any app context) :data:`db_session` is a session bound
    to this database, made the first time the context uses it (a request
    that never touches the database makes none) and closed when the
    context ends. Outside Flask, use :meth:`session` as a context manager.

    A row can be handed out before that session is made, and join it the
    moment it is: :meth:`join_when_used` (the core does so with the user
    behind a token or a cookie, kept in memory: see :func:`api_user`),
    :meth:`context_row` (a row of the session, or waiting to join it) and
    :meth:`has_context_session`.
    """

    def __init__(self, url: str, app: Flask | None = None, *, echo: bool = False):
        self.url = sa.make_url(url)
        if self.url.drivername == "postgresql":
            # srht ships psycopg2; SQLAlchemy 2.1 reads a bare postgresql://
            # as psycopg 3, which is not installed.
            self.url = self.url.set(drivername="postgresql+psycopg2")
        if self.url.get_backend_name() == "sqlite" and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = _make_engine(self.url, echo=echo)
        #: The pool of read-only autocommit connections that requests which
        #: only read use (PostgreSQL; SQLite begins no transaction to read).
        self.read_engine: Engine | None = None
        if self.url.get_backend_name() == "postgresql":
            self.read_engine = _make_engine(self.url, echo=echo, read_only=True)
        self.sessionmaker = sessionmaker(
            self.engine, expire_on_commit=False, info={"srht.db": self}
        )
        self._request_sessionmaker = sessionmaker(
            self.engine,
            class_=_RequestSession,
            expire_on_commit=False,
            info={"srht.read_engine": self.read_engine, "srht.db": self},
        )
        #: The session of the current app context (a request's), made when
        #: first used; :data:`db_session` is a proxy to it.
        self.scoped: scoped_session[Session] = scoped_session(
            self._new_context_session,  # type: ignore[arg-type]
            scopefunc=_context_id,
        )
        for maker in (self.sessionmaker, self._request_sessionmaker):
            event.listen(maker, "before_flush", _check_text)
        self._row_feed: RowFeed | None = None
        self._row_feed_lock = threading.Lock()
        self._inherited_feeds: list[RowFeed] = []
        self.statements = 0
        for engine in (self.engine, self.read_engine):
            if engine is not None:
                event.listen(engine, "before_cursor_execute", self._count)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["srht.db"] = self

        @app.teardown_appcontext
        def remove_session(_exc: BaseException | None) -> None:
            self.scoped.remove()

    def _new_context_session(self) -> Session:
        session = self._request_sessionmaker()
        if has_app_context():
            for instance in g.pop(_JOINING, {}).values():
                session.add(instance)
        return session

    def has_context_session(self) -> bool:
        """Whether the current app context's session has been made yet."""
        return bool(self.scoped.registry.has())

    def join_when_used(self, instance: Any) -> None:
        """Make the detached ``instance`` (a row, its primary key set: see
        :func:`sqlalchemy.orm.make_transient_to_detached`) a row of the
        current app context's session: now if that session has been made,
        else the moment it is. A request that never uses its session never
        makes one, and pays nothing for it; one that does finds
        ``instance`` in it, with whatever the view changed on it meanwhile
        (flushed on commit, as on any row). Until then
        :meth:`context_row` finds it.

        Only for an instance whose attributes are all loaded and which has
        no relationships: those are what a row outside a session cannot
        give (SQLAlchemy raises ``DetachedInstanceError``).

        .. versionadded:: 0.1
        """
        if self.has_context_session():
            self.scoped().add(instance)
            return
        joining: dict[Any, Any] = g.setdefault(_JOINING, {})
        joining[instance_state(instance).key] = instance

    def context_row(self, identity_key: Any) -> Any:
        """The row of ``identity_key`` (a mapper's
        ``identity_key_from_primary_key``) in the current app context's
        session, or waiting to join it (:meth:`join_when_used`), or
        ``None``. Neither makes the session nor queries.

        .. versionadded:: 0.1
        """
        if self.has_context_session():
            return self.scoped().identity_map.get(identity_key)
        joining: dict[Any, Any] | None = g.get(_JOINING)
        return joining.get(identity_key) if joining else None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error.

        Its own transaction, read-write even inside a GET request (the
        mirroring of a user on their first visit uses one)."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def _count(self, *_args: Any) -> None:
        self.statements += 1

    @contextmanager
    def count_statements(self) -> Iterator[list[int]]:
        """Count the SQL statements run inside the block: ``with
        db.count_statements() as n: ...; n[0]``."""
        result = [0]
        before = self.statements
        try:
            yield result
        finally:
            result[0] = self.statements - before

    def row_feed(self) -> RowFeed | None:
        """This process's :class:`~srht_core.changes.RowFeed` of the database,
        started on first use (``None`` on SQLite, which cannot notify)."""
        if self.url.get_backend_name() != "postgresql":
            return None
        feed = self.running_row_feed()
        if feed is None:
            with self._row_feed_lock:
                feed = self.running_row_feed()
                if feed is None:
                    # A forked worker starts its own; the parent's thread did
                    # not survive the fork. The parent's feed is kept, never
                    # collected here: closing its connection from this
                    # process would end it for the parent too.
                    if self._row_feed is not None:
                        self._inherited_feeds.append(self._row_feed)
                    feed = self._row_feed = RowFeed(self.engine)
        return feed

    def running_row_feed(self) -> RowFeed | None:
        """The feed if this process started one, without starting it."""
        feed = self._row_feed
        return feed if feed is not None and feed.pid == os.getpid() else None

    def dispose(self) -> None:
        feed = self.running_row_feed()
        if feed is not None:  # (a parent's is left alone, as in row_feed)
            feed.stop()
            self._row_feed = None
        self.scoped.remove()
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()


def _check_text(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse text no column can store, whatever way it came in (see
    :mod:`srht_core.text`)."""
    check_rows([*session.new, *(obj for obj in session.dirty if session.is_modified(obj))])


def _reading() -> bool:
    """Whether this is a request that only reads (see :func:`writes`)."""
    if not has_request_context() or request.method not in SAFE_METHODS:
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    return not getattr(view, "srht_writes", False)


class _RequestSession(Session):
    """The session of a request: on the read-only pool while the request
    only reads, and refusing to write there; its commits held back while
    :func:`hold_commits` says so."""

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        read_engine = self.info.get("srht.read_engine")
        if read_engine is not None and _reading():
            return read_engine
        return super().get_bind(*args, **kwargs)

    def commit(self) -> None:
        held: HeldCommit | None = self.info.get(_HELD)
        if held is None:
            super().commit()
            return
        self.flush()  # what commit would send, and its errors (a unique key taken)
        held.requested = True


_HELD = "srht.held_commit"


@dataclass
class HeldCommit:
    """A request session's held-back commit: whether the view asked for it."""

    requested: bool = False


def hold_commits(session: Session) -> HeldCommit:
    """From now on, ``session.commit()`` only flushes and remembers that a
    commit was asked for; :func:`release_commits` commits for real. A write
    request of an API is handled this way (see :mod:`srht_core.idempotency`),
    so its answer and its data are committed together, after the answer is
    made: a failure before that leaves nothing committed.

    .. versionadded:: 0.1
    """
    held = HeldCommit()
    session.info[_HELD] = held
    return held


def release_commits(session: Session, *, commit: bool) -> None:
    """Stop holding ``session``'s commits, and commit what it holds (when
    ``commit``) or roll it back."""
    session.info.pop(_HELD, None)
    if commit:
        session.commit()
    else:
        session.rollback()


def _refuse(what: str) -> None:
    raise ReadOnlyRequestError(
        f"{request.method} {request.path} (view {request.endpoint}) {what}; a "
        f"{request.method} request only reads. Write in a POST, or mark the view "
        "with @srht_core.writes if it must write (as a confirmation link does)."
    )


@event.listens_for(_RequestSession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if not _reading():
        return
    changed = [
        *session.new,
        *session.deleted,
        *(obj for obj in session.dirty if session.is_modified(obj)),
    ]
    if changed:
        _refuse("changed " + ", ".join(sorted({type(obj).__name__ for obj in changed})))


@event.listens_for(_RequestSession, "do_orm_execute")
def _refuse_dml(state: Any) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and _reading():
        _refuse(
            "ran an " + ("INSERT" if state.is_insert else "UPDATE" if state.is_update else "DELETE")
        )


def _context_id() -> int:
    ctx = flask_globals._cv_app.get(None)
    return id(ctx)


def _make_engine(url: sa.URL, *, echo: bool, read_only: bool = False) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = sa.create_engine(url, echo=echo)
    if read_only:

        @event.listens_for(engine, "connect")
        def autocommit_read_only(dbapi_connection: Any, _record: Any) -> None:
            # Set once per connection; resetting it on return costs nothing,
            # as a rollback in autocommit sends nothing.
            dbapi_connection.set_session(readonly=True, autocommit=True)

    _check_pooled_connections(engine)
    return engine


#: A pooled connection that sat unused longer than this (seconds) is pinged
#: before it is handed out, even when its socket shows nothing.
PING_AFTER_IDLE = 10.0


def _socket_has_news(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket is readable (or broken): the
    server closed it, or sent something out of turn. Asking costs one
    ``poll()``, no round trip."""
    if getattr(dbapi_connection, "closed", 0):
        return True
    try:
        fileno = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - no socket to look at: let the ping decide
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _check_pooled_connections(engine: Engine) -> None:
    """Before a pooled connection is handed out, ping it if its socket says
    the server has hung up (see the module's docstring) or it has been
    idle for :data:`PING_AFTER_IDLE` seconds; a dead one is replaced."""

    @event.listens_for(engine, "checkin")
    def idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["srht.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("srht.idle_since")
        if since is None:
            return  # fresh from connect()
        if time.monotonic() - since < PING_AFTER_IDLE and not _socket_has_news(dbapi_connection):
            return  # in use a moment ago, and the server has not hung up since
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # Whatever failed the ping would fail the request: the pool
            # discards this connection and makes a new one.
            raise sa.exc.DisconnectionError(str(error)) from error


def _current_session() -> scoped_session[Any]:
    db: Database = current_app.extensions["srht.db"]
    return db.scoped


#: The current app's database session (a proxy, valid in an app context).
db_session: Session = LocalProxy(_current_session)  # type: ignore[assignment]


def request_statements() -> int:
    """SQL statements run so far in this request (for tests and logging)."""
    db: Database = current_app.extensions["srht.db"]
    start: int = g.get("_srht_statements_at_start", db.statements)
    return db.statements - start
