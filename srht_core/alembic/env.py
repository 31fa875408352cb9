"""The one Alembic environment, shared by the core and every service.

Run by :mod:`srht_core.migrate`, never by the ``alembic`` command: the
caller puts the connection, the target metadata and the version table in
``config.attributes``. Autogenerate compares only the tables of the target
metadata, so a service's revision never touches the core's tables (or
another version table) that share its database.
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
