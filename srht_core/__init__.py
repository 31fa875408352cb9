"""srht core: the host every service plugs into.

This module is the public facade: plugins import from here and from nowhere
else in the core, so the core's modules can move without breaking them.
"""

from __future__ import annotations

from .api import Api, Operation, api_blueprint, body_schema, declared_apis
from .app import create_app
from .assets import static_url
from .cache import BoundedCache
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
from .confirm import confirm
from .db import Database, ReadOnlyRequestError, db_session, utcnow, writes
from .delegation import DELEGATION_LIFETIME, delegated_token
from .errors import (
    API_ERRORS_SCHEMA,
    ApiError,
    Problem,
    error_responses,
    json_response,
    schema_ref,
)
from .forms import ChoiceField, Form, MultipleChoiceField, api_validate, form_errors
from .globals import NavLink, SrhtState, current_service, state_of
from .highlight import RenderedFile, highlighted_lines, language_of, render_file
from .humanize import human_size
from .idempotency import idempotency_header_parameter
from .identity import (
    LOGIN_LIFETIME,
    clear_login_cookie,
    current_user,
    internal_only_credential,
    is_safe_return_to,
    login_required,
    login_session,
    login_url,
    mirror_user,
    set_login_cookie,
    user_named,
)
from .jobs import enqueue
from .jsonbody import json_object, string_field, string_list_field
from .keys import derive_key
from .mail import send_mail, send_message
from .markdown import render_markdown
from .models import (
    NAMING,
    MirroredUserMixin,
    Model,
    TimestampMixin,
    UpdatedMixin,
    never_reuse_ids,
)
from .pagecache import anonymous_page, watch, watched_page
from .pagination import CursorPage, Page, cursor_paginate, paginate, paginate_list
from .plugins import PluginError, PluginHost, hookimpl
from .sealing import ServiceUnreachable, internal_request
from .security import (
    allow_csp,
    client_address,
    from_internal_network,
    internal_only,
    is_loopback,
    sandbox,
)
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
from .text import InvalidText, text_problem, url_problem
from .tokens import (
    TokenGrant,
    api_user,
    current_token,
    parse_scopes,
    require_scope,
    seal_grant,
    token_user,
    verify_token,
    viewer,
)
from .version import __version__
from .webhooks import (
    DELIVERY_SCHEMA,
    Delivery,
    WebhookError,
    deliveries,
    delivery_page,
    redeliver,
    send_webhook,
    verify_request,
    webhook_signature_key,
)

__all__ = [
    "API_ERRORS_SCHEMA",
    "Address",
    "Api",
    "ApiError",
    "Boolean",
    "BoundedCache",
    "Choice",
    "Config",
    "DELEGATION_LIFETIME",
    "ConfigError",
    "ChoiceField",
    "ConfigProblem",
    "CursorPage",
    "DELIVERY_SCHEMA",
    "Database",
    "DatabaseSchema",
    "Delivery",
    "DevDaemon",
    "Email",
    "EventType",
    "FernetKey",
    "Form",
    "HostNeeds",
    "Integer",
    "InvalidText",
    "Job",
    "Key",
    "LOGIN_LIFETIME",
    "List",
    "MirroredUserMixin",
    "MultipleChoiceField",
    "Model",
    "NAMING",
    "NavEntry",
    "NavLink",
    "Networks",
    "Operation",
    "Page",
    "PathValue",
    "PluginError",
    "PluginHost",
    "Problem",
    "ReadOnlyRequestError",
    "RenderedFile",
    "Scope",
    "Secret",
    "Section",
    "ServiceInfo",
    "ServiceUnreachable",
    "SigningKey",
    "SrhtState",
    "Text",
    "Timer",
    "TimestampMixin",
    "TokenGrant",
    "UpdatedMixin",
    "Url",
    "WebhookError",
    "__version__",
    "allow_csp",
    "anonymous_page",
    "api_blueprint",
    "api_user",
    "api_validate",
    "body_schema",
    "clear_login_cookie",
    "client_address",
    "confirm",
    "create_app",
    "current_service",
    "current_token",
    "current_user",
    "cursor_paginate",
    "db_session",
    "declared_apis",
    "delegated_token",
    "deliveries",
    "delivery_page",
    "derive_key",
    "enqueue",
    "error_responses",
    "form_errors",
    "from_internal_network",
    "highlighted_lines",
    "hookimpl",
    "human_size",
    "idempotency_header_parameter",
    "internal_only",
    "internal_only_credential",
    "internal_request",
    "is_loopback",
    "is_safe_return_to",
    "json_object",
    "json_response",
    "language_of",
    "load_config",
    "login_required",
    "login_session",
    "login_url",
    "mirror_user",
    "user_named",
    "never_reuse_ids",
    "paginate",
    "paginate_list",
    "parse_scopes",
    "redeliver",
    "render_file",
    "render_markdown",
    "require_scope",
    "sandbox",
    "schema_ref",
    "seal_grant",
    "send_mail",
    "send_message",
    "send_webhook",
    "set_login_cookie",
    "state_of",
    "static_url",
    "string_field",
    "string_list_field",
    "text_problem",
    "url_problem",
    "token_user",
    "unwatch_rows",
    "utcnow",
    "verify_request",
    "verify_token",
    "viewer",
    "watch",
    "watch_rows",
    "watched_page",
    "webhook_signature_key",
    "writes",
]
