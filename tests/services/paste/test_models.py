"""paste's tables and its migrations, on PostgreSQL and on SQLite (the
embedded default): the migrations create exactly what the models declare,
a database made before the move to the core's model base is brought up to
date with every row kept, and from then on no deleted row's id is given to
another row."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import srht_plugins.paste as paste_plugin
from srht_core import DatabaseSchema
from srht_core.migrate import status, upgrade
from srht_plugins.paste.models import Base

pytestmark = pytest.mark.postgres

MIGRATIONS = Path(paste_plugin.__file__).parent / "migrations"
BEFORE_THE_KIT = "paste0001"


@pytest.fixture(params=["postgres", "sqlite"])
def paste_state(
    request: pytest.FixtureRequest,
    register_plugin: Callable[..., Any],
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
) -> Any:
    """paste's app, not yet migrated, on PostgreSQL or on SQLite."""
    record = register_plugin(paste_plugin, "paste", distribution="srht")
    assert record.ok, record.reason
    section: dict[str, Any] = {}
    if request.param == "postgres":
        section["connection-string"] = request.getfixturevalue("srht_database_url")
    app = make_app("paste", make_config({"paste": section}), migrate=False)
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


def rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


def test_the_migrations_match_the_models(paste_state: Any) -> None:
    upgrade(paste_state.db, "paste", paste_state.schema)
    assert differences(paste_state.db.engine) == []


def test_a_database_from_before_the_kit_keeps_every_row(paste_state: Any, tmp_path: Path) -> None:
    db, schema = paste_state.db, paste_state.schema
    older = tmp_path / "older-migrations"
    older.mkdir()
    shutil.copy(MIGRATIONS / "0001_pastes.py", older)
    upgrade(db, "paste", DatabaseSchema(schema.metadata, older))
    with db.engine.begin() as connection:
        for statement in (
            'INSERT INTO "user" (id, username, email, user_type, created, updated) VALUES '
            "(7, 'alice', 'alice@example.org', 'active', '2026-01-01', '2026-01-01')",
            "INSERT INTO paste (id, slug, owner_id, visibility, created, updated) VALUES "
            "(1, '00000000000000aa', 7, 'public', '2026-01-02 10:00:00', '2026-01-02 10:00:00'), "
            "(2, '00000000000000bb', 7, 'private', '2026-01-03 11:00:00', '2026-01-04 12:00:00')",
            "INSERT INTO paste_file (id, paste_id, position, filename, size, content) VALUES "
            "(1, 1, 1, 'a.py', 6, 'x = 1\n'), (2, 1, 2, '', 3, 'two'), "
            "(3, 2, 1, 'notes.txt', 6, 'secret')",
        ):
            connection.execute(sa.text(statement))
    found = {s.part: s for s in status(db, "paste", schema)}["paste"]
    assert (found.current, found.up_to_date) == (BEFORE_THE_KIT, False)

    assert upgrade(db, "paste", schema) == [f"paste: {BEFORE_THE_KIT} -> {found.head}"]

    assert rows(db.engine, 'SELECT id, username FROM "user"') == [(7, "alice")]
    assert rows(db.engine, "SELECT id, slug, owner_id, visibility FROM paste ORDER BY id") == [
        (1, "00000000000000aa", 7, "public"),
        (2, "00000000000000bb", 7, "private"),
    ]
    files = rows(
        db.engine,
        "SELECT id, paste_id, position, filename, size, content, created "
        "FROM paste_file ORDER BY id",
    )
    # Each file was created with its paste.
    assert [(row[:6], str(row[6])[:19]) for row in files] == [
        ((1, 1, 1, "a.py", 6, "x = 1\n"), "2026-01-02 10:00:00"),
        ((2, 1, 2, "", 3, "two"), "2026-01-02 10:00:00"),
        ((3, 2, 1, "notes.txt", 6, "secret"), "2026-01-03 11:00:00"),
    ]
    assert differences(db.engine) == []

    # The constraints came through the rebuild (SQLite) as they were.
    for refused in (
        "INSERT INTO paste (slug, owner_id, visibility, created, updated) "
        "VALUES ('00000000000000cc', 7, 'secret', '2026-01-05', '2026-01-05')",
        "INSERT INTO paste (slug, owner_id, visibility, created, updated) "
        "VALUES ('00000000000000aa', 7, 'public', '2026-01-05', '2026-01-05')",
        "INSERT INTO paste_file (paste_id, position, filename, size, content, created) "
        "VALUES (1, 2, 'again', 1, 'x', '2026-01-05')",
    ):
        with db.engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
            connection.execute(sa.text(refused))


def test_a_deleted_pastes_id_is_never_given_again(paste_state: Any) -> None:
    db = paste_state.db
    upgrade(db, "paste", paste_state.schema)
    insert = sa.text(
        "INSERT INTO paste (slug, owner_id, visibility, created, updated) "
        "VALUES (:slug, 7, 'public', '2026-01-01', '2026-01-01')"
    )
    newest = sa.text("SELECT max(id) FROM paste")
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO "user" (id, username, email, user_type, created, updated) '
                "VALUES (7, 'alice', 'alice@example.org', 'active', '2026-01-01', '2026-01-01')"
            )
        )
        connection.execute(insert, {"slug": "0000000000000001"})
        connection.execute(insert, {"slug": "0000000000000002"})
        last = connection.execute(newest).scalar()
        connection.execute(sa.text("DELETE FROM paste WHERE id = :id"), {"id": last})
    with db.engine.begin() as connection:
        connection.execute(insert, {"slug": "0000000000000003"})
        assert connection.execute(newest).scalar() == last + 1
