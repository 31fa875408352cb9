"""srht_core.changes and watched_page: PostgreSQL tells every process which
rows changed, and pages kept for visitors without cookies are dropped when
a row they watch does; a lost connection drops them all and keeps none until
it listens again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from flask import render_template_string
from support import wait_until

from srht_core import db_session, state_of, unwatch_rows, watch, watch_rows, watched_page
from srht_core.changes import Change, RowFeed
from srht_core.identity import LOGIN_COOKIE, seal

pytestmark = pytest.mark.postgres


def migrate(engine: sa.Engine, change: Any, table: str) -> None:
    with engine.begin() as connection:
        change(Operations(MigrationContext.configure(connection)), table)


@pytest.fixture
def app(chores_app: Any) -> Any:
    """chores (its migrations watch the ``chore`` table); ``app.other`` is a
    second engine on the same database, as another worker or host would
    write."""
    db = chores_app.extensions["srht"].db
    state_of(chores_app).revoked = lambda kind, token_id: False
    chores_app.other = sa.create_engine(db.url)
    yield chores_app
    chores_app.other.dispose()


@pytest.fixture
def heard(app: Any) -> Iterator[list[set[Change] | None]]:
    feed = app.extensions["srht"].db.row_feed()
    assert feed.wait_live(), "the row feed never listened"
    told: list[set[Change] | None] = []
    feed.subscribe(told.append)
    yield told


def run(engine: sa.Engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(sql))


def test_every_committed_change_to_a_watched_row_is_heard(app: Any, heard: list[Any]) -> None:
    run(
        app.other,
        "INSERT INTO chore (id, title, done, reminded, created, updated) "
        "VALUES (1, 'one', false, false, now(), now()), "
        "(2, 'two', false, false, now(), now())",
    )
    wait_until(
        lambda: {("chore", "1"), ("chore", "2")} <= set().union(*heard),
        what="both inserted rows to be heard",
    )

    with app.other.connect() as connection:  # rolled back: PostgreSQL says nothing
        connection.execute(sa.text("UPDATE chore SET title = 'gone' WHERE id = 2"))
        connection.rollback()
    heard.clear()
    run(app.other, "UPDATE chore SET done = true WHERE id = 1")
    run(app.other, "DELETE FROM chore WHERE id = 2")
    wait_until(lambda: ("chore", "2") in set().union(*heard), what="the delete")
    assert set().union(*heard) == {("chore", "1"), ("chore", "2")}

    heard.clear()
    run(app.other, "TRUNCATE chore")
    wait_until(lambda: heard, what="the truncate")
    assert heard == [{("chore", None)}]

    heard.clear()
    run(app.other, 'UPDATE "user" SET username = username')  # not watched
    migrate(app.extensions["srht"].db.engine, unwatch_rows, "chore")
    run(
        app.other,
        "INSERT INTO chore (id, title, done, reminded, created, updated) "
        "VALUES (3, 'three', false, false, now(), now())",
    )
    run(app.other, "NOTIFY srht_rows, 'marker:1'")  # everything sent before has arrived
    wait_until(lambda: heard, what="the marker")
    assert heard == [{("marker", "1")}]

    migrate(app.extensions["srht"].db.engine, watch_rows, "chore")  # and back
    heard.clear()
    run(app.other, "UPDATE chore SET title = 'again' WHERE id = 3")
    wait_until(lambda: heard, what="the update")
    assert heard == [{("chore", "3")}]


def test_a_lost_connection_tells_everything_and_listens_again(
    app: Any, heard: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    feed = app.extensions["srht"].db.row_feed()
    run(
        app.other,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'srht row feed'",
    )
    # told twice: when it was lost, and once it listened again
    wait_until(lambda: heard.count(None) == 2 and feed.live, what="the feed to come back")
    assert "row feed is not listening" in caplog.text

    run(
        app.other,
        "INSERT INTO chore (id, title, done, reminded, created, updated) "
        "VALUES (4, 'four', false, false, now(), now())",
    )
    wait_until(lambda: {("chore", "4")} in heard, what="a change after the reconnection")


@pytest.fixture
def chore_page(app: Any) -> list[int]:
    """``/t/chore/<id>``: a watched page; returns the list of rendered ids."""
    from srht_test_chores.models import Chore

    renders: list[int] = []

    @app.get("/t/chore/<int:number>")
    def chore(number: int) -> Any:
        def render() -> Any:
            renders.append(number)
            found = db_session.get(Chore, number)
            if found is None:
                return "no such chore", 404
            if number != 3:  # chore 3's page forgets to watch anything
                watch(found)
            return render_template_string("{{ c.title }}{{ ' (done)' if c.done }}", c=found)

        return watched_page(render)

    with app.app_context():
        db_session.add_all([Chore(id=n, title=f"chore {n}") for n in (1, 2, 3)])
        db_session.commit()
    assert app.extensions["srht"].db.row_feed().wait_live()
    return renders


def test_a_watched_page_runs_no_query_until_its_row_changes(
    app: Any, chore_page: list[int]
) -> None:
    from srht_test_chores.models import Chore

    db = app.extensions["srht"].db
    visitor = app.test_client()
    assert visitor.get("/t/chore/1").text == "chore 1"
    with db.count_statements() as statements:
        answers = [visitor.get("/t/chore/1") for _ in range(3)]
    assert [a.text for a in answers] == ["chore 1"] * 3 and statements[0] == 0
    assert chore_page == [1]
    assert all(
        a.headers["X-Frame-Options"] == "DENY" and "Set-Cookie" not in a.headers for a in answers
    )
    visitor.get("/t/chore/2")
    assert chore_page == [1, 2]
    scraped = visitor.get("/metrics").text
    assert 'srht_kept_pages_total{result="hit",service="chores"} 3.0' in scraped
    assert 'srht_kept_pages_total{result="miss",service="chores"} 2.0' in scraped

    # Written by another process: dropped when PostgreSQL's notification
    # arrives, and only this chore's page.
    run(app.other, "UPDATE chore SET done = true WHERE id = 1")
    wait_until(
        lambda: visitor.get("/t/chore/1").text == "chore 1 (done)",
        what="the page to follow the change",
    )
    visitor.get("/t/chore/2")
    assert chore_page.count(2) == 1

    # Written by this process: seen on its very next request.
    with app.app_context():
        db_session.get(Chore, 2).title = "renamed"
        db_session.commit()
    assert visitor.get("/t/chore/2").text == "renamed"

    # Gone: 404, and a 404 is never kept.
    run(app.other, "DELETE FROM chore WHERE id = 1")
    wait_until(lambda: visitor.get("/t/chore/1").status_code == 404, what="the 404")
    rendered = len(chore_page)
    assert visitor.get("/t/chore/1").status_code == 404 and len(chore_page) == rendered + 1


def test_a_watched_page_is_kept_only_for_visitors_without_state_and_a_live_feed(
    app: Any, chore_page: list[int]
) -> None:
    from srht_test_chores.models import User

    with app.app_context():
        db_session.add(User(id=7, username="alice", email="alice@example.org"))
        db_session.commit()
    alice = app.test_client()
    alice.set_cookie(
        LOGIN_COOKIE, seal({"u": 7, "s": 1, "t": int(time.time())}, app.extensions["srht"])
    )
    for _ in range(2):
        alice.get("/t/chore/1")
    visitor = app.test_client()
    for _ in range(2):
        visitor.get("/t/chore/3")  # watched nothing: never kept
    assert chore_page == [1, 1, 3, 3]

    # While the feed is down, nothing is served from memory nor kept.
    visitor.get("/t/chore/2")
    feed = app.extensions["srht"].db.row_feed()
    feed.RETRY_PAUSES = (3.0,)
    run(
        app.other,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'srht row feed'",
    )
    wait_until(lambda: not feed.live, what="the feed to notice")
    before = len(chore_page)
    for _ in range(2):
        visitor.get("/t/chore/2")
    assert len(chore_page) == before + 2
    wait_until(lambda: feed.live, what="the feed to come back")
    visitor.get("/t/chore/2")
    with app.extensions["srht"].db.count_statements() as statements:
        visitor.get("/t/chore/2")
    assert statements[0] == 0


def test_the_feed_proves_it_hears_and_keeps_proving_it(
    chores_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RowFeed, "CHECK_EVERY", 0.05)  # a probe every 50 ms of quiet
    feed = chores_app.extensions["srht"].db.row_feed()
    assert feed.wait_live()
    told: list[Any] = []
    feed.subscribe(told.append)
    time.sleep(1)  # about twenty probes, each heard; none is a change
    assert feed.live and told == [] and feed._probes > 5


def test_a_feed_that_does_not_hear_its_probe_is_never_live(
    chores_app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # as behind a pooler in transaction mode: the probe is sent, never delivered
    monkeypatch.setattr(RowFeed, "_send_probe", lambda self: "srht-probe:lost")
    monkeypatch.setattr(RowFeed, "PROBE_TIMEOUT", 0.2)
    monkeypatch.setattr(RowFeed, "RETRY_PAUSES", (0.1,))
    feed = chores_app.extensions["srht"].db.row_feed()
    wait_until(lambda: "did not arrive" in caplog.text, what="the feed to give up")
    assert not feed.wait_live(timeout=0.5)
    assert "is a connection pooler in transaction mode in between?" in caplog.text
