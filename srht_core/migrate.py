"""Database migrations: the core's tables and each service's, in the
service's own database, each under its own Alembic version table.

``srht migrate`` calls :func:`upgrade` for every enabled service; the deploy
calls it before new code starts. Running it again changes nothing. After the
migrations it makes sure the rows of the service's user table are watched
(:func:`srht_core.changes.ensure_watched`), so the users kept in memory are
dropped when they change (:mod:`srht_core.usercache`).
:func:`pending` and :func:`upgrade_sql` say, without a connection, what an
upgrade would run on a database whose revisions are known (the installer's
upgrade plan, from revisions read on the database's host).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from . import idempotency, webhooks  # noqa: F401 - they define tables on core_metadata
from .changes import ensure_watched
from .db import Database
from .jobs import core_metadata
from .service import DatabaseSchema

__all__ = [
    "MigrationStatus",
    "PendingMigration",
    "pending",
    "revision",
    "status",
    "upgrade",
    "upgrade_sql",
]

ENV_DIR = Path(__file__).parent / "alembic"
CORE_MIGRATIONS = Path(__file__).parent / "migrations"
CORE_VERSION_TABLE = "alembic_version_srht"


def version_table(service: str) -> str:
    return "alembic_version_" + service.replace("-", "_")


def _alembic(
    connection: sa.Connection | None, migrations: Path, metadata: sa.MetaData | None, table: str
) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(ENV_DIR))
    config.set_main_option("version_locations", str(migrations))
    config.set_main_option("path_separator", "os")
    config.attributes.update(connection=connection, metadata=metadata, version_table=table)
    return config


@dataclass(frozen=True)
class MigrationStatus:
    """Where one part (the core's tables or the service's) of a database is."""

    part: str
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _parts(
    service: str, schema: DatabaseSchema | None
) -> list[tuple[str, Path | None, sa.MetaData | None, str]]:
    parts: list[tuple[str, Path | None, sa.MetaData | None, str]] = [
        ("srht", CORE_MIGRATIONS, core_metadata, CORE_VERSION_TABLE)
    ]
    if schema is not None:
        parts.append((service, schema.migrations, schema.metadata, version_table(service)))
    return parts


def status(db: Database, service: str, schema: DatabaseSchema | None) -> list[MigrationStatus]:
    """The current and head revision of each part of the database."""
    out = []
    with db.engine.connect() as connection:
        for part, migrations, _metadata, table in _parts(service, schema):
            if migrations is None:
                out.append(MigrationStatus(part, None, None))
                continue
            script = ScriptDirectory.from_config(_alembic(None, migrations, None, table))
            context = MigrationContext.configure(connection, opts={"version_table": table})
            out.append(
                MigrationStatus(part, context.get_current_revision(), script.get_current_head())
            )
    return out


@contextmanager
def _migrating(db: Database) -> Iterator[sa.Connection]:
    """A connection in a transaction to migrate with. On SQLite, foreign keys
    are off while it runs: rebuilding a table (SQLite's way to alter one)
    drops the old table, which with foreign keys on would delete the rows
    that refer to it (ON DELETE CASCADE). Whether every reference still
    holds is checked before the transaction commits."""
    with db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(
                            f"the migration left rows referring to missing rows: {broken[:5]}"
                        )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(db: Database, service: str, schema: DatabaseSchema | None) -> list[str]:
    """Bring the core's tables and the service's to their newest revision.
    Returns what changed (``["srht: None -> core0001", ...]``), empty when
    nothing did."""
    changes = []
    before = {s.part: s.current for s in status(db, service, schema)}
    for part, migrations, metadata, table in _parts(service, schema):
        if migrations is None:
            assert metadata is not None
            created = [
                t for t in metadata.sorted_tables if not sa.inspect(db.engine).has_table(t.name)
            ]
            metadata.create_all(db.engine)
            if created:
                changes.append(f"{part}: created {', '.join(t.name for t in created)}")
            continue
        with _migrating(db) as connection:
            command.upgrade(_alembic(connection, migrations, metadata, table), "heads")
    for current in status(db, service, schema):
        if current.part in before and before[current.part] != current.current:
            changes.append(
                f"{current.part}: {before[current.part] or 'empty'} -> {current.current}"
            )
    user_model = schema.user_model if schema is not None else None
    if user_model is not None:
        # Users are kept in memory until their row changes (srht_core.usercache).
        users = sa.inspect(user_model).persist_selectable.name
        with db.engine.begin() as connection:
            if ensure_watched(connection, users):
                changes.append(f"{service}: watching the rows of {users}")
    return changes


@dataclass(frozen=True)
class PendingMigration:
    """A migration an upgrade would run: its part (``srht`` for the core's
    tables, else the service), Alembic revision id and first docstring line."""

    part: str
    revision: str
    description: str


def _applied(applied: Mapping[str, Sequence[str]], table: str, part: str) -> str | None:
    current = list(applied.get(table, ()))
    if len(current) > 1:
        raise ValueError(
            f"{part}: the database is at several revisions at once ({', '.join(current)}); "
            "merge them with `srht migrate` on its host first"
        )
    return current[0] if current else None


def pending(
    service: str, schema: DatabaseSchema | None, applied: Mapping[str, Sequence[str]]
) -> list[PendingMigration]:
    """The migrations an upgrade of ``service``'s database would run, oldest
    first, when the database holds ``applied`` (``{version table:
    [revision, ...]}``, as read from it; a missing table: nothing applied).

    :raises ValueError: a revision of the database this code does not know
        (it was made by newer code), named with its part.
    """
    out: list[PendingMigration] = []
    for part, migrations, _metadata, table in _parts(service, schema):
        if migrations is None:
            continue
        current = _applied(applied, table, part)
        script = ScriptDirectory.from_config(_alembic(None, migrations, None, table))
        try:
            scripts = list(script.iterate_revisions("heads", current or "base"))
        except (CommandError, RevisionError) as error:
            raise ValueError(
                f"{part}: the database is at revision {current}, which this code does not "
                f"know ({error}): it was made by newer code"
            ) from None
        for entry in reversed(scripts):
            description = (entry.doc or "").strip().splitlines()
            out.append(
                PendingMigration(part, entry.revision, description[0] if description else "")
            )
    return out


def upgrade_sql(
    service: str,
    schema: DatabaseSchema | None,
    applied: Mapping[str, Sequence[str]],
    dialect: str = "postgresql",
) -> str:
    """The SQL an upgrade of ``service``'s database would run (Alembic's
    offline mode), from ``applied`` (as :func:`pending` takes it).

    A migration that reads the database to decide what to do cannot be
    written out offline; it raises here as it would there.
    """
    buffer = io.StringIO()
    for part, migrations, metadata, table in _parts(service, schema):
        if migrations is None:
            continue
        current = _applied(applied, table, part)
        config = _alembic(None, migrations, metadata, table)
        config.output_buffer = buffer
        config.attributes["dialect"] = dialect
        buffer.write(f"-- {part} ({table})\n")
        command.upgrade(config, f"{current}:heads" if current else "heads", sql=True)
    return buffer.getvalue()


def revision(
    db: Database, service: str, schema: DatabaseSchema, message: str, *, autogenerate: bool = True
) -> Any:
    """Write a new revision file into the service's migrations folder,
    comparing its models with the database when ``autogenerate``."""
    if schema.migrations is None:
        raise ValueError(f"service {service} declares no migrations folder")
    with db.engine.begin() as connection:
        config = _alembic(connection, schema.migrations, schema.metadata, version_table(service))
        return command.revision(config, message=message, autogenerate=autogenerate)
