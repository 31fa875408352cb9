"""meta's tables: the migrations make exactly what the models declare, on
PostgreSQL and on SQLite; a database made by the previous release keeps
every row when migrated; and a user id is never given out twice, since
every service trusts the ids meta seals in tokens and login cookies."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from srht_core import db_session, state_of

from .conftest import MetaSite

#: The revision of the release before the service kit.
PREVIOUS_HEAD = "meta0002"


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_app(
    request: Any,
    meta_plugin: Any,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
) -> Callable[..., Any]:
    """``fresh_app(migrate=...)`` → meta's app on a new database of either kind."""

    def make(*, migrate: bool = True) -> Any:
        meta: dict[str, Any] = {}
        if request.param == "postgresql":
            meta["connection-string"] = request.getfixturevalue("srht_database_url")
        app = make_app("meta", make_config({"meta": meta, "listener": {}}), migrate=migrate)
        assert state_of(app).db.url.get_backend_name() == request.param
        return app

    return make


def migrate_to(app: Any, target: str) -> None:
    """Bring the core's tables to their head and meta's to ``target``."""
    from alembic import command

    from srht_core.migrate import _alembic, _migrating, _parts

    state = state_of(app)
    for part, migrations, metadata, table in _parts("meta", state.schema):
        assert migrations is not None
        with _migrating(state.db) as connection:
            config = _alembic(connection, migrations, metadata, table)
            command.upgrade(config, target if part == "meta" else "heads")


def test_the_migrations_match_the_models(fresh_app: Callable[..., Any]) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from srht_plugins.meta.models import Base

    app = fresh_app()
    own = set(Base.metadata.tables)
    with state_of(app).db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLite reflection warns about what it cannot read
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, kind, _parents: kind != "table" or name in own,
                "compare_type": True,
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_a_deleted_users_id_is_never_given_to_a_new_account(
    fresh_app: Callable[..., Any],
) -> None:
    """On SQLite, a table without AUTOINCREMENT gives the id of its newest
    row, once deleted, to the next: a deleted account's token and cookie
    would then act as the new account (issue 15, item 1)."""
    from srht_plugins.meta.accounts import delete_user
    from srht_plugins.meta.models import User

    site = MetaSite(fresh_app())
    site.create_user("alice")
    gina = site.create_user("gina")
    with site.app.app_context():
        user = db_session.get(User, gina)
        assert user is not None
        delete_user(user)
        db_session.commit()
    hank = site.create_user("hank")
    assert hank > gina


def rows(app: Any, query: str) -> list[Any]:
    with state_of(app).db.engine.connect() as connection:
        return list(connection.execute(sa.text(query)))


def test_a_database_of_the_previous_release_keeps_every_row(
    fresh_app: Callable[..., Any],
) -> None:
    app = fresh_app(migrate=False)
    migrate_to(app, PREVIOUS_HEAD)
    day = datetime(2026, 11, 30, 12, 0, 0)
    issued = int((day - datetime(1970, 1, 1)).total_seconds())
    statements = [
        # Ids from the database (1 and 2), as the previous release made them.
        'INSERT INTO "user" (username, email, user_type, created, updated) VALUES '
        "('alice', 'alice@example.org', 'active', :day, :day), "
        "('bob', 'bob@example.org', 'admin', :day, :day)",
        "INSERT INTO ssh_key (user_id, key, fingerprint, created) "
        "VALUES (1, 'ssh-ed25519 AAAA', 'SHA256:x', :day)",
        "INSERT INTO pgp_key (user_id, key, fingerprint, created) VALUES (2, 'k', 'F00D', :day)",
        "INSERT INTO personal_access_token (user_id, scopes, token_hash, created) "
        "VALUES (1, 'meta/profile:RO', 'h1', :day)",
        "INSERT INTO login_attempt (key, at) VALUES ('user:1', :day)",
        "INSERT INTO recovery_code (user_id, code_hash) VALUES (2, 'c1'), (2, 'c2')",
        "INSERT INTO audit_log (user_id, event, created) VALUES (1, 'account created', :day)",
        "INSERT INTO login_session (user_id, created) VALUES (1, :day)",
        "INSERT INTO email_token (user_id, purpose, token_hash, expires, created) "
        "VALUES (1, 'reset', 'e1', :day, :day)",
        "INSERT INTO oauth_client (owner_id, client_id, name, redirect_uris, created) "
        "VALUES (2, 'cid', 'App', 'https://app.example/cb', :day)",
        "INSERT INTO oauth_authorization_code (code_hash, client_id, user_id, redirect_uri, "
        "scope, auth_time, expires) VALUES ('a1', 'cid', 1, 'https://app.example/cb', "
        "'meta/profile:RO', :issued, :day)",
        "INSERT INTO oauth_token (client_id, user_id, scope, access_hash, refresh_hash, "
        "authorization_id, issued_at, expires_in) VALUES "
        "('cid', 1, 'meta/profile:RO', 't1', 'r1', 1, :issued, 3600)",
    ]
    with state_of(app).db.engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), {"day": day, "issued": issued})

    from srht_core.migrate import upgrade

    state = state_of(app)
    # On PostgreSQL it also watches the user table (users kept in memory follow it).
    postgres = state.db.engine.dialect.name == "postgresql"
    watched = ["meta: watching the rows of user"] if postgres else []
    assert upgrade(state.db, "meta", state.schema) == ["meta: meta0002 -> meta0004", *watched]

    counts = {
        table: rows(app, f'SELECT count(*) FROM "{table}"')[0][0]  # noqa: S608 - our own names
        for table in state.schema.metadata.tables
    }
    assert counts == {
        "user": 2,
        "ssh_key": 1,
        "pgp_key": 1,
        "personal_access_token": 1,
        "login_attempt": 1,
        "recovery_code": 2,
        "audit_log": 1,
        "login_session": 1,
        "email_token": 1,
        "oauth_client": 1,
        "oauth_authorization_code": 1,
        "oauth_token": 1,
        "deleted_user": 0,
    }

    def stamp(query: str) -> datetime:
        value = rows(app, query)[0][0]
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    # Times the rows knew become their created; the others get one too.
    assert stamp("SELECT created FROM login_attempt") == day
    assert stamp("SELECT created FROM oauth_token") == day
    assert stamp("SELECT created FROM oauth_authorization_code") == day
    assert stamp("SELECT created FROM recovery_code") > day
    # The rows are still theirs, and the models read them.
    site = MetaSite(app)
    with site.app.app_context():
        from srht_plugins.meta.models import SSHKey, User

        alice = db_session.scalar(sa.select(User).where(User.username == "alice"))
        assert alice is not None and [k.fingerprint for k in alice.ssh_keys] == ["SHA256:x"]
        assert db_session.scalar(sa.select(SSHKey.user_id)) == alice.id
    # From now on, the newest user's id is not given out again.
    with site.app.app_context():
        from srht_plugins.meta.accounts import delete_user

        bob = db_session.get(User, 2)
        assert bob is not None
        delete_user(bob)
        db_session.commit()
    assert site.create_user("carol") == 3
