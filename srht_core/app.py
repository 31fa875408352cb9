"""The app factory: one Flask app per service, all with one look and one set
of rules.

``create_app("todo", config)`` checks the config, builds the app, attaches
the core's pieces (database, CSRF, security headers, errors, logging,
metrics, health, static files, templates, navigation) and registers the
service's blueprints. The service contributes only through its hooks.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from jinja2 import ChoiceLoader, FileSystemLoader

from . import assets, errors, idempotency, identity, metrics, security, text
from .cache import PageCache
from .config import Config, ConfigError, load_config
from .db import Database, default_url
from .forms import choice_pairs, fields_with_errors
from .globals import NavLink, SrhtState
from .humanize import human_size
from .keys import derive_key
from .markdown import render_markdown
from .plugins import PluginError, PluginHost, PluginRecord
from .revocation import RevocationCache
from .schema import example_secrets_in_use
from .sealing import internal_request
from .service import NavEntry
from .usercache import UserCache
from .version import __version__

__all__ = ["create_app"]

log = logging.getLogger("srht.request")
CORE_DIR = Path(__file__).parent


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the serializer made once per
    secret key instead of on every request (Flask makes a new one even
    when no cookie came, 15 µs of each request's 200)."""

    def __init__(self) -> None:
        self._made: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made = self._made
        if made is None or made[0] != key:
            made = self._made = (key, super().get_signing_serializer(app))
        return made[1]


def create_app(
    service: str,
    config: Config | str | os.PathLike[str] | None = None,
    *,
    plugins: PluginHost | None = None,
) -> Flask:
    """Build the Flask app of ``service``.

    :param service: the service's name (its entry point and config section).
    :param config: a :class:`Config`, a path, or ``None`` to look it up
        (``$SRHT_CONFIG``, ``./config.ini``, ``/etc/srht/config.ini``).
    :param plugins: the plugin host to use; by default a new one discovers
        the installed services.
    :raises ConfigError: listing every problem in the config.
    :raises PluginError: when the service is not installed, failed to load,
        or is not enabled in the config.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    plugins = plugins if plugins is not None else PluginHost()
    record = _service_record(plugins, service, config)
    problems = plugins.check_config(config)
    if config.get("srht", "environment") == "production":
        problems += example_secrets_in_use(config)
    if problems:
        raise ConfigError(problems)
    assert record.info is not None
    info = record.info
    section = config[service]
    site = config["srht"]

    app = Flask(_import_name(record), static_folder=None, template_folder=None)
    app.session_interface = _CookieSessions()
    development = site["environment"] == "development"
    https = str(section["origin"]).startswith("https://")
    app.config.update(
        SECRET_KEY=derive_key(site["service-key"], f"flask-secret:{service}"),
        SESSION_COOKIE_NAME=f"srht-{service}-session",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=https,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        DEBUG=bool(section["debug"]),
        PREFERRED_URL_SCHEME="https" if https else "http",
        TRUSTED_HOSTS=_trusted_hosts(section),
    )
    app.jinja_loader = ChoiceLoader(
        [
            FileSystemLoader(site["templates-dir"]),
            FileSystemLoader(str(_plugin_dir(record) / "templates")),
            FileSystemLoader(str(CORE_DIR / "templates")),
        ]
    )

    data_dir = Path(site["data-dir"])
    url = section["connection-string"] or default_url(data_dir, service)
    db = Database(url, app)

    enabled = [r.name for r in plugins.enabled(config)]
    origins = {name: str(config[name]["origin"]) for name in enabled}
    state = SrhtState(
        service=info,
        config=config,
        plugins=plugins,
        db=db,
        nav=_navigation(plugins, config, enabled, origins),
        origins=origins,
        page_cache=PageCache(),
        revocations=RevocationCache(_ask_meta_for_revocations),
        users=UserCache(),
        schema=plugins.call_one("database_schema", service),
        revoked=plugins.hook_function("is_revoked", service),
    )
    app.extensions["srht"] = state
    for source in ("srht-core", service):
        for job in plugins.call_one("jobs", source) or ():
            if job.name in state.jobs:
                raise PluginError(f"job {job.name!r} of service {service} is declared twice")
            state.jobs[job.name] = job

    csrf = CSRFProtect()
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)

    @app.before_request
    def protect_forms() -> None:
        g.srht_started = time.perf_counter()
        g._srht_statements_at_start = db.statements
        view = app.view_functions.get(request.endpoint or "")
        blueprint = app.blueprints.get(request.blueprint or "")
        if request.routing_exception is not None:
            return  # no view will run: answer the 404 or 405, not a CSRF error
        text.refuse_bad_url()
        if getattr(blueprint, "srht_api", False) or getattr(view, "srht_csrf_exempt", False):
            return
        csrf.protect()

    idempotency.init_app(app, state)  # first after_request added: it commits, so runs last
    security.init_app(app, state)
    identity.init_app(app, state)
    errors.init_app(app)
    assets.init_app(app, state, _plugin_dir(record) / "static")
    metrics.init_app(app, state)
    _init_logging(app, development)
    _register_health(app, state)
    _register_resource_types(app, state)

    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["urlencode_page"] = _urlencode_page
    app.jinja_env.filters["choice_pairs"] = choice_pairs
    app.jinja_env.filters["fields_with_errors"] = fields_with_errors
    app.jinja_env.globals["human_size"] = human_size
    app.jinja_env.globals["profile_url"] = partial(_profile_url, state)
    app.jinja_env.globals.update(srht=state, site=site)

    for bp in plugins.call_one("blueprints", service, config=config) or ():
        if bp.name in app.blueprints:
            raise PluginError(f"service {service} registers blueprint {bp.name!r} twice")
        app.register_blueprint(bp)
    return app


def _trusted_hosts(section: Any) -> list[str]:
    """The ``Host`` names the service answers to: its origin's, and this
    machine's loopback names (health checks, tests, ``srht up``). Any other
    is a 400 before a view runs, so no redirect or link is ever built from a
    forged ``Host``."""
    names = {"localhost", "127.0.0.1"}
    origin = urlsplit(str(section["origin"])).hostname
    if origin:
        names.add(origin)
    bind = str(section.get("bind") or "")
    if bind and not bind.startswith("unix:"):
        names.add(bind.rpartition(":")[0].strip("[]") or bind)
    return sorted(names)


def _ask_meta_for_revocations(since: float) -> Any:
    return internal_request("meta", f"/internal/tokens/revoked?since={since}", timeout=5)


def _urlencode_page(args: Any, number: int) -> str:
    """The query string of ``args`` with ``page`` set to ``number``."""
    pairs = [(k, v) for k, v in args.items(multi=True) if k != "page"]
    return urlencode([*pairs, ("page", str(number))])


def _service_record(plugins: PluginHost, service: str, config: Config) -> PluginRecord:
    record = plugins.get(service)
    if record is None:
        installed = ", ".join(r.name for r in plugins.services()) or "none"
        raise PluginError(f"service {service!r} is not installed (installed: {installed})")
    if not record.ok:
        raise PluginError(f"service {service} ({record.label}) is {record.status}: {record.reason}")
    if not config.has_section(service):
        raise PluginError(
            f"service {service} is not enabled: no [{service}] section in {config.path}"
        )
    return record


def _import_name(record: PluginRecord) -> str:
    plugin = record.plugin
    return getattr(plugin, "__name__", None) or type(plugin).__module__


def _plugin_dir(record: PluginRecord) -> Path:
    plugin = record.plugin
    target = plugin if inspect.ismodule(plugin) else type(plugin)
    try:
        return Path(inspect.getfile(target)).parent
    except TypeError:
        return Path.cwd()


def _navigation(
    plugins: PluginHost, config: Config, enabled: list[str], origins: dict[str, str]
) -> list[NavLink]:
    links: list[NavLink] = []
    for name, entries, error in plugins.call_each("nav_entries", enabled, config=config):
        if error is not None:
            continue
        for entry in entries or ():
            if not isinstance(entry, NavEntry):
                log.error("nav_entries of %s returned %r, not a NavEntry", name, entry)
                continue
            links.append(NavLink(entry.label, origins[name] + entry.path, name, entry.order))
    return sorted(links, key=lambda link: (link.order, link.label))


def _init_logging(app: Flask, development: bool) -> None:
    @app.after_request
    def log_request(response: Any) -> Any:
        started = g.get("srht_started")
        if started is not None:
            took = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %s %.1fms",
                request.method,
                request.full_path.rstrip("?"),
                response.status_code,
                took,
            )
        return response

    if development:
        app.logger.setLevel(logging.DEBUG)


def _profile_url(state: SrhtState, username: str) -> str | None:
    """A user's public profile (``/~user`` on hub) where the site runs hub,
    else ``None``: what a service's user page links its owner's name to."""
    hub = state.origins.get("hub")
    return f"{hub}/~{username}" if hub else None


def _register_resource_types(app: Flask, state: SrhtState) -> None:
    """``/api/resource-types``: what the service offers to projects (the
    ``resource_types`` hook), read by hub from any host."""
    name = state.service.name
    declared = state.plugins.call_one("resource_types", name, config=state.config) or []
    seen: set[str] = set()
    for kind in declared:
        if kind.name in seen:
            raise PluginError(f"service {name} declares the resource type {kind.name!r} twice")
        seen.add(kind.name)
    answer = {
        "service": name,
        "origin": state.origins.get(name, ""),
        "resource_types": [kind.to_dict(name) for kind in declared],
    }

    @app.get("/api/resource-types")
    def resource_types() -> dict[str, Any]:
        return answer

    resource_types.srht_csrf_exempt = True  # type: ignore[attr-defined]


def _register_health(app: Flask, state: SrhtState) -> None:
    """``/healthz``: ``{"service", "version", "database"}``, and ``"meta"``
    for a service that signs its users in through meta (its internal API
    asked at most every :data:`~srht_core.identity.META_PROBE_TTL` seconds, every
    :data:`~srht_core.identity.META_PROBE_FAILED_TTL` after a failure);
    503 when either is not ``ok``."""
    signs_in = state.schema is not None and state.schema.user_model is not None
    meta = (
        identity.MetaProbe()
        if signs_in and state.service.name != "meta" and state.config.has_section("meta")
        else None
    )

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, Any], int]:
        status = {"service": state.service.name, "version": __version__, "database": "ok"}
        code = 200
        try:
            with state.db.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - reported to the prober
            status["database"] = f"error: {type(error).__name__}"
            code = 503
        if meta is not None:
            status["meta"] = meta.status()
            if status["meta"] != "ok":
                code = 503
        return status, code

    healthz.srht_csrf_exempt = True  # type: ignore[attr-defined]
