"""srht_core.usercache: the user behind a token or a login cookie, kept in
memory until its row changes, on PostgreSQL (the only database with a row
feed); read from the database every time without a live feed."""

from __future__ import annotations

import time
import types
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from support import wait_until

from srht_core import (
    DatabaseSchema,
    MirroredUserMixin,
    ServiceInfo,
    TokenGrant,
    api_user,
    current_user,
    db_session,
    hookimpl,
    seal_grant,
    state_of,
    writes,
)
from srht_core.identity import LOGIN_COOKIE, seal
from srht_core.usercache import UserCache

pytestmark = pytest.mark.postgres


@pytest.fixture
def site(chores_app: Any) -> Any:
    from srht_test_chores.models import Chore, User

    state = state_of(chores_app)
    state.revoked = lambda kind, token_id: False  # meta is not running here

    @chores_app.get("/t/mine")
    def mine() -> Any:
        from srht_core import api_user

        user = api_user()
        return {"username": user.username, "chores": [c.title for c in user.chores]}

    @chores_app.get("/t/rename")
    def rename() -> Any:
        from srht_core import api_user

        api_user().username = "changed-but-not-saved"
        return {"ok": True}

    with chores_app.app_context():
        for number, name in ((7, "alice"), (8, "bob")):
            user = User(id=number, username=name, email=f"{name}@example.org")
            db_session.add(user)
            db_session.add(Chore(title=f"{name}'s chore", owner=user))
        db_session.commit()
        tokens = {
            number: seal_grant(
                TokenGrant("pat", number, number, frozenset({"chores/chores:RO"}), None)
            )
            for number in (7, 8)
        }
    feed = state.db.row_feed()
    assert feed is not None and feed.wait_live()
    return chores_app, tokens


def get(app: Any, path: str, token: str) -> Any:
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def statements(app: Any, path: str, token: str) -> tuple[Any, int]:
    """The answer to ``path`` and how many SQL statements it ran."""
    with state_of(app).db.count_statements() as counted:
        answer = get(app, path, token)
    return answer, counted[0]


def test_a_kept_user_is_answered_without_a_query_until_its_row_changes(site: Any) -> None:
    app, tokens = site
    first, read = statements(app, "/api/me", tokens[7])
    assert first.json == {"id": 7, "username": "alice"} and read == 1
    again, read = statements(app, "/api/me", tokens[7])
    assert again.json == {"id": 7, "username": "alice"} and read == 0
    # bob is bob, kept apart from alice
    assert [get(app, "/api/me", tokens[n]).json["username"] for n in (8, 7, 8)] == [
        "bob",
        "alice",
        "bob",
    ]
    # The copy handed out is a row of the request's session: its relations load.
    assert get(app, "/t/mine", tokens[7]).json == {
        "username": "alice",
        "chores": ["alice's chore"],
    }
    # What a request changes without saving stays in that request.
    assert get(app, "/t/rename", tokens[7]).json == {"ok": True}
    assert get(app, "/api/me", tokens[7]).json["username"] == "alice"

    browser = app.test_client()
    cookie = seal({"u": 7, "s": 1, "t": int(time.time())}, state_of(app))
    browser.set_cookie(LOGIN_COOKIE, cookie)
    assert [browser.get("/whoami").json["user"] for _ in range(2)] == ["alice", "alice"]

    # Another process suspends alice: from the moment PostgreSQL tells this
    # one, her token is refused, and so is her login cookie.
    engine = sa.create_engine(state_of(app).db.url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE \"user\" SET user_type = 'suspended' WHERE id = 7"))
        wait_until(lambda: get(app, "/api/me", tokens[7]).status_code == 403, what="a refusal")
        assert get(app, "/api/me", tokens[7]).json == {
            "errors": [{"reason": "this account is suspended"}]
        }
        assert browser.get("/whoami").json["user"] is None
        assert get(app, "/api/me", tokens[8]).json["username"] == "bob"  # bob is untouched

        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM chore WHERE owner_id = 7"))
            connection.execute(sa.text('DELETE FROM "user" WHERE id = 7'))
        wait_until(lambda: get(app, "/api/me", tokens[7]).status_code != 403, what="the delete")
        # Gone from chores' mirror: chores asks meta, which cannot be reached here.
        assert get(app, "/api/me", tokens[7]).status_code == 503
    finally:
        engine.dispose()


def test_a_user_read_across_a_change_is_not_kept(site: Any) -> None:
    app, tokens = site
    db = state_of(app).db
    engines = [engine for engine in (db.engine, db.read_engine) if engine is not None]
    users = state_of(app).users

    def change_meanwhile(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if 'FROM "user"' in statement:  # the row is read; then it changes
            users.forget({("user", "7")})

    for engine in engines:
        sa.event.listen(engine, "after_cursor_execute", change_meanwhile)
    try:
        assert statements(app, "/api/me", tokens[7])[1] == 1
    finally:
        for engine in engines:
            sa.event.remove(engine, "after_cursor_execute", change_meanwhile)
    assert statements(app, "/api/me", tokens[7])[1] == 1  # read again, not kept before
    assert statements(app, "/api/me", tokens[7])[1] == 0  # kept now


def test_without_a_live_feed_every_request_reads_its_user(site: Any) -> None:
    app, tokens = site
    feed = state_of(app).db.row_feed()
    assert statements(app, "/api/me", tokens[7])[1] == 1
    assert statements(app, "/api/me", tokens[7])[1] == 0
    feed.live = False  # as while its connection is down (it told: forget everything)
    feed.tell(None)
    try:
        assert [statements(app, "/api/me", tokens[7])[1] for _ in range(2)] == [1, 1]
    finally:
        feed.live = True


def test_the_cache_keeps_the_most_recently_used_users_within_its_bound(site: Any) -> None:
    app, tokens = site
    state = state_of(app)
    state.users = UserCache(max_entries=1)
    assert [statements(app, "/api/me", tokens[n])[1] for n in (7, 7, 8, 7)] == [1, 0, 1, 1]
    assert len(state.users.users) == 1


# -- a user model with no relationships: its copy joins the session when used ----


class NotesBase(DeclarativeBase):
    pass


class NotesUser(MirroredUserMixin, NotesBase):
    """A user model with no relationships (like most services'): a
    request's copy of it is handed out before any session exists."""

    __tablename__ = "user"


class Note(NotesBase):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    text: Mapped[str] = mapped_column(sa.String(100))
    owner: Mapped[NotesUser] = relationship()  # no backref: the user has none


def notes_plugin() -> Any:
    plugin = types.ModuleType("srht_test_notes")

    @hookimpl
    def service_info() -> ServiceInfo:
        return ServiceInfo("notes", "Notes", "Notes, to test users kept in memory.")

    @hookimpl
    def database_schema() -> DatabaseSchema:
        return DatabaseSchema(NotesBase.metadata, user_model=NotesUser)

    for hook in (service_info, database_schema):
        setattr(plugin, hook.__name__, hook)
    return plugin


@pytest.fixture
def notes(register_plugin: Any, make_config: Any, make_app: Any, srht_database_url: str) -> Any:
    assert register_plugin(notes_plugin(), "notes").ok
    app = make_app("notes", make_config({"notes": {"connection-string": srht_database_url}}))
    state = state_of(app)
    state.revoked = lambda kind, token_id: False  # meta is not running here
    db = state.db
    seen: dict[str, Any] = {}

    @app.get("/t/name")
    def name() -> Any:
        user = api_user()
        seen["session made"] = db.has_context_session()
        return {"username": user.username}

    @app.get("/t/rename/<new>")
    @writes
    def rename(new: str) -> Any:
        user = api_user()
        user.username = new  # changed before the session exists...
        db_session.commit()  # ...and saved when it is made
        return {"username": user.username}

    @app.get("/t/forget-rename")
    def forget_rename() -> Any:
        api_user().username = "not-saved"
        return {"ok": True}

    @app.get("/t/note/<text>")
    @writes
    def note(text: str) -> Any:
        user = api_user()
        assert api_user() is user and db_session.get(NotesUser, user.id) is user
        db_session.add(Note(owner=user, text=text))
        db_session.commit()
        notes = db_session.scalars(sa.select(Note).where(Note.owner == user)).all()
        return {"notes": [n.text for n in notes], "in session": user in db_session}

    @app.get("/t/after-a-query")
    def after_a_query() -> Any:
        count = db_session.scalar(sa.select(sa.func.count()).select_from(Note))
        user = api_user()
        return {"count": count, "in session": user in db_session}

    with app.app_context():
        db_session.add(NotesUser(id=7, username="alice", email="alice@example.org"))
        db_session.commit()
        token = seal_grant(TokenGrant("pat", 7, 7, frozenset(), None))
    feed = db.row_feed()
    assert feed is not None and feed.wait_live()
    return app, token, seen


def test_a_kept_user_without_relationships_is_handed_out_before_any_session(
    notes: Any,
) -> None:
    app, token, seen = notes
    assert statements(app, "/t/name", token)[0].json == {"username": "alice"}  # read, kept
    answer, read = statements(app, "/t/name", token)
    assert answer.json == {"username": "alice"} and read == 0
    assert seen["session made"] is False  # the request never made one

    # Changed, then committed: the copy joined the session when it was made.
    assert get(app, "/t/rename/alicia", token).json == {"username": "alicia"}
    with state_of(app).db.engine.connect() as connection:
        stored = connection.scalar(sa.text('SELECT username FROM "user" WHERE id = 7'))
    assert stored == "alicia"
    assert get(app, "/t/name", token).json == {"username": "alicia"}  # not the old copy

    # Changed and not committed: lost with the request, as any row's change.
    assert get(app, "/t/forget-rename", token).json == {"ok": True}
    assert get(app, "/t/name", token).json == {"username": "alicia"}

    # A row of the session once it exists: one object per user, usable in
    # relationships and queries.
    for text, expected in (("first", ["first"]), ("second", ["first", "second"])):
        answer = get(app, f"/t/note/{text}", token)
        assert answer.json == {"notes": expected, "in session": True}, answer.json
    # Asked for after the session is made: merged into it at once.
    answer = get(app, "/t/after-a-query", token)
    assert answer.json == {"count": 2, "in session": True}


def test_users_without_relationships_kept_across_requests_are_not_shared(
    notes: Any,
) -> None:
    """Each request gets its own copy: one request's changes (saved or
    not) never reach another's object."""
    app, token, _seen = notes
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        first = api_user()
    assert get(app, "/t/name", token).json == {"username": "alice"}
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        second = api_user()
        assert second is not first and second.username == "alice"
        first.username = "changed-elsewhere"
        assert second.username == "alice"

    # Asked for twice in one request (its token and its login cookie), the
    # user is one object, still one once the session is made.
    cookie = seal({"u": 7, "s": 1, "t": int(time.time())}, state_of(app))
    headers = {"Authorization": f"Bearer {token}", "Cookie": f"{LOGIN_COOKIE}={cookie}"}
    with app.test_request_context(headers=headers):
        user = api_user()
        assert current_user._get_current_object() is user
        assert not state_of(app).db.has_context_session()
        assert db_session.get(NotesUser, 7) is user and user in db_session
