"""Ticket search: ``status:open label:bug crash on start``.

Filters are ``key:value`` (quote values with spaces: ``label:"needs info"``):

- ``status:open``, ``status:closed`` or ``status:any``;
- ``label:NAME``, repeatable (all must match);
- ``assigned:USER`` and ``submitter:USER`` (with or without ``~``);
- ``resolution:fixed`` (or any other resolution).

Every other word is searched for in titles and descriptions (all must
match; a word matches words starting with it). Each filter is served by an
index (see ``models``): the tracker/status/number index, the label and
assignee link indexes, and on PostgreSQL the full-text index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .models import (
    CLOSED,
    OPEN,
    RESOLUTIONS,
    Label,
    Ticket,
    User,
    search_document,
    ticket_assignee,
    ticket_label,
)

__all__ = ["DEFAULT_SEARCH", "Search", "SearchError", "filtered", "parse"]

DEFAULT_SEARCH = "status:open"
_TOKEN = re.compile(r'(?:(\w+):)?("[^"]*"?|\S+)')
_WORD = re.compile(r"\w+")
KEYS = ("status", "label", "assigned", "submitter", "resolution")
#: What one search may hold: every word and label is a condition of the
#: query, and SQLite refuses a query past about a thousand of them.
MAX_LENGTH = 1000
MAX_WORDS = 20
MAX_LABELS = 10


class SearchError(ValueError):
    """A search that cannot be run; ``str()`` says why."""


@dataclass
class Search:
    status: str | None = None
    labels: list[str] = field(default_factory=list)
    assigned: str | None = None
    submitter: str | None = None
    resolution: str | None = None
    words: list[str] = field(default_factory=list)


def _unquote(value: str) -> str:
    return value[1:].rstrip('"') if value.startswith('"') else value


def parse(text: str) -> Search:
    """Read a search string.

    :raises SearchError: for a filter with a value it cannot have.
    """
    search = Search()
    if len(text or "") > MAX_LENGTH:
        raise SearchError(f"a search is at most {MAX_LENGTH} characters")
    for key, raw in _TOKEN.findall(text or ""):
        value = _unquote(raw)
        key = key.lower()
        if key == "assignee":
            key = "assigned"
        if key not in KEYS:
            search.words.extend(_WORD.findall((key + " " if key else "") + value))
            continue
        if not value:
            raise SearchError(f"{key}: needs a value")
        if key == "status":
            if value not in (OPEN, CLOSED, "any"):
                raise SearchError(f"status:{value} is not open, closed or any")
            search.status = None if value == "any" else value
        elif key == "label":
            search.labels.append(value)
        elif key == "resolution":
            if value not in RESOLUTIONS:
                raise SearchError(f"resolution:{value} is not one of {', '.join(RESOLUTIONS)}")
            search.resolution = value
        else:
            setattr(search, key, value.lstrip("~"))
    search.words = list(dict.fromkeys(word.lower() for word in search.words))
    search.labels = list(dict.fromkeys(search.labels))
    if len(search.words) > MAX_WORDS:
        raise SearchError(f"a search looks for at most {MAX_WORDS} different words")
    if len(search.labels) > MAX_LABELS:
        raise SearchError(f"a search names at most {MAX_LABELS} labels")
    return search


def _prefix_query(words: list[str]) -> str:
    """A tsquery matching every word as a prefix; words are ``\\w+`` only,
    so nothing the user types can be tsquery syntax."""
    return " & ".join(f"{word.lower()}:*" for word in words)


def filtered(stmt: sa.Select[Any], search: Search, tracker_id: int, dialect: str) -> sa.Select[Any]:
    """``stmt`` (over ``Ticket``, already limited to ``tracker_id``) with
    the search's conditions."""
    if search.status is not None:
        stmt = stmt.where(Ticket.status == search.status)
    if search.resolution is not None:
        stmt = stmt.where(Ticket.resolution == search.resolution)
    for name in search.labels:
        stmt = stmt.where(
            Ticket.id.in_(
                sa.select(ticket_label.c.ticket_id)
                .join(Label, Label.id == ticket_label.c.label_id)
                .where(Label.tracker_id == tracker_id, Label.name == name)
            )
        )
    if search.assigned is not None:
        stmt = stmt.where(
            Ticket.id.in_(
                sa.select(ticket_assignee.c.ticket_id)
                .join(User, User.id == ticket_assignee.c.user_id)
                .where(User.username == search.assigned)
            )
        )
    if search.submitter is not None:
        stmt = stmt.where(
            Ticket.submitter_id.in_(sa.select(User.id).where(User.username == search.submitter))
        )
    if search.words:
        if dialect == "postgresql":
            query = sa.func.to_tsquery(sa.literal_column("'simple'"), _prefix_query(search.words))
            stmt = stmt.where(search_document().op("@@")(query))
        else:
            for word in search.words:
                stmt = stmt.where(
                    sa.or_(
                        Ticket.title.icontains(word, autoescape=True),
                        Ticket.description.icontains(word, autoescape=True),
                    )
                )
    return stmt
