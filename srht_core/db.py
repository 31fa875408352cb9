"""The data layer: one database per service.

Owns the SQLAlchemy engine and session of a service (attached to its Flask
app as ``app.extensions["srht.db"]``), the mixins services build their
models on (the mirrored user, timestamps), and a statement counter that
tests use to prove a page's query count does not grow with its items.
It knows nothing of any service's models.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session, sessionmaker
from werkzeug.local import LocalProxy

__all__ = [
    "Database",
    "MirroredUserMixin",
    "TimestampMixin",
    "db_session",
    "default_url",
    "utcnow",
]


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
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.scoped = scoped_session(self.sessionmaker, scopefunc=_context_id)
        self.statements = 0
        event.listen(self.engine, "before_cursor_execute", self._count)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["srht.db"] = self

        @app.teardown_appcontext
        def remove_session(_exc: BaseException | None) -> None:
            self.scoped.remove()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
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

    def dispose(self) -> None:
        self.scoped.remove()
        self.engine.dispose()


def _context_id() -> int:
    from flask import globals as flask_globals

    ctx = flask_globals._cv_app.get(None)
    return id(ctx)


def _make_engine(url: sa.URL, *, echo: bool) -> Engine:
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


def _current_session() -> scoped_session[Session]:
    db: Database = current_app.extensions["srht.db"]
    return db.scoped


#: The current app's database session (a proxy, valid in an app context).
db_session: Session = LocalProxy(_current_session)  # type: ignore[assignment]


class TimestampMixin:
    """``created`` and ``updated`` columns, in UTC."""

    created: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, nullable=False)
    updated: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow, onupdate=utcnow,
                                              nullable=False)


class MirroredUserMixin(TimestampMixin):
    """A service's copy of a user of the identity provider (meta).

    ``id`` is meta's id for the user, never generated locally, so every
    service agrees on who is who. The core fills and updates these columns
    on sign-on and on ``user_updated`` events; a service adds relations of
    its own in its subclass, which must set ``__tablename__ = "user"``.
    """

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(sa.String(256), nullable=False)
    user_type: Mapped[str] = mapped_column(sa.String(32), nullable=False, default="active")
    suspension_notice: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    @property
    def canonical_name(self) -> str:
        return "~" + self.username

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"

    @property
    def is_suspended(self) -> bool:
        return self.user_type == "suspended"


def request_statements() -> int:
    """SQL statements run so far in this request (for tests and logging)."""
    db: Database = current_app.extensions["srht.db"]
    start: int = g.get("_srht_statements_at_start", db.statements)
    return db.statements - start
