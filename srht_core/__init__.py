"""srht core: the host every service plugs into.

This module is the public facade: plugins import from here and from nowhere
else in the core, so the core's modules can move without breaking them.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .app import NavLink, SrhtState, api_blueprint, create_app, current_service
from .assets import static_url
from .config import (
    Address,
    Boolean,
    Choice,
    Config,
    ConfigError,
    ConfigProblem,
    Email,
    Integer,
    Key,
    List,
    Networks,
    PathValue,
    Section,
    Text,
    Url,
    load_config,
)
from .db import Database, MirroredUserMixin, TimestampMixin, db_session, utcnow
from .errors import ApiError
from .forms import Form, api_validate, form_errors
from .jobs import enqueue
from .markdown import render_markdown
from .pagination import CursorPage, Page, cursor_paginate, paginate
from .plugins import PluginError, PluginHost, hookimpl
from .security import client_address, from_internal_network, internal_only
from .service import (
    DatabaseSchema,
    EventType,
    HostNeeds,
    Job,
    NavEntry,
    Scope,
    ServiceInfo,
    Timer,
)

__all__ = [
    "Address",
    "ApiError",
    "Boolean",
    "Choice",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "CursorPage",
    "Database",
    "DatabaseSchema",
    "Email",
    "EventType",
    "Form",
    "HostNeeds",
    "Integer",
    "Job",
    "Key",
    "List",
    "MirroredUserMixin",
    "NavEntry",
    "NavLink",
    "Networks",
    "Page",
    "PathValue",
    "PluginError",
    "PluginHost",
    "Scope",
    "Section",
    "ServiceInfo",
    "SrhtState",
    "Text",
    "TimestampMixin",
    "Timer",
    "Url",
    "__version__",
    "api_blueprint",
    "api_validate",
    "client_address",
    "create_app",
    "current_service",
    "cursor_paginate",
    "db_session",
    "enqueue",
    "form_errors",
    "from_internal_network",
    "hookimpl",
    "internal_only",
    "load_config",
    "paginate",
    "render_markdown",
    "static_url",
    "utcnow",
]
