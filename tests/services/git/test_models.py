"""git's tables and its migrations, on PostgreSQL and on SQLite (the
embedded default): the migrations create exactly what the models declare,
a database made before the move to the core's model base is brought up to
date with every row kept, and from then on SQLite never gives a deleted
row's id to another row."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import srht_plugins.git as git_plugin
from srht_core import DatabaseSchema
from srht_core.migrate import status, upgrade
from srht_plugins.git.models import Base

MIGRATIONS = Path(git_plugin.__file__).parent / "migrations"
BEFORE_THE_KIT = "git0001"
TABLES = ("repository", "access_grant", "redirect", "webhook")


@pytest.fixture(params=["postgres", "sqlite"])
def git_state(
    request: pytest.FixtureRequest,
    register_plugin: Callable[..., Any],
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    tmp_path: Path,
) -> Any:
    """git's app, not yet migrated, on PostgreSQL or on SQLite."""
    record = register_plugin(git_plugin, "git", distribution="srht")
    assert record.ok, record.reason
    section: dict[str, Any] = {"repos": str(tmp_path / "repos")}
    if request.param == "postgres":
        section["connection-string"] = request.getfixturevalue("srht_database_url")
    app = make_app("git", make_config({"git": section}), migrate=False)
    return app.extensions["srht"]


def differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parents: (
                    kind != "table" or name in Base.metadata.tables
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))


@pytest.mark.postgres
def test_the_migrations_match_the_models(git_state: Any) -> None:
    upgrade(git_state.db, "git", git_state.schema)
    assert differences(git_state.db.engine) == []


@pytest.mark.postgres
def test_a_database_from_before_the_kit_keeps_every_row(git_state: Any, tmp_path: Path) -> None:
    db, schema = git_state.db, git_state.schema
    older = tmp_path / "older-migrations"
    older.mkdir()
    shutil.copy(MIGRATIONS / "0001_repositories.py", older)
    upgrade(db, "git", DatabaseSchema(schema.metadata, older))
    rows = {
        "user": [
            'INSERT INTO "user" (id, username, email, user_type, created, updated) VALUES '
            "(7, 'alice', 'alice@example.org', 'active', '2026-01-01', '2026-01-01'), "
            "(8, 'bob', 'bob@example.org', 'active', '2026-01-01', '2026-01-01')"
        ],
        "repository": [
            "INSERT INTO repository (id, owner_id, name, description, visibility, pushed_at, "
            "created, updated) VALUES "
            "(1, 7, 'one', 'The first.', 'public', '2026-01-02', '2026-01-01', '2026-01-02'), "
            "(2, 7, 'two', NULL, 'private', NULL, '2026-01-01', '2026-01-01')"
        ],
        "access_grant": [
            "INSERT INTO access_grant (id, repository_id, user_id, mode, created) "
            "VALUES (1, 2, 8, 'rw', '2026-01-03')"
        ],
        "redirect": [
            "INSERT INTO redirect (id, owner_id, name, repository_id, created) "
            "VALUES (1, 7, 'old-one', 1, '2026-01-03')"
        ],
        "webhook": [
            "INSERT INTO webhook (id, repository_id, url, created) "
            "VALUES (1, 1, 'https://example.org/hook', '2026-01-03')"
        ],
    }
    with db.engine.begin() as connection:
        for statements in rows.values():
            for statement in statements:
                connection.execute(sa.text(statement))
    found = {s.part: s for s in status(db, "git", schema)}["git"]
    assert (found.current, found.up_to_date) == (BEFORE_THE_KIT, False)

    # On PostgreSQL it also watches the user table (users kept in memory follow it).
    watched = ["git: watching the rows of user"] if db.engine.dialect.name == "postgresql" else []
    assert upgrade(db, "git", schema) == [f"git: {BEFORE_THE_KIT} -> {found.head}", *watched]

    with db.engine.connect() as connection:
        query = connection.execute

        def all_of(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in query(sa.text(sql))]

        assert all_of('SELECT id, username FROM "user" ORDER BY id') == [(7, "alice"), (8, "bob")]
        assert all_of(
            "SELECT id, owner_id, name, description, visibility FROM repository ORDER BY id"
        ) == [(1, 7, "one", "The first.", "public"), (2, 7, "two", None, "private")]
        assert all_of("SELECT repository_id, user_id, mode FROM access_grant") == [(2, 8, "rw")]
        assert all_of("SELECT owner_id, name, repository_id FROM redirect") == [(7, "old-one", 1)]
        assert all_of("SELECT repository_id, url FROM webhook") == [(1, "https://example.org/hook")]
    assert differences(db.engine) == []

    # The constraints came through the rebuild (SQLite) as they were.
    with db.engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
        connection.execute(
            sa.text(
                "INSERT INTO repository (owner_id, name, visibility, created, updated) "
                "VALUES (7, 'three', 'secret', '2026-01-04', '2026-01-04')"
            )
        )
    with db.engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
        connection.execute(
            sa.text(
                "INSERT INTO repository (owner_id, name, visibility, created, updated) "
                "VALUES (7, 'one', 'public', '2026-01-04', '2026-01-04')"
            )
        )


@pytest.mark.postgres
def test_a_deleted_rows_id_is_never_given_again(git_state: Any) -> None:
    db = git_state.db
    upgrade(db, "git", git_state.schema)
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO "user" (id, username, email, user_type, created, updated) '
                "VALUES (7, 'alice', 'alice@example.org', 'active', '2026-01-01', '2026-01-01')"
            )
        )
    insert = sa.text(
        "INSERT INTO repository (owner_id, name, visibility, created, updated) "
        "VALUES (7, :name, 'public', '2026-01-01', '2026-01-01')"
    )
    newest = sa.text("SELECT max(id) FROM repository")
    with db.engine.begin() as connection:
        connection.execute(insert, {"name": "first"})
        connection.execute(insert, {"name": "last"})
        last = connection.execute(newest).scalar()
        connection.execute(sa.text("DELETE FROM repository WHERE id = :id"), {"id": last})
    with db.engine.begin() as connection:
        connection.execute(insert, {"name": "next"})
        assert connection.execute(newest).scalar() == last + 1
