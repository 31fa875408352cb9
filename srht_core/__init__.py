"""srht core: the host every service plugs into.

This module is the public facade: plugins import from here and from nowhere
else in the core, so the core's modules can move without breaking them.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .app import NavLink, SrhtState, api_blueprint, create_app, current_service
from .assets import static_url
from .changes import unwatch_rows, watch_rows
from .config import (
    Address,
    Boolean,
    Choice,
    Config,
    ConfigError,
    ConfigProblem,
    Email,
    FernetKey,
    Integer,
    Key,
    List,
    Networks,
    PathValue,
    Secret,
    Section,
    SigningKey,
    Text,
    Url,
    load_config,
)
from .db import (
    Database,
    MirroredUserMixin,
    ReadOnlyRequestError,
    TimestampMixin,
    db_session,
    utcnow,
    writes,
)
from .errors import API_ERRORS_SCHEMA, ApiError, error_responses, json_response, schema_ref
from .forms import Form, api_validate, form_errors
from .humanize import human_size
from .idempotency import idempotency_header_parameter
from .identity import (
    LOGIN_LIFETIME,
    clear_login_cookie,
    current_user,
    internal_only_credential,
    internal_request,
    is_safe_return_to,
    login_required,
    login_session,
    login_url,
    mirror_user,
    set_login_cookie,
)
from .jobs import enqueue
from .jsonbody import json_object, string_field, string_list_field
from .keys import derive_key
from .mail import send_mail
from .markdown import render_markdown
from .pagecache import anonymous_page, watch, watched_page
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
from .tokens import (
    TokenGrant,
    api_user,
    current_token,
    parse_scopes,
    require_scope,
    seal_grant,
    token_user,
    verify_token,
)
from .webhooks import Delivery, deliveries, redeliver, send_webhook, webhook_signature_key

__all__ = [
    "API_ERRORS_SCHEMA",
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
    "Delivery",
    "Email",
    "EventType",
    "FernetKey",
    "Form",
    "HostNeeds",
    "Integer",
    "Job",
    "Key",
    "LOGIN_LIFETIME",
    "List",
    "MirroredUserMixin",
    "NavEntry",
    "NavLink",
    "Networks",
    "Page",
    "PathValue",
    "PluginError",
    "PluginHost",
    "ReadOnlyRequestError",
    "Scope",
    "Secret",
    "Section",
    "ServiceInfo",
    "SigningKey",
    "SrhtState",
    "Text",
    "Timer",
    "TimestampMixin",
    "TokenGrant",
    "Url",
    "__version__",
    "anonymous_page",
    "api_blueprint",
    "api_user",
    "api_validate",
    "clear_login_cookie",
    "client_address",
    "create_app",
    "current_service",
    "current_token",
    "current_user",
    "cursor_paginate",
    "db_session",
    "deliveries",
    "derive_key",
    "enqueue",
    "error_responses",
    "form_errors",
    "from_internal_network",
    "hookimpl",
    "human_size",
    "idempotency_header_parameter",
    "internal_only",
    "internal_only_credential",
    "internal_request",
    "is_safe_return_to",
    "json_object",
    "json_response",
    "load_config",
    "login_required",
    "login_session",
    "login_url",
    "mirror_user",
    "paginate",
    "parse_scopes",
    "redeliver",
    "render_markdown",
    "require_scope",
    "schema_ref",
    "seal_grant",
    "send_mail",
    "send_webhook",
    "set_login_cookie",
    "static_url",
    "string_field",
    "string_list_field",
    "token_user",
    "unwatch_rows",
    "utcnow",
    "verify_token",
    "watch",
    "watch_rows",
    "watched_page",
    "webhook_signature_key",
    "writes",
]
