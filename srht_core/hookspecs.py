"""The plugin API: every hook a service can implement.

Each hook's docstring is its reference documentation; ``docs/plugin-api.md``
is generated from this module by ``srht dev docs``. A service implements the
hooks it needs, with only the arguments it needs, decorated with
:data:`srht_core.hookimpl`.

Hooks *return data* and the core applies it, so every contribution is
checked and attributed to the plugin that made it. Hooks about the service
itself (its blueprints, tables, jobs, commands, identity events) are called
only on that service's plugin; hooks that build something site-wide (the
navigation bar, OAuth2 scopes, webhook event lists) are called on every
enabled service, each in isolation, so one failing does not hide the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from flask import Blueprint

    from .config import Config, Section
    from .service import (
        DatabaseSchema,
        DevDaemon,
        EventType,
        HostNeeds,
        Job,
        NavEntry,
        Scope,
        ServiceInfo,
        Timer,
    )

hookspec = pluggy.HookspecMarker("srht")
#: Marks a service's hook implementations (re-exported as ``srht_core.hookimpl``).
hookimpl = pluggy.HookimplMarker("srht")


@hookspec
def service_info() -> ServiceInfo:  # type: ignore[empty-body]
    """Say who the service is: its name, title and description, and the core
    versions it works with.

    Required: a plugin without it is reported as failed.

    :return: a :class:`~srht_core.ServiceInfo`. Its ``name`` must equal the
        name of the ``srht.services`` entry point that loaded the plugin.

    Called once, when the plugin is loaded, before any other hook.

    .. versionadded:: 0.1
    """


@hookspec
def config_schema() -> list[Section]:  # type: ignore[empty-body]
    """Declare the keys of the service's config section and its sub-sections.

    The core adds the keys every service has (``origin``,
    ``connection-string``, ``bind``, ``workers``, ``hosts``, ``debug``) to
    the section named after the service; declare only the service's own.
    Sub-sections must be named ``<service>::<part>``.

    :return: a list of :class:`~srht_core.Section`.

    Called when a config is checked, on every installed plugin, enabled or
    not, so that ``srht config check`` knows every section.

    .. versionadded:: 0.1
    """


@hookspec
def blueprints(config: Config) -> list[Blueprint]:  # type: ignore[empty-body]
    """Give the Flask blueprints that make up the service's pages and API.

    A blueprint whose name ends in ``api`` and whose URL prefix is ``/api``
    (see :func:`srht_core.api_blueprint`) authenticates by token, is exempt
    from CSRF checks and answers errors in JSON.

    :param config: the bound site config.
    :return: a list of :class:`flask.Blueprint`; two with the same name or
        URL prefix are an error.

    Called by :func:`srht_core.create_app`, only on the service being built.

    .. versionadded:: 0.1
    """


@hookspec
def database_schema() -> DatabaseSchema:  # type: ignore[empty-body]
    """Give the service's SQLAlchemy metadata and the folder of its Alembic
    migrations.

    Each service has its own database and its own Alembic version table
    (``alembic_version_<service>``); the core's tables (jobs, timers) live
    beside it under their own version table. ``srht migrate`` applies both.

    :return: a :class:`~srht_core.DatabaseSchema`.

    Called when the service's app is created and by ``srht migrate``.

    .. versionadded:: 0.1
    """


@hookspec
def cli_commands() -> list[click.Command]:  # type: ignore[empty-body]
    """Add commands under ``srht <service> ...``.

    Commands run inside the service's app context, so they can use
    :data:`srht_core.db_session` and the config like a request would.

    :return: a list of :class:`click.Command` (or groups).

    Called when the ``srht`` command line starts, on enabled services; a
    plugin failing here loses its commands, not the others'.

    .. versionadded:: 0.1
    """


@hookspec
def jobs() -> list[Job]:  # type: ignore[empty-body]
    """Declare the kinds of background job the service runs.

    Jobs are enqueued with :func:`srht_core.enqueue`, which records them in
    the service's database in the caller's transaction; a worker (``srht
    worker <service>``, through Celery when ``[srht] broker`` is set) runs
    them and retries failures with backoff.

    :return: a list of :class:`~srht_core.Job`.

    Called when the app is created, only on the service's own plugin (and
    the core's, which contributes mail delivery and housekeeping).

    .. versionadded:: 0.1
    """


@hookspec
def timers(config: Config) -> list[Timer]:  # type: ignore[empty-body]
    """Declare periodic work: each timer enqueues one of the service's jobs
    at a fixed interval, once per period across every worker.

    :param config: the bound site config (to make intervals configurable).
    :return: a list of :class:`~srht_core.Timer`.

    Called by the worker at start-up.

    .. versionadded:: 0.1
    """


@hookspec
def nav_entries(config: Config) -> list[NavEntry]:  # type: ignore[empty-body]
    """Contribute links to the navigation bar shared by every service.

    Paths are relative to the service's own ``origin``, so the bar works
    whichever service renders it.

    :param config: the bound site config.
    :return: a list of :class:`~srht_core.NavEntry`, sorted by their ``order``
        (then label) across all services.

    Called once per app on every *enabled* service.

    .. versionadded:: 0.1
    """


@hookspec
def webhook_events() -> list[EventType]:  # type: ignore[empty-body]
    """Declare the webhook events the service emits.

    :return: a list of :class:`~srht_core.EventType`. Names are prefixed with
        the service (``todo:ticket:create``) when shown to users; two
        services cannot declare the same event.

    Called on every enabled service.

    .. versionadded:: 0.1
    """


@hookspec
def oauth_scopes() -> list[Scope]:  # type: ignore[empty-body]
    """Declare the OAuth2 scopes of the service's API.

    Tokens name them as ``<service>/<scope>:RO`` or ``:RW``; meta offers the
    scopes of every enabled service on its authorization page.

    :return: a list of :class:`~srht_core.Scope`.

    Called on every enabled service.

    .. versionadded:: 0.1
    """


@hookspec
def host_needs(config: Config) -> HostNeeds:  # type: ignore[empty-body]
    """Say what a host needs to run the service: system packages, users,
    directories, ports, extra daemons, sshd configuration.

    The deploy installs exactly this for each host the service is placed
    on, so a third-party service deploys like a built-in one.

    :param config: the bound site config.
    :return: a :class:`~srht_core.HostNeeds`.

    Called by the deploy, on every enabled service.

    .. versionadded:: 0.1
    """


@hookspec
def dev_daemons(config: Config) -> list[DevDaemon]:  # type: ignore[empty-body]
    """Name the processes ``srht up`` runs for the service on a developer's
    machine besides its web server and its worker: a listener standing in
    for what a production host has in front of the service (lists runs an
    SMTP listener on loopback there, where production has Postfix passing
    mail on over LMTP to a daemon of :attr:`HostNeeds.daemons`).

    :param config: the bound site config (to read the listener's address).
    :return: a list of :class:`~srht_core.DevDaemon`; ``srht up`` starts
        each as ``srht --config PATH COMMAND...``, prints its address and
        description under the service's URL, and stops it with the rest.

    Called by ``srht up`` on every enabled service, each in isolation (one
    raising loses its own daemons, with a warning, not the others').

    .. versionadded:: 0.1
    """


@hookspec
def user_updated(user: Any) -> None:
    """React to a change of a user's profile at the identity provider
    (username, email, type, suspension).

    The core has already updated the service's mirrored user row when this
    is called; update anything the service derives from it.

    :param user: the service's mirrored user object, already updated.
    :return: nothing; the return value is ignored.

    Called in the service's app context and open database session, which
    the core commits afterwards; raising rolls the update back and the
    identity event is retried.

    .. versionadded:: 0.1
    """


@hookspec
def user_deleted(user: Any) -> None:
    """Remove (or hand over) everything the service holds for a user whose
    account is being deleted.

    :param user: the service's mirrored user object; the core deletes it
        after every implementation has returned.
    :return: nothing; the return value is ignored.

    Called in the service's app context and open database session, which
    the core commits afterwards; raising rolls back and the event is retried.

    .. versionadded:: 0.1
    """


@hookspec
def is_revoked(kind: str, ident: int) -> bool:  # type: ignore[empty-body]
    """Answer whether a token or login session was revoked, from the
    service's own records. Only the identity provider implements it (meta,
    which issues tokens and sessions); every other service asks meta's
    internal API instead, through a cache the core keeps.

    :param kind: ``"pat"`` (personal access token), ``"oauth"`` (OAuth2
        access token) or ``"session"`` (a login cookie's session).
    :param ident: the token's or session's id.
    :return: ``True`` when it was revoked, or belonged to an account that
        no longer exists.

    Called on every authenticated request of the implementing service, only
    on that service's own plugin: keep it to one indexed query.

    .. versionadded:: 0.1
    """
