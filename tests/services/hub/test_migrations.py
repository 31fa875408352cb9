"""The migrations create exactly the tables the models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from srht_core import state_of
from srht_plugins.hub.models import Base

pytestmark = [pytest.mark.postgres]


def test_the_migrations_match_the_models(app):
    ours = set(Base.metadata.tables)  # the core's tables share the database
    with state_of(app).db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parents: kind != "table" or name in ours,
            },
        )
        assert compare_metadata(context, Base.metadata) == []
