"""The state of a service's app, and how any module reaches it.

:class:`SrhtState` is everything the core keeps for one service's app, as
typed fields: the service, the bound config, the plugin host, the database,
the navigation, and the pieces other core modules share (the page cache,
the users kept in memory, the revocation check, the static folders). It lives on
``app.extensions["srht"]``; :func:`current_service` returns it for the app
handling the current request or command.

This module imports nothing of the core's upper layers (the app factory,
identity, tokens, jobs ...), so every other module can import it at the
top, as Flask's own ``globals.py`` is imported by everything in Flask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from .cache import PageCache
    from .config import Config
    from .db import Database
    from .plugins import PluginHost
    from .revocation import RevocationCache
    from .service import DatabaseSchema, Job, ServiceInfo
    from .usercache import UserCache

__all__ = ["NavLink", "SrhtState", "current_service", "state_of"]


@dataclass(frozen=True)
class NavLink:
    """A rendered navigation entry: absolute URL and whose it is."""

    label: str
    url: str
    service: str
    order: int


@dataclass(eq=False)
class SrhtState:
    """What the core keeps for one service's app (``app.extensions["srht"]``).

    Every field is set by :func:`srht_core.create_app`; plugins read them
    through :func:`current_service` and never add keys of their own to
    ``app.extensions`` for the core to find: an extension point is a hook or
    a field here.
    """

    service: ServiceInfo
    config: Config
    plugins: PluginHost
    db: Database
    #: The shared navigation bar, in order.
    nav: list[NavLink]
    #: ``{service: origin}`` of every enabled service.
    origins: dict[str, str]
    #: Rendered pages kept for visitors without cookies (see :mod:`.pagecache`).
    page_cache: PageCache
    #: What meta revoked, asked of meta's internal API (see :mod:`.revocation`).
    revocations: RevocationCache
    #: The users behind tokens and login cookies, kept in memory until
    #: their rows change (see :mod:`.usercache`).
    users: UserCache
    #: The service's job kinds by name, the core's included.
    jobs: dict[str, Job] = field(default_factory=dict)
    schema: DatabaseSchema | None = None
    #: The identity provider's own revocation check (its ``is_revoked``
    #: hook), used instead of :attr:`revocations` when the service has one.
    revoked: Callable[[str, int], bool] | None = None
    #: Called with ``True`` for a page answered from memory, ``False`` for
    #: one rendered (the metrics count them).
    count_kept_page: Callable[[bool], None] | None = None
    #: ``{owner: folder}`` of static files: ``srht`` and the service's own.
    static_folders: dict[str, Path] = field(default_factory=dict)

    def is_revoked(self, kind: str, ident: int, user: int | None = None) -> bool:
        """Whether meta revoked token (``pat``, ``oauth``) or login session
        (``session``) number ``ident``, or deleted ``user``, the account it
        was sealed for: from the identity provider's own ``is_revoked`` hook
        in meta (where a deleted account's tokens and sessions are gone, so
        revoked), from :attr:`revocations` elsewhere.

        :raises srht_core.ApiError: 503 when meta has been unreachable past
            the grace period (see :class:`~srht_core.revocation.RevocationCache`).
        """
        if self.revoked is not None:
            return self.revoked(kind, ident)
        return self.revocations.is_revoked(kind, ident, user)

    @property
    def section(self) -> Any:
        """The service's own config section."""
        return self.config[self.service.name]

    @property
    def origin(self) -> str:
        """The service's public origin (``https://todo.example.org``)."""
        return self.origins[self.service.name]


def state_of(app: Flask) -> SrhtState:
    """The core's state of ``app``.

    :raises LookupError: when ``app`` was not built by :func:`srht_core.create_app`.
    """
    state = app.extensions.get("srht")
    if state is None:
        raise LookupError(f"app {app.name!r} was not built by srht_core.create_app")
    assert isinstance(state, SrhtState)
    return state


def current_service() -> SrhtState:
    """The core's state of the service handling the current request (or
    command: ``srht <service> ...`` runs inside the service's app context)."""
    state: SrhtState = current_app.extensions["srht"]
    return state
