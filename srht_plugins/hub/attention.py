"""What needs a signed-in user's attention, for their dashboard: the open
tickets assigned to them (todo's ``GET /api/user/assigned-tickets``) and
the patchsets awaiting review on their lists (lists'
``GET /api/user/patchsets-to-review``), read through those services'
public REST APIs with a token meta delegates for the user.

Only services in the site's config are asked. One that does not answer
within :data:`TIMEOUT` seconds, or answers an error, is named in its
section and the dashboard renders without it. What was found is kept per
user for :data:`KEPT` seconds (:data:`KEPT_FAILED` when a service did not
answer), so loading the dashboard again does not ask every service again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from srht_core import ApiError, BoundedCache, current_service, delegated_token

from . import sources

#: Seconds a service may take to answer while the dashboard is built (at
#: most ``[hub] service-timeout``).
TIMEOUT = 2.0
#: Seconds what was found is kept per user (when a service did not answer: KEPT_FAILED).
KEPT, KEPT_FAILED = 30.0, 10.0
#: At most this many items per section.
LIMIT = 10


@dataclass(frozen=True)
class Question:
    """One thing a service is asked for its user."""

    service: str
    scope: str
    path: str
    heading: str
    empty: str


QUESTIONS = (
    Question(
        "todo",
        "todo/tickets:RO",
        "/api/user/assigned-tickets",
        "Tickets assigned to you",
        "No open tickets are assigned to you.",
    ),
    Question(
        "lists",
        "lists/emails:RO",
        "/api/user/patchsets-to-review",
        "Patchsets awaiting your review",
        "No patchsets await review on your lists.",
    ),
)


@dataclass(frozen=True)
class Item:
    title: str
    url: str
    where: str


@dataclass
class Section:
    """A question's answer: its items, or why the service could not say."""

    question: Question
    items: list[Item] = field(default_factory=list)
    more: bool = False
    problem: str = ""


def _cache() -> BoundedCache[int, tuple[float, list[Section]]]:
    found: BoundedCache[int, tuple[float, list[Section]]] = current_app.extensions.setdefault(
        "hub.attention", BoundedCache(4096)
    )
    return found


def needs_attention(user_id: int) -> list[Section]:
    """A section per question whose service this site has, kept a while."""
    kept = _cache().get(user_id)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    origins = current_service().origins
    found = [ask(user_id, q) for q in QUESTIONS if q.service in origins]
    ttl = KEPT_FAILED if any(s.problem for s in found) else KEPT
    _cache().put(user_id, (time.monotonic() + ttl, found))
    return found


def ask(user_id: int, question: Question) -> Section:
    section = Section(question)
    try:
        token = delegated_token(user_id, [question.scope])
    except ApiError as error:
        section.problem = f"meta did not answer: {error}"
        return section
    try:
        status, answer = sources.call(
            question.service,
            f"{question.path}?limit={LIMIT}",
            token=token,
            timeout=min(TIMEOUT, sources.default_timeout()),
        )
    except sources.Unreachable as problem:
        section.problem = str(problem)
        return section
    if status != 200 or not isinstance(answer, dict):
        section.problem = f"{question.service} did not answer: {question.path} answered {status}"
        return section
    # Only links to the service's own pages: its answer becomes our hrefs.
    origin = current_service().origins[question.service] + "/"
    for obj in answer.get("results", ()):
        if isinstance(obj, dict) and str(obj.get("url", "")).startswith(origin):
            section.items.append(_item(obj))
    section.more = bool(answer.get("next"))
    return section


def _item(obj: dict[str, Any]) -> Item:
    if "number" in obj:  # a ticket
        return Item(str(obj.get("title", "")), obj["url"], str(obj.get("ref", "")))
    version = obj.get("version")
    prefix = f"v{version} " if isinstance(version, int) and version > 1 else ""
    return Item(f"{prefix}{obj.get('subject', '')}", obj["url"], str(obj.get("list", "")))
