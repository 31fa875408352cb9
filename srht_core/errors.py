"""Errors as users see them: JSON under ``/api``, a page elsewhere.

API errors have one shape everywhere: ``{"errors": [{"field": ..., "reason":
...}]}``, ``field`` present when one input is to blame. Raise
:class:`ApiError` (or abort with a status) from an API view; unexpected
exceptions are logged with their traceback and shown as a plain 500.

An outage is not a bug: while the database cannot be reached (it is down,
restarting, or dropped the connection; see
:func:`srht_core.db.database_unavailable`), a request answers 503 with
``Retry-After`` instead of a 500, as JSON under ``/api`` and elsewhere as a
plain page that needs nothing from the database (the usual layout asks it
who is signed in).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, SecurityError

from .db import database_unavailable, error_summary
from .text import InvalidText

__all__ = [
    "API_ERRORS_SCHEMA",
    "RETRY_AFTER",
    "ApiError",
    "Problem",
    "ServiceUnreachable",
    "error_responses",
    "json_response",
    "schema_ref",
    "unavailable",
    "wants_json",
]

log = logging.getLogger("srht.errors")


class ServiceUnreachable(OSError):
    """Another service of the site could not be reached, or answered an
    error, on its internal API."""

    def __init__(self, service: str, url: str, reason: str, status: int | None = None):
        self.service, self.url, self.reason = service, url, reason
        #: The HTTP status the service answered with, if it answered at all.
        self.status = status
        super().__init__(f"{service} at {url}: {reason}")


class ApiError(Exception):
    """An error answered as JSON: ``raise ApiError(400, "must not be empty",
    field="name")``. Several problems: pass ``errors=[(field, reason), ...]``."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        *,
        field: str | None = None,
        errors: list[tuple[str | None, str]] | None = None,
    ):
        self.status = status
        self.errors = errors if errors is not None else [(field, reason)]
        super().__init__(reason or "; ".join(r for _f, r in self.errors))

    @property
    def reason(self) -> str:
        return "; ".join(r for _f, r in self.errors)

    def body(self) -> dict[str, Any]:
        return {
            "errors": [{"field": f, "reason": r} if f else {"reason": r} for f, r in self.errors]
        }


class Problem(ApiError):
    """Input that a service's operation cannot accept, wherever it came from:
    which field, why, and the status an API answers (400; 404 for something
    named that does not exist; 409 for a name already taken).

    Operations shared by pages and the API raise it; the API answers it as
    an :class:`ApiError`, and a page shows it next to the field of its form
    (:meth:`srht_core.Form.show`)::

        raise Problem("name", "You have a tracker named bugs already.", 409)

    .. versionadded:: 0.1
    """

    def __init__(self, field: str | None, reason: str, status: int = 400):
        super().__init__(status, reason, field=field)
        self.field = field


# -- the same, for a service's OpenAPI document --------------------------------------

#: The JSON schema of an API error's body (:meth:`ApiError.body`). A service's
#: OpenAPI document keeps it at ``components/schemas/Errors``, where
#: :func:`error_responses` refers to it.
API_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        }
    },
}


def schema_ref(name: str) -> dict[str, Any]:
    """``{"$ref": "#/components/schemas/<name>"}``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response answering JSON of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(reasons: Mapping[int, str], *statuses: int) -> dict[str, Any]:
    """OpenAPI ``responses`` entries for ``statuses``, each an API error
    (``#/components/schemas/Errors``, :data:`API_ERRORS_SCHEMA`) described
    by ``reasons[status]``."""
    return {
        str(status): json_response(schema_ref("Errors"), reasons[status]) for status in statuses
    }


def wants_json() -> bool:
    """Whether the current request should get JSON errors: the REST API's
    and the internal API's."""
    path = request.path
    return path in ("/api", "/internal") or path.startswith(("/api/", "/internal/"))


#: Seconds a client is asked to wait (``Retry-After``) before trying again
#: while the database is unavailable.
RETRY_AFTER = 5

UNAVAILABLE = (
    "This service is temporarily unavailable: its database cannot be reached "
    "right now. Try again in a few seconds."
)


def unavailable(reason: str = UNAVAILABLE) -> Response:
    """The 503 answer to a request that cannot be served for now: JSON
    under ``/api``, a plain page elsewhere, with ``Retry-After``.

    .. versionadded:: 0.1
    """
    from flask import current_app

    if wants_json():
        response = current_app.response_class(
            current_app.json.dumps({"errors": [{"reason": reason}]}),
            status=503,
            content_type="application/json",
        )
    else:
        # Rendered without the context processors: they ask the database
        # who is signed in.
        page = current_app.jinja_env.get_template("srht/unavailable.html").render(reason=reason)
        response = current_app.response_class(
            page, status=503, content_type="text/html; charset=utf-8"
        )
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _describe(error: HTTPException) -> str:
    return error.description or error.name


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        if wants_json():
            return error.body(), error.status
        # A page whose view let it through: the error page, in its words.
        page = HTTPException(error.reason)
        page.code = error.status
        return http_error(page)

    @app.errorhandler(InvalidText)
    def invalid_text(error: InvalidText) -> Any:
        if wants_json():
            return ApiError(400, error.reason, field=error.field).body(), 400
        return http_error(BadRequest(f"Nothing was saved: {error.field} {error.reason}."))

    @app.errorhandler(SecurityError)
    def untrusted_host(error: SecurityError) -> Any:
        # No page and no URL can be built for a host the app does not answer
        # to (url_for has nothing to build from), so the answer is plain.
        return Response(
            "400 Bad Request: this service does not answer to that host name.\n",
            400,
            mimetype="text/plain",
        )

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        error.description = (
            "This form expired or came from another site, so it was not "
            "accepted and nothing was changed. Go back, reload the page "
            f"and submit it again. ({error.description})"
        )
        return http_error(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        original = getattr(error, "original_exception", None)
        if original is not None and database_unavailable(original):
            # raised where Flask wraps it as a 500 (an after_request function)
            return unexpected(original)
        status = error.code or 500
        if wants_json():
            response = error.get_response()
            response.data = app.json.dumps({"errors": [{"reason": _describe(error)}]})
            response.content_type = "application/json"
            return response
        response = error.get_response()
        response.data = render_template("srht/error.html", error=error, status=status)
        response.content_type = "text/html; charset=utf-8"
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return http_error(error)
        if database_unavailable(error):
            log.warning(
                "database unavailable on %s %s: %s",
                request.method,
                request.path,
                error_summary(error),
            )
            return unavailable()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return http_error(
            InternalServerError("Something went wrong on our side; it has been logged.")
        )
