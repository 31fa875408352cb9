"""Reading a JSON request body in an API view: the object itself and its
fields, each problem an :class:`~srht_core.ApiError` 400 naming the field.

NUL characters never get this far: the core refuses them in every JSON
body (``app.py``), so no field check repeats that.
"""

from __future__ import annotations

from typing import Any

from flask import request

from .errors import ApiError

__all__ = ["json_object", "string_field", "string_list_field"]


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object.

    :raises ApiError: 400 when the body is missing, not JSON, or not an object.
    """
    data = request.get_json(silent=True)
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
