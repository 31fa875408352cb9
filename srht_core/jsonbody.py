"""Reading a JSON request body: the value itself, checked once for every
service, and its fields, each problem an :class:`~srht_core.ApiError` 400
naming the field.

:func:`json_body` is where JSON enters the site: it takes
``application/json`` and ``application/*+json`` in any encoding JSON allows
(UTF-8, -16 or -32), refuses bodies that nest too deeply, and refuses every
string that no column can store (NUL, lone surrogates; see
:mod:`srht_core.text`), naming each field. Operations declared with
:class:`srht_core.Api` get their body through it before the view runs.
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, request

from .errors import ApiError
from .text import json_problems

__all__ = ["json_body", "json_object", "string_field", "string_list_field"]

#: What to tell a client that sent something else.
SEND_JSON = "the body must be JSON (Content-Type: application/json)"


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def json_body() -> Any:
    """The request's body parsed as JSON, every string in it storable text.

    Parsed once per request (later calls return the same value).

    :raises ApiError: 400 when the body is not JSON (or not sent as JSON),
        nests too deeply, or holds text no column can store (one error per
        field).
    """
    if "srht_json_body" in g:
        return g.srht_json_body
    if not _is_json(request.mimetype):
        raise ApiError(400, SEND_JSON)
    raw = request.get_data(cache=True)
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "the body nests too deeply") from None
    except ValueError as error:  # also UnicodeDecodeError
        raise ApiError(400, f"the body is not valid JSON ({error})") from None
    problems = json_problems(value)
    if problems:
        raise ApiError(400, errors=list(problems))
    g.srht_json_body = value
    return value


def json_object() -> dict[str, Any]:
    """The request's JSON body (see :func:`json_body`), which must be an object.

    :raises ApiError: 400 when the body is missing, not JSON, or not an object.
    """
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object (Content-Type: application/json)")
    return data


def string_field(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """``data[key]`` if it is a string; ``None`` when absent (or ``null``).

    :raises ApiError: 400 naming ``key`` when it is not a string, or absent
        and ``required``.
    """
    value = data.get(key)
    if value is None:
        if required:
            raise ApiError(400, "is required", field=key)
        return None
    if not isinstance(value, str):
        raise ApiError(400, "must be a string", field=key)
    return value


def string_list_field(data: dict[str, Any], key: str) -> list[str] | None:
    """``data[key]`` if it is a list of strings; ``None`` when absent.

    :raises ApiError: 400 naming ``key`` otherwise.
    """
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, "must be a list of strings", field=key)
    return value
