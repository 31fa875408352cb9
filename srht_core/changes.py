"""Which rows changed, told to every process by PostgreSQL.

A page kept in memory (:func:`srht_core.watched_page`) must be dropped the
moment a row it shows changes, whichever process or host wrote the row. A
service asks PostgreSQL to say so: a migration puts a trigger on a table
(:func:`watch_rows`), and from then on every ``INSERT``, ``UPDATE`` and
``DELETE`` on it sends ``NOTIFY srht_rows, '<table>:<id>'`` (a ``TRUNCATE``
sends ``'<table>:*'``). PostgreSQL sends a notification only when the
transaction commits, and drops duplicates within one transaction.

Each worker process listens on a connection of its own (:class:`RowFeed`),
in a background thread, and hands what it hears to its subscribers. A
process also tells its subscribers at once about the tables it changed
itself, on commit (a coarser, table-wide signal), so a worker always sees
its own writes on its next request.

What the feed cannot promise, it says: until its ``LISTEN`` is in place, and
from the moment its connection fails until it is back, :attr:`RowFeed.live`
is false and subscribers are told that *everything* may have changed, twice:
when the connection is lost and again once it listens anew. It counts as
listening only once a probe it notified through the service's own
connections has arrived, and after 15 s of quiet it sends another: a
connection pooler in transaction mode, which accepts a ``LISTEN`` and never
delivers, leaves the feed not live (and pages not kept), never deaf and
trusted.

Between a commit and the notification reaching another process there is a
delay, well under a millisecond on one machine; a request that read the row
just before the commit answers with the same old data.

A process starts its feed the first time it asks for it
(:meth:`srht_core.db.Database.row_feed`). SQLite has no notifications: the
feed is ``None`` there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

__all__ = ["CHANNEL", "Change", "RowFeed", "ensure_watched", "unwatch_rows", "watch_rows"]

log = logging.getLogger("srht.changes")

#: The channel every watched table notifies on (one per database, and each
#: service has a database of its own).
CHANNEL = "srht_rows"

#: Payloads the feeds send to prove they still hear.
PROBE = "srht-probe:"

#: ``(table, id)``: one row, its id as text; ``(table, None)``: any row of it.
Change = tuple[str, str | None]

#: Called with the changes heard, or ``None`` for "anything may have changed".
Subscriber = Callable[[set[Change] | None], None]

_FUNCTION = f"""
CREATE OR REPLACE FUNCTION srht_row_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':*');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || OLD.id);
    ELSE
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || NEW.id);
    END IF;
    RETURN NULL;
END
$$
"""


def watch_rows(op: Any, table: str) -> None:
    """In a migration's ``upgrade()``: notify every change to ``table``'s rows
    (which must have an ``id`` column). Nothing on SQLite.

    ``op`` is Alembic's ``op``; the function the trigger runs is created or
    replaced as well, so any migration may be the first to watch a table.
    """
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _watching(_quoted(op, table)):
        op.execute(statement)


def ensure_watched(connection: sa.Connection, table: str) -> bool:
    """Watch ``table``'s rows as :func:`watch_rows` does, unless a trigger
    already does; whether it added one. Nothing on SQLite.

    ``srht migrate`` calls it for the user table of every service that
    keeps users (see :mod:`srht_core.usercache`), after the migrations.

    .. versionadded:: 0.1
    """
    if connection.dialect.name != "postgresql":
        return False
    quoted = connection.dialect.identifier_preparer.quote(table)
    watched = connection.execute(
        sa.text(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'srht_row_changed' "
            "AND tgrelid = to_regclass(:table)"
        ),
        {"table": quoted},
    ).first()
    if watched is not None:
        return False
    for statement in _watching(quoted):
        connection.exec_driver_sql(statement)
    return True


def _watching(quoted: str) -> list[str]:
    """The statements that watch the rows of the table ``quoted``."""
    return [
        _FUNCTION,
        f"CREATE TRIGGER srht_row_changed AFTER INSERT OR UPDATE OR DELETE "
        f"ON {quoted} FOR EACH ROW EXECUTE FUNCTION srht_row_changed()",
        f"CREATE TRIGGER srht_rows_truncated AFTER TRUNCATE "
        f"ON {quoted} FOR EACH STATEMENT EXECUTE FUNCTION srht_row_changed()",
    ]


def unwatch_rows(op: Any, table: str) -> None:
    """In a migration's ``downgrade()``: undo :func:`watch_rows`."""
    if op.get_bind().dialect.name != "postgresql":
        return
    quoted = _quoted(op, table)
    op.execute(f"DROP TRIGGER IF EXISTS srht_row_changed ON {quoted}")
    op.execute(f"DROP TRIGGER IF EXISTS srht_rows_truncated ON {quoted}")


def _quoted(op: Any, table: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(table))


class FeedError(Exception):
    """The row feed cannot trust what it hears (or does not hear)."""


def parse(payload: str) -> Change | None:
    """``'<table>:<id>'`` or ``'<table>:*'`` as a :data:`Change`; ``None``
    for a probe or anything else."""
    if payload.startswith(PROBE):
        return None
    table, colon, row = payload.rpartition(":")
    if not colon or not table:
        return None
    return (table, None if row == "*" else row)


class RowFeed:
    """This process's ear on one database's ``srht_rows`` channel.

    Started on first use by :meth:`srht_core.db.Database.row_feed`; a thread
    holds one connection of its own, listening, and reconnects with a
    growing pause when it is lost.
    """

    #: Seconds without a notification after which the feed proves it still
    #: hears: it sends a probe through the service's own connections.
    CHECK_EVERY = 15.0
    #: Seconds a probe may take to arrive.
    PROBE_TIMEOUT = 5.0
    #: Pauses between attempts to connect again, in seconds.
    RETRY_PAUSES = (0.2, 1.0, 5.0, 15.0)

    def __init__(self, engine: Engine):
        self.engine = engine
        self.pid = os.getpid()
        self.live = False
        self.subscribers: list[Subscriber] = []
        self._stopping = threading.Event()
        self._wake_up, self._waker = os.pipe()  # stop() writes; the thread's wait ends
        self._connection: Any = None
        self._selector: selectors.BaseSelector | None = None
        self._probes = 0
        self._thread = threading.Thread(target=self._run, name="srht-row-feed", daemon=True)
        self._thread.start()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def tell(self, changes: set[Change] | None) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber(changes)
            except Exception:  # one subscriber's bug must not deafen the others
                log.exception("a subscriber of the row feed failed")

    def wait_live(self, timeout: float = 10.0) -> bool:
        """Wait until the feed listens (tests, and start-up checks)."""
        deadline = time.monotonic() + timeout
        while not self.live and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.live

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._waker, b"x")
        self._thread.join(5)
        self._close()
        os.close(self._waker)
        os.close(self._wake_up)

    # -- the listening thread --------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
                self._hear()
            except Exception as error:
                if self._stopping.is_set():
                    break
                if self.live:  # it was heard from: the pauses start anew
                    failures = 0
                if failures == 0:
                    log.warning(
                        "row feed is not listening (%s); kept pages are dropped "
                        "and none are kept until it is back",
                        error,
                    )
                self._lose()
                pause = self.RETRY_PAUSES[min(failures, len(self.RETRY_PAUSES) - 1)]
                failures += 1
                self._stopping.wait(pause)
        self._lose()

    def _listen(self) -> None:
        args, params = self.engine.dialect.create_connect_args(self.engine.url)
        params = {
            "connect_timeout": 10,
            **params,
            "application_name": "srht row feed",
            # a peer that vanished is noticed within half a minute
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        connection = self.engine.dialect.loaded_dbapi.connect(*args, **params)
        self._connection = connection
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self._selector = selectors.DefaultSelector()
        self._selector.register(connection, selectors.EVENT_READ)
        self._selector.register(self._wake_up, selectors.EVENT_READ)

    def _hear(self) -> None:
        """Hear until stopped or lost. A probe, notified through the service's
        own connections, must come back within ``PROBE_TIMEOUT``: the first
        makes the feed live (a connection pooler in transaction mode, as
        PgBouncer's default, accepts the ``LISTEN`` and never delivers), the
        next ones after each ``CHECK_EVERY`` of quiet keep it so."""
        assert self._selector is not None
        probe: str | None = self._send_probe()
        deadline = time.monotonic() + self.PROBE_TIMEOUT
        while not self._stopping.is_set():
            wait = self.CHECK_EVERY if probe is None else deadline - time.monotonic()
            ready = self._selector.select(max(wait, 0.0))
            heard = self._take()
            if probe is not None:
                if probe in heard:
                    probe = None
                    if not self.live:
                        # Whatever changed before the LISTEN was not heard.
                        self.tell(None)
                        self.live = True
                        log.info("row feed listening on %s", CHANNEL)
                elif time.monotonic() >= deadline:
                    raise FeedError(
                        f"a probe sent {self.PROBE_TIMEOUT:g} s ago never arrived"
                        if self.live
                        else f"a notification sent through the service's connections did "
                        f"not arrive within {self.PROBE_TIMEOUT:g} s on the listening "
                        f"one (is a connection pooler in transaction mode in between?)"
                    )
            elif not ready:  # quiet for a while: still listening?
                probe = self._send_probe()
                deadline = time.monotonic() + self.PROBE_TIMEOUT

    def _take(self) -> set[str]:
        """Read what arrived, tell the changes among it (once live), and
        return every payload."""
        connection = self._connection
        connection.poll()
        payloads = {note.payload for note in connection.notifies}
        connection.notifies.clear()
        changes = {change for change in map(parse, payloads) if change}
        if changes and self.live:
            self.tell(changes)
        return payloads

    def _send_probe(self) -> str:
        """Notify a probe through the service's pool (not the listening
        connection); the feed must hear it."""
        self._probes += 1
        probe = f"{PROBE}{self.pid}.{id(self):x}.{self._probes}"
        # A pooled DBAPI connection, not a SQLAlchemy one: what a request's
        # statements are counted by (tests, metrics) does not see the probe.
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, probe))
            cursor.close()
            connection.commit()
        finally:
            connection.close()  # back to the pool
        return probe

    def _lose(self) -> None:
        was_live = self.live
        self.live = False
        self._close()
        if was_live:
            self.tell(None)

    def _close(self) -> None:
        selector, self._selector = self._selector, None
        if selector is not None:
            selector.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # it is being thrown away
                connection.close()


# -- a process's own writes ----------------------------------------------
#
# Sessions made by srht_core.db.Database carry it in their ``info``; on
# commit, the tables they wrote are told to its feed, if it has one running.


def _tables_written(session: Session) -> set[str]:
    tables: set[str] = session.info.setdefault("srht.tables_written", set())
    return tables


@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _context: Any) -> None:
    if "srht.db" not in session.info:
        return
    written = _tables_written(session)
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(sa.inspect(obj).mapper.persist_selectable, "name", None)
        if table:
            written.add(table)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: Any) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and "srht.db" in state.session.info:
        name = getattr(getattr(state.statement, "table", None), "name", None)
        if name:
            _tables_written(state.session).add(name)


@event.listens_for(Session, "after_commit")
def _tell_own_writes(session: Session) -> None:
    written = session.info.pop("srht.tables_written", None)
    if not written:
        return
    feed = session.info["srht.db"].running_row_feed()
    if feed is not None:
        feed.tell({(table, None) for table in written})


@event.listens_for(Session, "after_rollback")
def _forget_own_writes(session: Session) -> None:
    session.info.pop("srht.tables_written", None)
