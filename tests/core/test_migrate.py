"""srht_core.migrate: the core's tables and a service's, each under its own
Alembic version table, in the service's database; ``srht migrate`` and
``srht dev revision`` on top of it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from srht_core import DatabaseSchema
from srht_core.migrate import (
    CORE_MIGRATIONS,
    CORE_VERSION_TABLE,
    ENV_DIR,
    pending,
    revision,
    status,
    upgrade,
    upgrade_sql,
)

CHORES_HEAD = "chores0003"


def core_head() -> str:
    head = ScriptDirectory(
        str(ENV_DIR), version_locations=[str(CORE_MIGRATIONS)]
    ).get_current_head()
    assert head is not None
    return head


def versions(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(sa.select(sa.column("version_num")).select_from(sa.table(table)))
        )


@pytest.fixture(params=["postgres", "sqlite"])
def database(
    request: pytest.FixtureRequest,
    chores_plugin: Any,
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
) -> Any:
    """The chores app, not yet migrated, on PostgreSQL or on SQLite (the
    embedded default, used when connection-string is empty)."""
    if request.param == "postgres":
        url = request.getfixturevalue("srht_database_url")
        config = make_config({"chores": {"connection-string": url}})
    else:
        config = make_config({"chores": {}})
    app = make_app("chores", config, migrate=False)
    return app.extensions["srht"]


@pytest.mark.postgres
def test_upgrade_creates_core_and_service_tables_under_their_own_version_tables(
    database: Any,
) -> None:
    db, schema = database.db, database.schema
    assert db.url.get_backend_name() in ("postgresql", "sqlite")
    assert sa.inspect(db.engine).get_table_names() == []

    changes = upgrade(db, "chores", schema)

    watched = ["chores: watching the rows of user"] if db.url.get_backend_name() != "sqlite" else []
    assert changes == [f"srht: empty -> {core_head()}", f"chores: empty -> {CHORES_HEAD}", *watched]
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"srht_job", "srht_timer", "user", "chore"} <= tables
    assert {CORE_VERSION_TABLE, "alembic_version_chores"} <= tables
    assert "alembic_version" not in tables
    assert versions(db.engine, CORE_VERSION_TABLE) == [core_head()]
    assert versions(db.engine, "alembic_version_chores") == [CHORES_HEAD]
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("chore")}
    assert {"id", "title", "done", "reminded", "owner_id", "created", "updated"} == columns


@pytest.mark.postgres
def test_second_upgrade_changes_nothing_and_status_is_up_to_date(database: Any) -> None:
    db, schema = database.db, database.schema
    upgrade(db, "chores", schema)

    assert upgrade(db, "chores", schema) == []
    found = {s.part: s for s in status(db, "chores", schema)}
    assert set(found) == {"srht", "chores"}
    assert found["srht"].current == found["srht"].head == core_head()
    assert found["chores"].current == found["chores"].head == CHORES_HEAD
    assert all(s.up_to_date for s in found.values())


@pytest.mark.postgres
def test_status_of_an_empty_database_is_behind(database: Any) -> None:
    found = {s.part: s for s in status(database.db, "chores", database.schema)}
    assert found["srht"].current is None and found["srht"].head == core_head()
    assert found["chores"].current is None and found["chores"].head == CHORES_HEAD
    assert not any(s.up_to_date for s in found.values())


@pytest.mark.postgres
def test_upgrade_from_an_older_revision_applies_only_the_newer_one(
    database: Any, tmp_path: Path
) -> None:
    db, schema = database.db, database.schema
    older = tmp_path / "older-migrations"
    older.mkdir()
    shutil.copy(schema.migrations / "0001_users_and_chores.py", older)
    upgrade(db, "chores", DatabaseSchema(schema.metadata, older, schema.user_model))
    assert "reminded" not in {c["name"] for c in sa.inspect(db.engine).get_columns("chore")}
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO chore (title, done, created, updated) "
                "VALUES ('water the plants', false, '2026-01-01', '2026-01-01')"
            )
        )
    behind = {s.part: s for s in status(db, "chores", schema)}["chores"]
    assert (behind.current, behind.head, behind.up_to_date) == ("chores0001", CHORES_HEAD, False)

    assert upgrade(db, "chores", schema) == [f"chores: chores0001 -> {CHORES_HEAD}"]

    with db.engine.connect() as connection:
        row = connection.execute(sa.text("SELECT title, reminded FROM chore")).one()
    assert row.title == "water the plants" and not row.reminded


def test_pending_lists_what_an_upgrade_would_run_oldest_first(database: Any) -> None:
    schema = database.schema
    core = core_head()

    behind = pending(
        "chores", schema, {CORE_VERSION_TABLE: [core], "alembic_version_chores": ["chores0001"]}
    )

    assert [(m.part, m.revision) for m in behind] == [
        ("chores", "chores0002"),
        ("chores", CHORES_HEAD),
    ]
    assert all(m.description for m in behind)
    fresh = pending("chores", schema, {})
    assert [m.part for m in fresh].count("srht") == len(list(CORE_MIGRATIONS.glob("0*.py")))
    assert fresh[-1].revision == CHORES_HEAD
    assert (
        pending(
            "chores", schema, {CORE_VERSION_TABLE: [core], "alembic_version_chores": [CHORES_HEAD]}
        )
        == []
    )


def test_pending_names_a_revision_this_code_does_not_know(database: Any) -> None:
    with pytest.raises(ValueError, match=r"chores: the database is at revision chores0099"):
        pending("chores", database.schema, {"alembic_version_chores": ["chores0099"]})


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_the_offline_sql_brings_an_older_database_to_the_head(
    database: Any, tmp_path: Path
) -> None:
    db, schema = database.db, database.schema
    older = tmp_path / "older-migrations"
    older.mkdir()
    shutil.copy(schema.migrations / "0001_users_and_chores.py", older)
    upgrade(db, "chores", DatabaseSchema(schema.metadata, older, schema.user_model))
    applied = {CORE_VERSION_TABLE: [core_head()], "alembic_version_chores": ["chores0001"]}

    sql = upgrade_sql("chores", schema, applied)

    assert "ALTER TABLE chore ADD COLUMN reminded" in sql
    assert "UPDATE alembic_version_chores SET version_num='chores0002'" in sql
    with db.engine.begin() as connection:
        connection.exec_driver_sql(sql)
    assert {s.part: s.up_to_date for s in status(db, "chores", schema)} == {
        "srht": True,
        "chores": True,
    }


@pytest.mark.postgres
def test_a_service_without_migrations_gets_its_tables_created(database: Any) -> None:
    metadata = sa.MetaData()
    sa.Table("scratch", metadata, sa.Column("id", sa.Integer, primary_key=True))
    schema = DatabaseSchema(metadata, None)

    assert upgrade(database.db, "scratch", schema) == [
        "scratch: created scratch",
        f"srht: empty -> {core_head()}",
    ]
    assert upgrade(database.db, "scratch", schema) == []
    assert sa.inspect(database.db.engine).has_table("scratch")


@pytest.mark.postgres
def test_models_match_migrations_so_autogenerate_finds_nothing(
    chores_app: Any, tmp_path: Path
) -> None:
    state = chores_app.extensions["srht"]
    folder = tmp_path / "migrations"
    shutil.copytree(state.schema.migrations, folder, ignore=shutil.ignore_patterns("__pycache__"))

    script = revision(
        state.db, "chores", DatabaseSchema(state.schema.metadata, folder), "nothing to do"
    )

    text = Path(script.path).read_text()
    body = text.split("def upgrade() -> None:", 1)[1].split("def downgrade", 1)[0]
    statements = [
        line.strip()
        for line in body.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert statements == ["pass"], text
    assert f"down_revision = {CHORES_HEAD!r}" in text


# -- the command line, against an installed service ------------------------------


def write_config(make_config: Callable[..., Any], url: str) -> Path:
    config = make_config({"chores": {"connection-string": url}})
    return Path(config.path)


@pytest.mark.slow
@pytest.mark.postgres
def test_srht_migrate_twice_creates_then_reports_up_to_date(
    support_venv: Any, make_config: Callable[..., Any], srht_database_url: str
) -> None:
    config = write_config(make_config, srht_database_url)

    first = support_venv.srht("migrate", config=config)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        f"chores: srht: empty -> {core_head()}; chores: empty -> {CHORES_HEAD}; "
        "chores: watching the rows of user"
    )

    second = support_venv.srht("migrate", config=config)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "chores: up to date"

    engine = sa.create_engine(srht_database_url)
    try:
        assert versions(engine, "alembic_version_chores") == [CHORES_HEAD]
        assert versions(engine, CORE_VERSION_TABLE) == [core_head()]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_srht_migrate_reports_a_database_it_cannot_reach(
    support_venv: Any, make_config: Callable[..., Any]
) -> None:
    from srht_core.testing import free_port

    url = f"postgresql+psycopg2://srht@127.0.0.1:{free_port()}/nowhere"
    result = support_venv.srht("migrate", config=write_config(make_config, url))

    assert result.returncode == 1
    assert "chores: migration failed: OperationalError" in result.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_srht_dev_revision_autogenerates_only_the_services_own_tables(
    support_venv: Any, make_config: Callable[..., Any], srht_database_url: str, tmp_path: Path
) -> None:
    # The developer's checkout: 0002 is not written yet, but the model
    # already has Chore.reminded.
    import srht_test_chores

    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(srht_test_chores.MIGRATIONS / "0001_users_and_chores.py", folder)
    env = {srht_test_chores.MIGRATIONS_ENV: str(folder)}
    config = write_config(make_config, srht_database_url)
    migrated = support_venv.srht("migrate", config=config, env=env)
    assert migrated.returncode == 0, migrated.stderr

    result = support_venv.srht(
        "dev", "revision", "chores", "-m", "remember reminders", config=config, env=env
    )

    assert result.returncode == 0, result.stderr
    wrote = re.search(r"^wrote (.+)$", result.stdout, re.MULTILINE)
    assert wrote, result.stdout
    written = Path(wrote.group(1))
    assert written.parent == folder
    assert sorted(p.name for p in folder.glob("*.py")) == sorted(
        ["0001_users_and_chores.py", written.name]
    )
    text = written.read_text()
    assert '"""remember reminders' in text
    assert "down_revision = 'chores0001'" in text
    added = r"op\.add_column\('chore', sa\.Column\('reminded', sa\.Boolean\(\)"
    assert re.search(added, text), text
    for other in ("srht_job", "srht_timer", "alembic_version", "create_table", "drop_table"):
        assert other not in text, f"{other} in the revision:\n{text}"

    # and the new revision applies like any other
    again = support_venv.srht("migrate", config=config, env=env)
    assert again.returncode == 0, again.stderr
    new_id = re.search(r"^revision = '(\w+)'$", text, re.MULTILINE).group(1)
    assert again.stdout.strip() == f"chores: chores: chores0001 -> {new_id}"


def test_never_reuse_ids_rebuilds_sqlite_tables_without_touching_their_rows(
    tmp_path: Path,
) -> None:
    """An existing SQLite table gets AUTOINCREMENT without losing a row:
    the rebuild drops the old table, which with foreign keys on would
    cascade to every row referring to it; srht migrate turns them off and
    checks every reference before committing."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from srht_core import Database
    from srht_core.migrate import _migrating
    from srht_core.models import never_reuse_ids

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    with db.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
        connection.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE)"
        )
        connection.exec_driver_sql("INSERT INTO parent (name) VALUES ('a'), ('b'), ('c')")
        connection.exec_driver_sql("INSERT INTO child (parent_id) VALUES (1), (2), (3)")
        connection.exec_driver_sql("DELETE FROM parent WHERE id = 3")  # its child goes too

    def ids(table: str) -> list[int]:
        with db.engine.connect() as connection:
            query = f"SELECT id FROM {table} ORDER BY id"  # noqa: S608 - the test's own names
            return list(connection.scalars(sa.text(query)))

    with _migrating(db) as connection:
        never_reuse_ids(Operations(MigrationContext.configure(connection)), "parent", "child")
    assert ids("parent") == [1, 2] and ids("child") == [1, 2]
    with db.engine.connect() as connection:
        ddl = connection.scalar(sa.text("SELECT sql FROM sqlite_master WHERE name = 'parent'"))
        assert "AUTOINCREMENT" in ddl
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with db.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO parent (name) VALUES ('d')")  # 3, once more
        connection.exec_driver_sql("DELETE FROM parent WHERE name = 'd'")
        connection.exec_driver_sql("INSERT INTO parent (name) VALUES ('e')")
    assert ids("parent") == [1, 2, 4]  # from now on, never again
    db.dispose()
