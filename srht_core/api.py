"""APIs: one declaration per operation, and everything follows from it.

A service's REST API is an :class:`Api`. Each view is declared once with
:meth:`Api.operation`, which at the same time

- registers the route under ``/api`` (CSRF-exempt, errors in JSON);
- checks the bearer token before the view runs: the operation's scope
  (``<service>/<scope>:RO``, ``:RW`` to write), 401 without a token where
  one is needed, 403 without the scope;
- reads and validates the request body against the operation's JSON
  schema (types, lengths, patterns, required and unknown keys), answering
  one 400 that names every field at fault, so a view only ever sees a
  valid body;
- checks the query string against the declared parameters (an unknown or
  malformed parameter is a 400 naming it);
- and writes the operation's entry in the service's OpenAPI 3.1 document,
  served at ``/api/openapi.json``, from the same schemas.

Every list is paged the same way: ``?cursor=`` and ``?limit=`` (1-100,
default 25) in, ``{"results": [...], "next": cursor-or-null}`` out (see
:func:`srht_core.cursor_paginate` and :meth:`srht_core.CursorPage.json`).

Example::

    api = Api("todo", __name__, title="todo API", description="Trackers and tickets.")
    api.parameter("owner", "The owner's username.", {"type": "string", "maxLength": 64})
    api.schema("Tracker", {"type": "object", "properties": {...}})
    api.schema("TrackerCreate", body_schema({"name": {"type": "string"}}, required=["name"]))

    @api.operation("post", "/trackers", "Create a tracker", scope="trackers", write=True,
                   status=201, body="TrackerCreate", response="Tracker")
    def create_tracker(body):
        tracker = trackers.create(viewer(), body["name"])
        return tracker.to_dict()
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, make_response, request

from .errors import API_ERRORS_SCHEMA, ApiError, error_responses, json_response, schema_ref
from .globals import current_service
from .jsonbody import json_body
from .text import MAX_URL
from .tokens import api_user, current_token
from .webhooks import DELIVERY_SCHEMA

__all__ = [
    "ID_SCHEMA",
    "USERNAME_SCHEMA",
    "USER_REF_SCHEMA",
    "Api",
    "Operation",
    "api_blueprint",
    "body_schema",
    "declared_apis",
]

#: What each error status means, unless a service says better.
DEFAULT_REASONS: dict[int, str] = {
    400: "The request is malformed; each error names the field to blame.",
    401: "No token where one is needed, or a token that is not valid (malformed, "
    "expired or revoked).",
    403: "The token lacks the scope, or its user may not do this.",
    404: "No such object, or one the caller may not see.",
    409: "The change conflicts with the object as it is (a name already taken, say).",
}

#: An object's id in a path: a positive 32-bit integer (what every
#: service's database keys are).
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
#: A username in a path, with or without its leading ``~``.
USERNAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^~?[a-z_][a-z0-9_-]*$",
    "maxLength": 64,
}
#: How a user appears inside an object (its owner, an author): the same
#: in every service.
USER_REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["username", "canonical_name"],
    "properties": {
        "username": {"type": "string"},
        "canonical_name": {"type": "string", "description": "~username"},
    },
}

#: The query parameters of every paged list.
PAGE_QUERY: dict[str, dict[str, Any]] = {
    "cursor": {
        "description": "The `next` of the previous page (absent or empty: the first page).",
        "schema": {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]*$"},
    },
    "limit": {
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
    },
}


def api_blueprint(name: str, import_name: str, url_prefix: str = "/api") -> Blueprint:
    """A bare blueprint for a token-authenticated API: exempt from CSRF (it
    must not accept cookie authentication), errors answered as JSON, every
    write committed with its answer and retryable with an ``Idempotency-Key``
    (see :func:`idempotency_header_parameter`). :class:`Api` builds one;
    use this only for routes outside the declaration (a git smart-HTTP
    endpoint, say)."""
    bp = Blueprint(name, import_name, url_prefix=url_prefix)
    bp.srht_api = True  # type: ignore[attr-defined]
    return bp


def declared_apis(app: Flask) -> list[Api]:
    """The :class:`Api` declarations whose blueprints ``app`` registered (the
    suite checks every service's operations through them)."""
    found = (getattr(bp, "srht_declaration", None) for bp in app.blueprints.values())
    return [api for api in found if isinstance(api, Api)]


def body_schema(
    properties: dict[str, Any], *, required: Iterable[str] = (), description: str = ""
) -> dict[str, Any]:
    """The JSON schema of a request body: an object with ``properties``,
    ``required`` keys, and no others (an unknown key is an error, so a
    misspelt field is reported rather than ignored)."""
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


@dataclass
class Operation:
    """One declared operation of an :class:`Api` (what the OpenAPI entry and
    the checks are made from)."""

    method: str
    path: str
    summary: str
    view: Callable[..., Any]
    scope: str
    write: bool
    anonymous: bool
    status: int
    body: str | dict[str, Any] | None
    response: str | dict[str, Any] | None
    paged: bool
    query: tuple[str, ...]
    errors: dict[int, str] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    media_type: str = "application/json"

    @property
    def name(self) -> str:
        return self.view.__name__

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def query_parameters(self) -> tuple[str, ...]:
        return self.query + (tuple(PAGE_QUERY) if self.paged else ())


class Api:
    """A service's REST API: its blueprint, its declared operations, and
    the OpenAPI document made from them.

    :param service: the service's name (the prefix of its scopes).
    :param import_name: the module declaring it (``__name__``).
    :param title: the document's title (``"todo API"``).
    :param description: what the API is for, how to authenticate (Markdown).
    :param reasons: what error statuses mean in this API, over
        :data:`DEFAULT_REASONS`.

    Declare with its methods: ``schema(name, schema)`` for the document's
    components; ``parameter(name, description, schema)`` for a path or
    query parameter, and the ones every service shares,
    ``user_parameters(owns)`` (``owner``, ``username``) and
    ``webhook_parameters()`` (``webhook_id``, ``delivery_id``), with
    ``webhook_schemas(events)`` for the webhook endpoints' bodies; then
    ``@api.operation(method, path, summary, scope=...)`` above each view.
    """

    def __init__(
        self,
        service: str,
        import_name: str,
        *,
        title: str,
        description: str,
        reasons: dict[int, str] | None = None,
    ):
        self.service = service
        self.title = title
        self.description = description
        self.reasons = {**DEFAULT_REASONS, **(reasons or {})}
        self.blueprint = api_blueprint(f"{service}_api", import_name)
        #: Lets :func:`declared_apis` find the declaration behind the blueprint.
        self.blueprint.srht_declaration = self  # type: ignore[attr-defined]
        self.operations: list[Operation] = []
        self.schemas: dict[str, Any] = {"Errors": API_ERRORS_SCHEMA}
        self.parameters: dict[str, dict[str, Any]] = {}
        self._validators: dict[int, Any] = {}
        self.blueprint.add_url_rule("/openapi.json", "openapi", self._serve_document)

    # -- declaring -----------------------------------------------------------

    def schema(self, name: str, schema: dict[str, Any]) -> str:
        """Add ``schema`` to the document's components; returns ``name``."""
        if name in self.schemas:
            raise ValueError(f"schema {name!r} is declared twice")
        self.schemas[name] = schema
        return name

    def webhook_schemas(self, events: list[str], *, subscribers_choose: bool = True) -> None:
        """Declare the schemas of a service's webhook endpoints, the same in
        every service: ``Webhook`` (a subscription: id, URL, events,
        created), ``WebhookCreate`` (its URL, and the events it wants when
        ``subscribers_choose``; without, a subscription gets every event of
        ``events``) and ``Delivery`` (an entry of the delivery log, see
        :data:`DELIVERY_SCHEMA`).

        .. versionadded:: 0.1
        """
        names = {"type": "string", "enum": list(events)}
        self.schema(
            "Webhook",
            {
                "type": "object",
                "required": ["id", "url", "events", "created"],
                "properties": {
                    "id": {"type": "integer"},
                    "url": {"type": "string"},
                    "events": {"type": "array", "items": names},
                    "created": {"type": "string", "format": "date-time"},
                },
            },
        )
        fields: dict[str, Any] = {
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://[^/\\s]+",
                "maxLength": MAX_URL,
                "description": "An http:// or https:// URL.",
            }
        }
        if subscribers_choose:
            fields["events"] = {"type": "array", "minItems": 1, "uniqueItems": True, "items": names}
        self.schema("WebhookCreate", body_schema(fields, required=list(fields)))
        self.schema("Delivery", DELIVERY_SCHEMA)

    def parameter(
        self, name: str, description: str, schema: dict[str, Any], *, example: Any = None
    ) -> None:
        """Describe a path or query parameter used by operations (path ones
        by ``{name}`` in a path, query ones by an operation's ``query``). An
        integer schema makes the path part match digits only."""
        entry: dict[str, Any] = {"description": description, "schema": schema}
        if example is not None:
            entry["example"] = example
        self.parameters[name] = entry

    def user_parameters(self, owns: str) -> None:
        """Declare the path parameters every service names users by:
        ``owner`` (the username of the owner of ``owns``, a leading ``~``
        allowed) and ``username`` (any user, the same way).

        .. versionadded:: 0.1
        """
        self.parameter(
            "owner",
            f"The {owns} owner's username (a leading ~ is allowed).",
            USERNAME_SCHEMA,
            example="alice",
        )
        self.parameter(
            "username", "A username (a leading ~ is allowed).", USERNAME_SCHEMA, example="alice"
        )

    def webhook_parameters(self) -> None:
        """Declare the path parameters of the webhook endpoints every
        service has: ``webhook_id`` and ``delivery_id``.

        .. versionadded:: 0.1
        """
        self.parameter("webhook_id", "The webhook's id.", ID_SCHEMA, example=1)
        self.parameter("delivery_id", "The delivery's id.", ID_SCHEMA, example=1)

    def operation(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        scope: str,
        write: bool = False,
        anonymous: bool | None = None,
        status: int | None = None,
        body: str | dict[str, Any] | None = None,
        response: str | dict[str, Any] | None = None,
        paged: bool = False,
        query: Iterable[str] = (),
        errors: dict[int, str] | None = None,
        headers: dict[str, Any] | None = None,
        media_type: str = "application/json",
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare and register the view below it.

        :param method: ``get``, ``post``, ``put``, ``patch`` or ``delete``.
        :param path: under ``/api``, in OpenAPI syntax (``/trackers/{owner}``).
        :param summary: one line for the document.
        :param scope: the scope's resource (``trackers`` in ``todo/trackers``).
        :param write: needs ``:RW`` and a token; otherwise ``:RO``.
        :param anonymous: whether a read works without a token (what the
            caller may see anonymously); default: reads yes, writes never.
        :param status: the success status (default 201 for ``post``, 204
            for ``delete``, 200 otherwise). A view returning ``None``
            answers it with an empty body.
        :param body: the request body's schema (a name given to
            :meth:`schema`, or a schema), validated before the view runs;
            the view gets it as its ``body`` argument.
        :param response: the schema of what the view returns (of one item,
            for a paged list).
        :param paged: a list paged by cursor: the view returns
            ``page.json(...)``, documented as ``{"results", "next"}``.
        :param query: names of query parameters (see :meth:`parameter`);
            the view gets their checked values as its ``query`` argument.
        :param errors: statuses besides the derived ones (400, 401, 403,
            and 404 with path parameters), with what they mean here.
        :param headers: response headers the document lists for success.
        :param media_type: what a success answers, when not JSON (an mbox:
            ``application/mbox``); the view returns a ``Response`` of it,
            and ``response`` is its schema (``{"type": "string"}``).

        .. versionchanged:: 0.1
           ``media_type``, for downloads (lists' patchset mbox).
        """
        method = method.lower()
        if method not in ("get", "post", "put", "patch", "delete"):
            raise ValueError(f"{method!r} is not an HTTP method an API declares")
        if status is None:
            status = {"post": 201, "delete": 204}.get(method, 200)

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            op = Operation(
                method=method,
                path=path,
                summary=summary,
                view=view,
                scope=scope,
                write=write,
                anonymous=(not write) if anonymous is None else (anonymous and not write),
                status=status,
                body=body,
                response=response,
                paged=paged,
                query=tuple(query),
                errors=dict(errors or {}),
                headers=dict(headers or {}),
                media_type=media_type,
            )
            for name in (*op.path_parameters, *op.query):
                if name not in self.parameters:
                    raise ValueError(f"{view.__name__}: parameter {name!r} is not described")
            self.operations.append(op)
            self.blueprint.add_url_rule(
                self._rule(path), view.__name__, self._handler(op), methods=[method.upper()]
            )
            return view

        return decorate

    # -- answering -----------------------------------------------------------

    def _rule(self, path: str) -> str:
        def converter(match: re.Match[str]) -> str:
            name = match[1]
            schema = self.parameters[name]["schema"]
            return f"<int:{name}>" if schema.get("type") == "integer" else f"<{name}>"

        return re.sub(r"{(\w+)}", converter, path)

    def _handler(self, op: Operation) -> Callable[..., Any]:
        wants = inspect.signature(op.view).parameters
        body_schema_ = self._resolve(op.body) if op.body is not None else None

        def handle(**path: Any) -> Any:
            self._authorize(op)
            extra: dict[str, Any] = {}
            query = self._check_query(op)
            if "query" in wants:
                extra["query"] = query
            if body_schema_ is not None:
                value = json_body()
                self._validate(body_schema_, value)
                extra["body"] = value
            result = op.view(**path, **extra)
            if result is None:
                return Response(status=op.status)
            response = make_response(result)
            if response.status_code == 200 and op.status != 200:
                response.status_code = op.status
            return response

        handle.__name__ = op.view.__name__
        handle.__doc__ = op.view.__doc__
        return handle

    def _authorize(self, op: Operation) -> None:
        grant = current_token()
        scope = f"{self.service}/{op.scope}"
        access = "RW" if op.write else "RO"
        if grant is None:
            if not op.anonymous:
                raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
            return
        if not grant.allows(scope, write=op.write):
            raise ApiError(403, f"the token lacks the scope {scope}:{access}")
        api_user()

    def _check_query(self, op: Operation) -> dict[str, Any]:
        allowed = op.query_parameters
        errors: list[tuple[str | None, str]] = []
        values: dict[str, Any] = {}
        for name in request.args:
            if name not in allowed:
                errors.append((name, "is not a query parameter of this operation"))
        for name in allowed:
            raw = request.args.get(name)
            spec = PAGE_QUERY[name] if name in PAGE_QUERY else self.parameters[name]
            schema = spec["schema"]
            if raw is None or (raw == "" and name == "cursor"):
                values[name] = schema.get("default")
                continue
            value: Any = raw
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?\d{1,18}", raw):
                    errors.append((name, "must be a whole number"))
                    continue
                value = int(raw)
            reasons = [reason for _where, reason in self._problems(schema, value)]
            if reasons:
                errors.append((name, reasons[0]))
                continue
            values[name] = value
        if errors:
            raise ApiError(400, errors=errors)
        return values

    def _resolve(self, schema: str | dict[str, Any]) -> dict[str, Any]:
        """A schema that validates on its own: the operation's, with this
        API's components beside it for its references."""
        root = schema_ref(schema) if isinstance(schema, str) else dict(schema)
        if isinstance(schema, str) and schema not in self.schemas:
            raise ValueError(f"schema {schema!r} is not declared")
        return {**root, "components": {"schemas": self.schemas}}

    def _problems(self, schema: dict[str, Any], value: Any) -> list[tuple[str, str]]:
        # Schemas are built once, when operations are declared: a validator
        # per schema object is made on first use and kept.
        validator = self._validators.get(id(schema))
        if validator is None:
            validator = self._validators[id(schema)] = _validator(schema)
        return _problems(validator, value)

    def _validate(self, schema: dict[str, Any], value: Any) -> None:
        problems = self._problems(schema, value)
        if problems:
            raise ApiError(400, errors=list(problems))

    # -- the document ------------------------------------------------------

    def _serve_document(self) -> Any:
        return self.openapi_document(current_service().origin)

    def openapi_document(self, server: str) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared operation."""
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault("/api" + op.path, {})[op.method] = self._describe(op)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": "1", "description": self.description},
            "servers": [{"url": server}],
            "paths": paths,
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {
                    "token": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A personal access token or an OAuth2 access token "
                        f"issued by meta, with {self.service}/... scopes.",
                    }
                },
            },
        }

    def _describe(self, op: Operation) -> dict[str, Any]:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, **self.parameters[name]}
            for name in op.path_parameters
        ]
        for name in op.query_parameters:
            spec = PAGE_QUERY[name] if name in PAGE_QUERY else self.parameters[name]
            parameters.append({"name": name, "in": "query", "required": False, **spec})
        if op.response is None:
            success: dict[str, Any] = {"description": "Done."}
        else:
            schema = schema_ref(op.response) if isinstance(op.response, str) else op.response
            if op.paged:
                schema = {
                    "type": "object",
                    "required": ["results", "next"],
                    "properties": {
                        "results": {"type": "array", "items": schema},
                        "next": {
                            "type": ["string", "null"],
                            "description": "Pass as `?cursor=` for the next page; null on "
                            "the last.",
                        },
                    },
                }
            success = json_response(schema, "OK.")
            if op.media_type != "application/json":
                success = {"description": "OK.", "content": {op.media_type: {"schema": schema}}}
        if op.headers:
            success["headers"] = op.headers
        statuses = [400, 401, 403]
        if op.path_parameters:
            statuses.append(404)
        statuses += sorted(set(op.errors) - set(statuses))
        reasons = {**self.reasons, **op.errors}
        scope = f"{self.service}/{op.scope}:{'RW' if op.write else 'RO'}"
        doc = inspect.cleandoc(op.view.__doc__ or "")
        out: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "description": (doc + "\n\n" if doc else "") + f"Scope: `{scope}`.",
            "tags": [op.scope],
            "parameters": parameters,
            "responses": {str(op.status): success, **error_responses(reasons, *statuses)},
            "security": [{"token": [scope]}] + ([{}] if op.anonymous else []),
        }
        if op.body is not None:
            body = schema_ref(op.body) if isinstance(op.body, str) else op.body
            out["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        return out


# -- turning schema errors into sentences --------------------------------------------


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


_ARTICLE = {"array": "a list", "object": "an object", "integer": "a whole number"}


def _kind(name: str) -> str:
    return _ARTICLE.get(name, f"a {name}")


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(validator: Any, value: Any) -> list[tuple[str, str]]:
    """``(field, reason)`` for each way ``value`` breaks the schema, sorted."""
    out: set[tuple[str, str]] = set()
    for error in validator.iter_errors(value):
        where = _where(error.absolute_path)
        check, wanted, schema = error.validator, error.validator_value, error.schema
        if check == "required":
            for key in wanted:
                if isinstance(error.instance, dict) and key not in error.instance:
                    out.add((f"{where}.{key}" if where else key, "is required"))
            continue
        if check == "additionalProperties" and isinstance(error.instance, dict):
            known = set(schema.get("properties", {}))
            for key in error.instance:
                if key not in known:
                    field_ = f"{where}.{key}" if where else key
                    out.add((field_, f"is not a field here (known: {', '.join(sorted(known))})"))
            continue
        out.add((where or "body", _reason(check, wanted, schema, error.message)))
    return sorted(out)


def _reason(check: str, wanted: Any, schema: dict[str, Any], message: str) -> str:
    if check == "type":
        kinds = wanted if isinstance(wanted, list) else [wanted]
        return "must be " + " or ".join(_kind(k) for k in kinds)
    if check == "maxLength":
        return f"must be at most {wanted} characters long"
    if check == "minLength":
        return "must not be empty" if wanted == 1 else f"must be at least {wanted} characters long"
    if check == "enum":
        return "must be one of " + ", ".join(str(v) for v in wanted)
    if check == "pattern":
        hint = schema.get("description")
        return f"is not valid: {hint}" if hint else f"must match {wanted}"
    if check == "maximum":
        return f"must be at most {wanted}"
    if check == "minimum":
        return f"must be at least {wanted}"
    if check == "maxItems":
        return f"must have at most {wanted} items"
    if check == "minItems":
        return "must not be empty" if wanted == 1 else f"must have at least {wanted} items"
    if check == "uniqueItems":
        return "must not repeat an item"
    return message
