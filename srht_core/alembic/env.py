"""The one Alembic environment, shared by the core and every service.

Run by :mod:`srht_core.migrate`, never by the ``alembic`` command: the
caller puts the connection, the target metadata and the version table in
``config.attributes``; with no connection (offline mode, ``--sql``), the
SQL is written for ``config.attributes["dialect"]`` instead of run.
Autogenerate compares only the tables of the target metadata, so a
service's revision never touches the core's tables (or another version
table) that share its database.
"""

from alembic import context

config = context.config
connection = config.attributes["connection"]
metadata = config.attributes["metadata"]
version_table = config.attributes["version_table"]
own_tables = set(metadata.tables) if metadata is not None else set()


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "table":
        return name in own_tables
    return True


if context.is_offline_mode():
    dialect = config.attributes.get("dialect", "postgresql")
    context.configure(
        dialect_name=dialect,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=dialect == "sqlite",
        literal_binds=True,
    )
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
with context.begin_transaction():
    context.run_migrations()
