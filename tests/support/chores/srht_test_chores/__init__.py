"""chores: a chore list, the small real service the core's tests use.

It exercises every part of the core a service touches: a config section of
its own, a mirrored user and a model with Alembic migrations, a page in the
shared layout with a CSRF-protected form, a token API, jobs and a timer.
Tests register this module on a plugin host (``register_plugin``) or, for
subprocesses, install the distribution around it (``support_venv``).
"""

from __future__ import annotations

import os
from pathlib import Path

from srht_core import (
    Config,
    DatabaseSchema,
    Integer,
    Job,
    Key,
    NavEntry,
    PathValue,
    Scope,
    Section,
    ServiceInfo,
    Timer,
    hookimpl,
)

from . import api, models, web
from . import jobs as chore_jobs

MIGRATIONS = Path(__file__).parent / "migrations"
#: Tests that write revisions point this at a copy of the migrations folder.
MIGRATIONS_ENV = "SRHT_TEST_CHORES_MIGRATIONS"


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "chores",
        "Chores",
        "A chore list for the core's own tests.",
        core_requires=">=0.1.0.dev0",
        default_port=5990,
    )


@hookimpl
def config_schema() -> list[Section]:
    return [
        Section(
            "chores",
            keys=(
                Key(
                    "hold-dir",
                    PathValue(),
                    default=None,
                    description="Where /hold/NAME waits for NAME.release (tests only).",
                ),
                Key(
                    "tidy-every",
                    Integer(min=1),
                    default=3600,
                    description="Seconds between two runs of the tidy timer.",
                ),
            ),
        )
    ]


@hookimpl
def database_schema() -> DatabaseSchema:
    return DatabaseSchema(
        models.metadata, Path(os.environ.get(MIGRATIONS_ENV) or MIGRATIONS), user_model=models.User
    )


@hookimpl
def blueprints() -> list[object]:
    return [web.bp, api.bp]


@hookimpl
def jobs() -> list[Job]:
    return [
        Job("remind", chore_jobs.remind),
        Job("stamp", chore_jobs.stamp),
        Job("flaky", chore_jobs.flaky, max_attempts=3, backoff=10),
        Job("hold", chore_jobs.hold, timeout=2),
        Job("tidy", chore_jobs.tidy),
    ]


@hookimpl
def timers(config: Config) -> list[Timer]:
    return [Timer("tidy", "tidy", every=config["chores"]["tidy-every"])]


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [Scope("chores", "your chores")]


@hookimpl
def nav_entries() -> list[NavEntry]:
    return [NavEntry("Chores", "/", order=50)]
