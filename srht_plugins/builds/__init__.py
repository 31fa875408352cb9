"""builds: continuous integration on the site's own servers.

A job is described by a manifest (YAML, as sr.ht's) and runs in a
throwaway systemd-nspawn container on a runner host, reached through the
broker queue of its image; its log streams back to the service while it
runs. This module is its table of contents: the hooks through which it
plugs into the core. The rest: ``config`` (its section), ``models``
(tables), ``access`` (who may do what), ``manifest`` (reading manifests),
``images`` (what jobs run on), ``submit`` (queueing, cancelling),
``secrets``, ``dispatch`` (queues and the watchdog over runners),
``runners`` (the internal API runners speak), ``push`` and ``gitapi``
(jobs from pushes, through git's public API), ``patchsets`` and
``listsapi`` (jobs from patchsets on lists, through lists' public API,
and their status told back to lists), ``delegation`` (tokens
acting for a user), ``events`` (triggers), ``jobs`` (background jobs),
``api`` (REST and OpenAPI), ``web`` (pages), and ``runner/`` (what runs on
the runner hosts: ``srht builds runner``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from srht_core import (
    Config,
    DatabaseSchema,
    EventType,
    HostNeeds,
    Job,
    NavEntry,
    Scope,
    Section,
    ServiceInfo,
    Timer,
    hookimpl,
)

if TYPE_CHECKING:
    from flask import Blueprint

# Imported under another name before the ``jobs`` hook below is defined:
# importing a submodule sets it as an attribute of its package, and the
# module must not replace the hook.
from . import jobs as builds_jobs  # noqa: E402

HERE = Path(__file__).parent


@hookimpl
def service_info() -> ServiceInfo:
    return ServiceInfo(
        "builds",
        "Builds",
        "Continuous integration: jobs from manifests, run in throwaway containers on runners.",
        core_requires=">=0.1.0.dev0,<0.2",
        default_port=5005,
    )


@hookimpl
def config_schema() -> list[Section]:
    from .config import SCHEMA

    return SCHEMA


@hookimpl
def database_schema() -> DatabaseSchema:
    from .models import Base, User

    return DatabaseSchema(Base.metadata, HERE / "migrations", user_model=User)


@hookimpl
def blueprints(config: Config) -> list[Blueprint]:
    from .api import api
    from .patchsets import bp as patchsets
    from .push import bp as push
    from .runners import bp as runners
    from .web.jobs import bp as jobs
    from .web.settings import bp as settings

    return [jobs, settings, push, patchsets, runners, api.blueprint]


@hookimpl
def jobs() -> list[Job]:
    return builds_jobs.JOBS


@hookimpl
def timers(config: Config) -> list[Timer]:
    return builds_jobs.timers(config)


@hookimpl
def cli_commands() -> list[click.Command]:
    from .runner.cli import runner_command

    return [runner_command]


@hookimpl
def nav_entries(config: Config) -> list[NavEntry]:
    return [NavEntry("Builds", "/", order=50)]


@hookimpl
def webhook_events() -> list[EventType]:
    from .events import EVENTS

    return EVENTS


@hookimpl
def oauth_scopes() -> list[Scope]:
    return [
        Scope("jobs", "your build jobs: submit, read, cancel and resubmit them"),
        Scope("secrets", "your build secrets (their ids and names; never their content)"),
    ]


@hookimpl
def host_needs(config: Config) -> HostNeeds:
    return HostNeeds(packages=("git",))


@hookimpl
def user_deleted(user: Any) -> None:
    """Everything of the user's goes with the user row (cascades); running
    jobs are stopped by their runners at their next word."""
