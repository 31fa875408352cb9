"""Generated documentation: the plugin API reference (from the hookspecs'
docstrings), the config reference and ``config.example.ini`` (from the
schemas). ``srht dev docs`` writes them; a test fails when they are stale.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

from . import hookspecs, service
from .config import Section
from .plugins import PluginHost
from .schema import CORE_SECTIONS

__all__ = ["builtin_sections", "example_config", "generated_files", "plugin_api_markdown"]

#: The distribution whose services are the built-in ones.
BUILTIN_DISTRIBUTION = "srht"


def _docstring(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _rst_to_md(text: str) -> str:
    """The little reST our docstrings use, as Markdown."""

    text = re.sub(r":(?:class|func|data|meth|mod):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"^:param (\w+):", r"- `\1`:", text, flags=re.M)
    text = re.sub(r"^:return:", "- returns:", text, flags=re.M)
    text = re.sub(r"^:raises (\w+):", r"- raises `\1`:", text, flags=re.M)
    text = re.sub(r"^\.\. versionadded:: (.+)$", r"*Added in \1.*", text, flags=re.M)
    text = re.sub(r"^\.\. versionchanged:: (.+)$", r"*Changed in \1:*", text, flags=re.M)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return text


def hook_names() -> list[str]:
    return PluginHost.spec_names()


def plugin_api_markdown() -> str:
    """The plugin API reference page."""
    out = [
        "# Plugin API reference",
        "",
        "<!-- Generated from srht_core/hookspecs.py and srht_core/service.py by "
        "`srht dev docs`; do not edit. -->",
        "",
        _rst_to_md(_docstring(hookspecs)),
        "",
        "A service is a Python distribution with an entry point in the group "
        "`srht.services` whose name is the service's name and whose object is a "
        "module (or object) of hook implementations:",
        "",
        "```toml",
        '[project.entry-points."srht.services"]',
        'hello = "srht_hello"',
        "```",
        "",
        "```python",
        "from srht_core import ServiceInfo, hookimpl",
        "",
        "",
        "@hookimpl",
        "def service_info():",
        '    return ServiceInfo("hello", "Hello", "Says hello.", core_requires=">=0.1")',
        "```",
        "",
        "Import only from `srht_core` (its `__init__` is the public surface). "
        "`srht services` lists what is installed and why a service is disabled "
        "or failed (`--hooks`: and which hooks each implements); "
        "`SRHT_PLUGINS_STRICT=1` turns a plugin failure into an error.",
        "",
        *starting_markdown(),
        "## Hooks",
        "",
    ]
    for name in hook_names():
        func = getattr(hookspecs, name)
        signature = inspect.signature(func)
        params = ", ".join(signature.parameters)
        returns = signature.return_annotation
        returns = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
        out += [f"### `{name}({params})` → `{returns}`", "", _rst_to_md(_docstring(func)), ""]
    out += ["## Records hooks return", ""]
    for name in service.__all__:
        cls = getattr(service, name)
        fields = ", ".join(inspect.signature(cls).parameters)
        out += [f"### `{name}({fields})`", "", _rst_to_md(_docstring(cls)), ""]
    out += helpers_markdown()
    out += templates_markdown()
    return "\n".join(out).rstrip() + "\n"


TEMPLATES = Path(__file__).parent / "templates" / "srht"
_MACRO = re.compile(
    r"\{#(?P<doc>(?:(?!#\}).)*)#\}\s*\{%-? macro (?P<sig>[a-z]\w*\(.*?\)) -?%\}", re.S
)


def templates_markdown() -> list[str]:
    """The section of the reference on the core's templates: the layouts a
    page extends and each public macro of ``srht/macros.html`` with the
    comment above it."""
    out = [
        "## Templates",
        "",
        "Every page extends `srht/base.html` (the layout: navigation, flashed "
        "messages, blocks `title`, `head` and `content`, and one stylesheet, "
        "`/style.css`: the core's `srht.css` followed by the service's own "
        "`static/<service>.css`, cached for a year under a versioned URL, so "
        "a page costs two requests on a first visit and one after; keep it "
        "so: no further stylesheets, scripts or images in `head`, and a "
        "page's own styles inline under `allow_csp('style-src', "
        "\"'sha256-...'\")`). Settings pages extend `srht/settings.html` "
        "(set `settings_menu` to `[(key, label, url), ...]` and `section` to "
        "this page's key; fill `settings_header` and `settings`). Deletions "
        "and revocations use `srht_core.confirm`, which renders "
        "`srht/confirm.html`; errors render `srht/error.html`. A site may "
        "override any of them from `[srht] templates-dir`.",
        "",
        "Besides Flask's, every template sees `srht` (the service's state: "
        "`srht.origins` maps each service of the site to its origin), `site` "
        "(the `[srht]` section), `static_url(path)`, `human_size(size)` and "
        "`profile_url(username)`: the user's public profile on hub where the "
        "site runs hub, else `None`, which a service's user page links its "
        "owner's name to (`m.page_header([(user.canonical_name, "
        "profile_url(user.username))])`).",
        "",
        'The macros, imported with `{% import "srht/macros.html" as m %}`:',
        "",
    ]
    text = (TEMPLATES / "macros.html").read_text(encoding="utf-8")
    for match in _MACRO.finditer(text):
        doc = " ".join(match["doc"].split())
        out += [f"### `m.{match['sig']}`", "", doc, ""]
    return out


def starting_markdown() -> list[str]:
    """The section of the reference on starting a service and its shape."""
    return [
        "## Starting a service",
        "",
        "`srht dev new-service NAME [--path DIR]` writes `srht-NAME` into DIR (default: "
        "here): a complete service to start from, notes with pages, a REST API, a webhook, "
        "a migration and tests. It installs with pip, passes its own tests and shows in "
        "`srht services` as it is. NAME is lower-case letters, digits and dashes, not an "
        "installed service's; nothing is ever overwritten (exit 2 otherwise). Every service, "
        "built-in or not, has this shape (it writes all but `jobs.py`):",
        "",
        "```",
        "srht-NAME/",
        "  pyproject.toml        the srht.services entry point, srht as a dependency, a test extra",
        "  srht_NAME/",
        "    __init__.py         hook implementations only: the service's table of contents",
        "    config.py           the keys of its [NAME] section",
        "    models.py           its tables, on srht_core.Model",
        "    access.py           who may do what, for pages and API alike",
        "    events.py           the webhook events it emits",
        "    api.py              its REST API, declared with srht_core.Api",
        "    web/                its pages: blueprints, templates on srht/base.html and macros",
        "    jobs.py             its background jobs, if it has any",
        "    migrations/         Alembic revisions (`srht dev revision NAME -m ...` writes one)",
        "    templates/NAME/     its templates",
        "    static/NAME.css     its own styles (the layout links the file itself)",
        "  tests/                tests on the fixtures srht ships",
        "```",
        "",
        "Those fixtures come with srht as a pytest plugin (`srht_core.testing`): "
        "`srht_postgres` and `srht_database_url` (a throwaway PostgreSQL, or "
        "`$SRHT_TEST_DATABASE_URL`), `make_config`, `plugin_host`, `register_plugin`, "
        "`make_app`, and the helpers `serve_service` (real gunicorn), `FormBrowser` (submits "
        "the forms a page shows, CSRF token included), `sign_in` (meta's login cookie) and "
        "`page_kind_problems(html, kind)`: what a page lacks to be drawn as the kit draws "
        "that kind of page (`header`, `settings`, `list`, `form-errors`, `404`; see "
        "`PAGE_KINDS`), so a service's tests can check that its pages look like every "
        "other service's.",
        "",
    ]


#: What a service's code calls, by topic: every other name of ``srht_core``'s
#: public surface (``__all__``) is listed here; a test checks none is missing.
HELPERS: list[tuple[str, list[str]]] = [
    (
        "Requests and sign-on",
        [
            "current_service",
            "state_of",
            "current_user",
            "viewer",
            "login_required",
            "login_url",
            "login_session",
            "LOGIN_LIFETIME",
            "is_safe_return_to",
            "set_login_cookie",
            "clear_login_cookie",
            "mirror_user",
            "user_named",
            "report_progress",
        ],
    ),
    (
        "Data",
        [
            "Model",
            "UpdatedMixin",
            "MirroredUserMixin",
            "TimestampMixin",
            "NAMING",
            "db_session",
            "Database",
            "utcnow",
            "writes",
            "ReadOnlyRequestError",
            "paginate",
            "Page",
            "cursor_paginate",
            "CursorPage",
            "paginate_list",
            "never_reuse_ids",
            "watch_rows",
            "unwatch_rows",
        ],
    ),
    (
        "Pages and forms",
        [
            "Form",
            "ChoiceField",
            "MultipleChoiceField",
            "WebhookForm",
            "WebhookSettings",
            "Problem",
            "form_errors",
            "confirm",
            "render_markdown",
            "render_file",
            "RenderedFile",
            "highlighted_lines",
            "language_of",
            "static_url",
            "human_size",
            "watched_page",
            "watch",
            "anonymous_page",
            "BoundedCache",
            "allow_csp",
            "sandbox",
            "NavLink",
        ],
    ),
    (
        "Text as it enters",
        ["text_problem", "url_problem", "InvalidText"],
    ),
    (
        "APIs and tokens",
        [
            "Api",
            "Operation",
            "body_schema",
            "declared_apis",
            "api_blueprint",
            "ApiError",
            "api_validate",
            "json_object",
            "string_field",
            "API_ERRORS_SCHEMA",
            "ID_SCHEMA",
            "USERNAME_SCHEMA",
            "USER_REF_SCHEMA",
            "error_responses",
            "json_response",
            "schema_ref",
            "idempotency_header_parameter",
            "string_list_field",
            "require_scope",
            "current_token",
            "api_user",
            "token_user",
            "TokenGrant",
            "seal_grant",
            "verify_token",
            "parse_scopes",
        ],
    ),
    (
        "Background work, mail and webhooks",
        [
            "enqueue",
            "send_mail",
            "send_message",
            "send_webhook",
            "deliveries",
            "delivery_page",
            "redeliver",
            "Delivery",
            "DELIVERY_SCHEMA",
            "webhook_signature_key",
            "verify_request",
            "WebhookError",
        ],
    ),
    (
        "Between services",
        [
            "internal_request",
            "ServiceUnreachable",
            "delegated_token",
            "call_service_api",
            "DELEGATION_LIFETIME",
            "internal_only",
            "internal_only_credential",
            "from_internal_network",
            "client_address",
            "is_loopback",
            "derive_key",
        ],
    ),
    (
        "Config",
        [
            "load_config",
            "Config",
            "ConfigError",
            "ConfigProblem",
            "Section",
            "Key",
            "Text",
            "Integer",
            "Boolean",
            "Choice",
            "List",
            "Email",
            "Url",
            "Address",
            "Networks",
            "PathValue",
            "Secret",
            "FernetKey",
            "SigningKey",
        ],
    ),
    ("The host", ["create_app", "SrhtState", "PluginHost", "PluginError", "hookimpl"]),
]

#: Objects whose own docstring is not theirs (context-local proxies, pluggy's marker).
_DESCRIBED = {
    "current_user": "The signed-in user of this request (the service's mirrored user "
    "model), or a falsy anonymous stand-in. A proxy: compare with "
    "`if current_user:`, never `is None`. Found without a query while its worker "
    "keeps it in memory, and never past a change to its row: see `api_user`.",
    "db_session": "The SQLAlchemy session of the current app context, bound to the "
    "service's database, made when first used and closed when the context ends. During a GET, "
    "HEAD or OPTIONS request it reads only (see `writes`).",
    "API_ERRORS_SCHEMA": 'The JSON schema of an API error\'s body (`{"errors": '
    '[{"field": ..., "reason": ...}]}`, what `ApiError` '
    "answers), for a service's OpenAPI document: keep it at "
    "`components/schemas/Errors`, where `error_responses` refers to it.",
    "ID_SCHEMA": "The JSON schema of an object's id in an API path: a positive 32-bit "
    "integer, as every service's database keys are.",
    "USERNAME_SCHEMA": "The JSON schema of a username in an API path, with or without "
    "its leading `~` (`Api.user_parameters` declares `owner` and `username` with it).",
    "USER_REF_SCHEMA": "The JSON schema of a user inside an object (an owner, an author): "
    "`{username, canonical_name}`, the same in every service's API.",
    "LOGIN_LIFETIME": "Seconds a login cookie is valid from sign-in (30 days); meta's "
    "record of the session expires with it.",
    "hookimpl": "The decorator that marks a function as a hook implementation (`@hookimpl`).",
}


def helpers_markdown() -> list[str]:
    """The section of the reference on what services call from ``srht_core``."""
    import srht_core

    listed = [name for _topic, names in HELPERS for name in names]
    missing = sorted(set(srht_core.__all__) - set(listed) - set(service.__all__) - {"__version__"})
    if missing:
        raise RuntimeError(
            f"srht_core exports {', '.join(missing)} without a place in srht_core.docs.HELPERS"
        )
    out = ["## What services call", "", "Everything else `srht_core` exports, by topic.", ""]
    for topic, names in HELPERS:
        out += [f"### {topic}", ""]
        for name in names:
            obj = getattr(srht_core, name)
            text = _DESCRIBED.get(name) or _rst_to_md(_docstring(obj))
            title = name
            if inspect.isfunction(obj):
                title += (
                    "("
                    + ", ".join(_parameter(p) for p in inspect.signature(obj).parameters.values())
                    + ")"
                )
            out += [f"#### `{title}`", "", text, ""]
    return out


def _parameter(parameter: inspect.Parameter) -> str:
    if parameter.kind is parameter.VAR_POSITIONAL:
        return "*" + parameter.name
    if parameter.kind is parameter.VAR_KEYWORD:
        return "**" + parameter.name
    return parameter.name


def builtin_sections(plugins: PluginHost) -> list[Section]:
    """The core's sections and those of the built-in services, in order."""
    schemas, _problems = plugins.config_schemas()
    builtin = {r.name for r in plugins.services() if r.distribution == BUILTIN_DISTRIBUTION}
    names = [s.name for s in CORE_SECTIONS] + sorted(
        n for n in schemas if n.split("::")[0] in builtin
    )
    return [schemas[n] for n in names]


def _comment(text: str) -> list[str]:
    return ["# " + line if line else "#" for line in textwrap.wrap(text, 76)]


def example_config(plugins: PluginHost) -> str:
    """``config.example.ini``: every key of the core and of every built-in
    service, with its description, type and default."""
    out = [
        "# srht configuration: one file for every service and every host.",
        "# Generated from the schemas by `srht dev docs`; `srht config check` checks",
        "# a config against the same schemas. Secrets: `srht keygen`.",
        "",
    ]
    for section in builtin_sections(plugins):
        out += _comment(section.description) if section.description else []
        out.append(f"[{section.name}]")
        for key in section.keys:
            facts = [key.type.label]
            if key.required:
                facts.append("required")
            if key.secret:
                facts.append("secret")
            if key.default not in (None, ""):
                facts.append(f"default: {key.type.format(key.default)}")
            out += _comment(f"{key.description} ({'; '.join(facts)})")
            example = key.example if key.example is not None else key.type.format(key.default)
            if key.secret and example.startswith("generate"):
                out.append(f"#{key.name} = <{example}>")
            else:
                out.append(f"{key.name} = {example}".rstrip())
        out.append("")
    return "\n".join(out)


def config_reference(plugins: PluginHost) -> str:
    """``docs/config.md``: the config reference."""
    out = [
        "# Config reference",
        "",
        "<!-- Generated from the schemas by `srht dev docs`; do not edit. -->",
        "",
        "One INI file, looked up as `--config`, `$SRHT_CONFIG`, `./config.ini`, "
        "`/etc/srht/config.ini`. `srht config check` reports every problem at once.",
        "",
    ]
    for section in builtin_sections(plugins):
        out += [
            f"## `[{section.name}]`",
            "",
            section.description,
            "",
            "| key | type | default | required | secret | description |",
            "|---|---|---|---|---|---|",
        ]
        for key in section.keys:
            default = key.type.format(key.default) if key.default not in (None, "") else ""
            out.append(
                f"| `{key.name}` | {key.type.label} | {default} | "
                f"{'yes' if key.required else ''} | {'yes' if key.secret else ''} | "
                f"{key.description} |"
            )
        out.append("")
    return "\n".join(out)


def generated_files(plugins: PluginHost) -> dict[str, str]:
    return {
        "docs/plugin-api.md": plugin_api_markdown(),
        "docs/config.md": config_reference(plugins),
        "config.example.ini": example_config(plugins),
    }
