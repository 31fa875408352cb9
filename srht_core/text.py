"""Text where it enters: one check for what people and programs send.

No database column stores a NUL character (PostgreSQL refuses it) or a
lone surrogate (it is not Unicode and cannot be encoded), and a
``String(n)`` column holds at most ``n`` characters. A value that breaks
one of these can only be a mistake or an attack, and must be a clear 400
naming the field, never a 500 and never stored. The checks run where data
enters, once for every service:

- the URL (path and query string) of every request: :func:`refuse_bad_url`;
- every string of a JSON body read through the core
  (:func:`srht_core.json_object`, the API declaration): :func:`json_problems`,
  which also bounds how deeply the body may nest;
- every text field of a :class:`srht_core.Form`;
- and, for whatever arrives another way (mail, a push, a command), every
  string written to a ``String`` or ``Text`` column when the session
  flushes: :func:`check_rows` raises :class:`InvalidText`, which the core
  answers as a 400 naming the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import abort, request

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_URL",
    "InvalidText",
    "check_rows",
    "json_problems",
    "refuse_bad_url",
    "text_problem",
    "url_problem",
]

#: How deeply a JSON body may nest (objects and lists). Nothing any API of
#: the site takes nests more than a few levels.
MAX_JSON_DEPTH = 32


class InvalidText(ValueError):
    """A value that no column can store: ``field`` names where it was."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def text_problem(value: str, max_length: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None`` when it can."""
    if "\x00" in value:
        return "NUL characters are not accepted"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it has a lone surrogate)"
    if max_length is not None and len(value) > max_length:
        return f"is longer than {max_length} characters"
    return None


#: The longest URL a service stores (a webhook's, say).
MAX_URL = 2048


def url_problem(url: str, *, max_length: int = MAX_URL) -> str | None:
    """Why ``url`` is not an ``http://`` or ``https://`` URL with a host
    that a service can call (a webhook's, say), or ``None`` when it is.
    Text :func:`urllib.parse.urlsplit` cannot split (a fullwidth ``＃`` in
    the host) is a problem like any other, not an exception."""
    from urllib.parse import urlsplit

    reason = text_problem(url, max_length)
    if reason is not None:
        return reason
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return "is not a URL that can be called"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    return None


def refuse_bad_url() -> None:
    """Answer 400 to a request whose URL carries a NUL character."""
    path = request.full_path
    if "\x00" in path or "%00" in path:
        abort(400, "NUL characters are not accepted in URLs.")


def json_problems(data: Any) -> list[tuple[str, str]]:
    """``(field, reason)`` for every string of a parsed JSON value that is
    not storable text (keys included), and for nesting deeper than
    :data:`MAX_JSON_DEPTH`. Fields are written as ``files[0].content``."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, str):
            reason = text_problem(value)
            if reason is not None:
                problems.append((where or "body", reason))
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            problems.append((where or "body", f"nests deeper than {MAX_JSON_DEPTH} levels"))
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                reason = text_problem(key)
                if reason is not None:
                    problems.append((where or "body", f"has a key that {reason}"))
                    continue
                stack.append((f"{where}.{key}" if where else key, item, depth + 1))
        else:
            for index, item in enumerate(value):
                stack.append((f"{where}[{index}]", item, depth + 1))
    return sorted(problems)


def check_rows(rows: Iterable[Any]) -> None:
    """Check every string attribute mapped to a ``String`` or ``Text``
    column of ``rows`` (ORM objects about to be written).

    :raises InvalidText: naming ``table.column`` and what is wrong.
    """
    import sqlalchemy as sa

    for row in rows:
        mapper = sa.inspect(row).mapper
        for column in mapper.columns:
            if not isinstance(column.type, sa.String):
                continue
            key = mapper.get_property_by_column(column).key
            value = getattr(row, key, None)
            if not isinstance(value, str):
                continue
            reason = text_problem(value, column.type.length)
            if reason is not None:
                raise InvalidText(f"{mapper.persist_selectable.name}.{column.name}", reason)
