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
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from werkzeug.local import LocalProxy

from .changes import RowFeed
from .text import check_rows

__all__ = [
    "Database",
    "ReadOnlyRequestError",
    "db_session",
    "default_url",
    "utcnow",
    "writes",
]

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
    to this database, closed when the context ends. Outside Flask, use
    :meth:`session` as a context manager.
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
        self.scoped = scoped_session(
            sessionmaker(
                self.engine,
                class_=_RequestSession,
                expire_on_commit=False,
                info={"srht.read_engine": self.read_engine, "srht.db": self},
            ),
            scopefunc=_context_id,
        )
        for maker in (self.sessionmaker, self.scoped.session_factory):
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
    only reads, and refusing to write there."""

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        read_engine = self.info.get("srht.read_engine")
        if read_engine is not None and _reading():
            return read_engine
        return super().get_bind(*args, **kwargs)


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
    from flask import globals as flask_globals

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

    _ping_idle_connections(engine)
    return engine


#: A pooled connection that sat unused longer than this (seconds) is pinged
#: before it is handed out.
PING_AFTER_IDLE = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has been idle.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round
    trip on every request, which on a busy server is most of a small page's
    database time. A connection that served a request a moment ago is
    alive; one that sat idle may have been cut by a database restart or a
    firewall, and is pinged (and replaced, if dead) before a request
    sees it fail.
    """

    @event.listens_for(engine, "checkin")
    def idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["srht.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("srht.idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return  # fresh from connect(), or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                # The pool discards this connection and makes a new one.
                raise sa.exc.DisconnectionError(str(error)) from error
            raise


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
