"""srht_core.db: one database per service, the mirrored-user model, the
session's life in a request, and the statement counter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from support import wait_until

from srht_core import Database, db_session
from srht_core.db import default_url, request_statements


def models() -> Any:
    from srht_test_chores import models

    return models


@pytest.mark.postgres
def test_mirrored_user_keeps_metas_id_and_timestamps(chores_app: Any) -> None:
    User, Chore = models().User, models().Chore
    db = chores_app.extensions["srht"].db
    with db.session() as session:
        session.add(User(id=4242, username="alice", email="alice@example.org"))

    with db.session() as session:
        alice = session.get(User, 4242)
        assert alice is not None
        assert (alice.username, alice.canonical_name, alice.user_type) == (
            "alice",
            "~alice",
            "active",
        )
        assert not alice.is_admin and not alice.is_suspended
        assert isinstance(alice.created, datetime) and alice.updated >= alice.created
        assert alice.suspension_notice is None
        alice.chores.append(Chore(title="feed the cat"))
        long_ago = datetime(2020, 1, 1)
        alice.created = alice.updated = long_ago

    with db.session() as session:
        alice = session.get(User, 4242)
        assert alice.updated == long_ago
        alice.user_type = "admin"

    with db.session() as session:
        alice = session.get(User, 4242)
        assert alice.is_admin
        assert alice.created == long_ago and alice.updated > long_ago
        assert [c.title for c in alice.chores] == ["feed the cat"]
        assert alice.chores[0].owner_id == 4242


@pytest.mark.postgres
def test_mirrored_usernames_are_unique(chores_app: Any) -> None:
    User = models().User
    db = chores_app.extensions["srht"].db
    with db.session() as session:
        session.add(User(id=1, username="bob", email="bob@example.org"))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(User(id=2, username="bob", email="other@example.org"))
    with db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


@pytest.mark.postgres
def test_session_rolls_back_when_the_block_raises(chores_app: Any) -> None:
    Chore = models().Chore
    db = chores_app.extensions["srht"].db
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Chore(title="never saved"))
        session.flush()
        raise RuntimeError("changed my mind")
    with db.session() as session:
        assert session.scalars(sa.select(Chore)).all() == []


@pytest.mark.postgres
def test_db_session_is_the_apps_and_ends_with_the_app_context(chores_app: Any) -> None:
    db = chores_app.extensions["srht"].db
    with chores_app.app_context():
        session = db_session()
        assert session.get_bind() is db.engine
        assert db_session() is session
        session.add(models().Chore(title="uncommitted"))
    with chores_app.app_context():
        assert db_session() is not session
        assert db_session.scalars(sa.select(models().Chore)).all() == []


@pytest.mark.postgres
def test_two_apps_in_one_process_keep_their_own_databases(
    chores_plugin: Any,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    srht_postgres: Any,
) -> None:
    first = make_app(
        "chores", make_config({"chores": {"connection-string": srht_postgres.create_database()}})
    )
    second = make_app(
        "chores", make_config({"chores": {"connection-string": srht_postgres.create_database()}})
    )

    created = first.test_client().post("/api/chores", json={"title": "only in the first"})
    assert created.status_code == 201

    assert [c["title"] for c in first.test_client().get("/api/chores").json["results"]] == [
        "only in the first"
    ]
    assert second.test_client().get("/api/chores").json["results"] == []
    assert first.extensions["srht.db"] is not second.extensions["srht.db"]


def test_sqlite_is_the_embedded_default(
    chores_plugin: Any,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    app = make_app("chores", make_config({"chores": {}}))
    db = app.extensions["srht"].db

    assert str(db.url) == default_url(tmp_path / "data", "chores")
    assert (tmp_path / "data" / "chores.db").is_file()
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(models().Chore(title="owned by nobody", owner_id=999))


@pytest.mark.postgres
def test_count_statements_counts_what_runs_inside_the_block(chores_app: Any) -> None:
    db = chores_app.extensions["srht"].db
    with db.engine.connect() as connection:
        with db.count_statements() as counted:
            for _ in range(3):
                connection.execute(sa.text("SELECT 1"))
        connection.execute(sa.text("SELECT 1"))
    assert counted[0] == 3

    with db.count_statements() as nothing:
        pass
    assert nothing[0] == 0


@pytest.mark.postgres
def test_a_page_runs_the_same_statements_for_one_item_or_many(chores_app: Any) -> None:
    Chore = models().Chore
    db = chores_app.extensions["srht"].db
    client = chores_app.test_client()

    def statements_of_listing() -> int:
        with db.count_statements() as counted:
            assert client.get("/api/chores").status_code == 200
        return counted[0]

    with db.session() as session:
        session.add(Chore(title="one"))
    one = statements_of_listing()
    with db.session() as session:
        session.add_all(Chore(title=f"chore {n}") for n in range(20))
    many = statements_of_listing()

    assert one == many >= 1


@pytest.mark.postgres
def test_request_statements_counts_from_the_start_of_the_request(chores_app: Any) -> None:
    seen: list[int] = []

    @chores_app.after_request
    def remember(response: Any) -> Any:
        seen.append(request_statements())
        return response

    chores_app.test_client().get("/api/chores")
    chores_app.test_client().get("/api/chores")
    assert seen[0] == seen[1] >= 1


def test_a_database_can_live_outside_flask(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'alone.db'}")
    try:
        with db.session() as session:
            assert session.execute(sa.text("SELECT 41 + 1")).scalar() == 42
        assert (tmp_path / "nested" / "alone.db").is_file()
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_connection_cut_while_idle_is_replaced_before_use(
    srht_postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart (here: the server ending the pooled connection's
    backend) while the pool sat idle costs no request an error: the idle
    connection is pinged at checkout and replaced. Busy connections are not
    pinged, which saves a round trip per request."""
    import srht_core.db

    db = Database(srht_postgres.create_database())
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(
        db.engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection)
    )
    try:
        with db.session() as session:
            first = session.scalar(sa.text("SELECT pg_backend_pid()"))
        with db.session() as session:
            assert session.scalar(sa.text("SELECT pg_backend_pid()")) == first
        assert pings == []  # fresh, then used a moment ago: no round trip spent

        with sa.create_engine(db.url).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            admin.commit()
        monkeypatch.setattr(srht_core.db, "PING_AFTER_IDLE", 0.0)
        with db.session() as session:
            second = session.scalar(sa.text("SELECT pg_backend_pid()"))
        assert second != first and pings == [1]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_connection_the_server_ended_a_moment_after_use_is_replaced_before_use(
    srht_postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a PostgreSQL restart does to a busy pool: the server ends a
    connection that served a request a moment ago. Its socket shows it
    (readable: the server's goodbye and end of file), so it is pinged and
    replaced before the next request gets it, although it was not idle."""
    db = Database(srht_postgres.create_database())
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(
        db.engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection)
    )
    admin = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    try:
        with db.session() as session:
            first = session.scalar(sa.text("SELECT pg_backend_pid()"))
        with admin.begin() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})

        def ended() -> bool:
            with admin.connect() as connection:
                return not connection.scalar(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": first},
                )

        wait_until(ended, what="the backend to end")
        with db.session() as session:
            second = session.scalar(sa.text("SELECT pg_backend_pid()"))
        assert second != first and pings == [1]
    finally:
        db.dispose()
        admin.dispose()


@pytest.mark.postgres
def test_a_request_that_reads_runs_without_a_transaction_and_cannot_write(
    chores_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """GET, HEAD and OPTIONS requests read on read-only autocommit
    connections (no BEGIN and ROLLBACK round trips); a write there is
    refused with the view's name, by the session and by PostgreSQL, and
    nothing of it is kept. A view marked ``writes`` and every POST get a
    read-write transaction as before."""
    from flask import jsonify

    from srht_core import writes

    Chore = models().Chore

    def transaction() -> dict[str, Any]:
        db_session.execute(sa.text("SELECT 1"))  # a first statement...
        return {  # ...after which a transaction begun by BEGIN is older than this one
            "own": db_session.scalar(sa.text("SELECT now() = statement_timestamp()")),
            "read_only": db_session.scalar(sa.text("SHOW transaction_read_only")),
        }

    @chores_app.route("/t/look", methods=["GET", "POST"])
    def look() -> Any:
        return jsonify(transaction())

    look.srht_csrf_exempt = True  # type: ignore[attr-defined]

    @chores_app.get("/t/add")
    def add() -> Any:
        db_session.add(Chore(title="from a GET"))
        db_session.commit()
        return "added"

    @chores_app.get("/t/raw")
    def raw() -> Any:
        db_session.execute(
            sa.text(
                "INSERT INTO chore (title, done, reminded, created, updated) "
                "VALUES ('raw', false, false, now(), now())"
            )
        )
        return "inserted"

    @chores_app.get("/t/confirm")
    @writes
    def confirm() -> Any:
        db_session.add(Chore(title="confirmed"))
        db_session.add(Chore(title="confirmed too"))
        db_session.commit()
        return jsonify(transaction())

    client = chores_app.test_client()
    assert client.get("/t/look").json == {"own": True, "read_only": "on"}
    assert client.post("/t/look").json == {"own": False, "read_only": "off"}

    assert client.get("/t/add").status_code == 500
    assert "ReadOnlyRequestError: GET /t/add (view add) changed Chore" in caplog.text
    assert client.get("/t/raw").status_code == 500
    assert "cannot execute INSERT in a read-only transaction" in caplog.text

    assert client.get("/t/confirm").json == {"own": False, "read_only": "off"}
    with chores_app.app_context():
        titles = db_session.scalars(sa.select(Chore.title).order_by(Chore.title)).all()
    assert titles == ["confirmed", "confirmed too"]
