"""Activity: what hub hears of the resources attached to projects, and what
it shows of it.

Each resource's service posts its events to hub (a webhook hub subscribed
for the resource's owner, signed with the site's key, at a URL holding a
secret of the resource's own). Hub keeps a one-line summary of each. A
feed shows only the events of resources the viewer may see, by the
visibility the service last told (on each event, on each check a project
page makes, and on hub's periodic refresh), so a resource made private or
deleted takes its events out of every public view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from srht_core import current_service, db_session, utcnow

from . import sources
from .models import PUBLIC, Attachment, Event, Project, Source, User

#: Events that mean the resource is no more.
DELETIONS = {"tracker:delete", "list:delete", "repo:delete", "paste:delete"}
FEED_LENGTH = 30


def _text(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(source: Source, event: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """``(actor, summary, url)`` of an event, for a feed."""
    actor = _text(data.get("actor") or data.get("pusher") or "", 128)
    ticket = data.get("ticket") if isinstance(data.get("ticket"), dict) else None
    if event == "repo:push":
        refs = [r for r in data.get("refs", ()) if isinstance(r, dict)]
        names = ", ".join(_text(r.get("name"), 60).removeprefix("refs/heads/") for r in refs[:3])
        more = f" and {len(refs) - 3} more" if len(refs) > 3 else ""
        return actor, f"pushed {names}{more} to {source.title}", source.url
    if ticket is not None:
        number = ticket.get("number")
        verb = {
            "ticket:create": "opened",
            "ticket:update": "updated",
            "comment:create": "commented on",
        }.get(event, event)
        title = _text(ticket.get("title"))
        url = f"{source.url}/{number}" if isinstance(number, int) else source.url
        return actor, f"{verb} {source.title}#{number}: {title}", url
    for key, verb in (("email", "wrote to"), ("patchset", "sent a patchset to")):
        thing = data.get(key)
        if isinstance(thing, dict):
            sender = thing.get("sender")
            who = sender.get("name") if isinstance(sender, dict) else sender
            return (
                actor or _text(who, 128),
                f"{verb} {source.title}: {_text(thing.get('subject'))}",
                source.url,
            )
    return actor, f"{event} on {source.title}", source.url


def record(source: Source, payload: dict[str, Any]) -> Event | None:
    """Take in a delivery about ``source`` (not committed); the event kept,
    or ``None`` when it said the resource is deleted (and hub forgot it)."""
    from .projects import forget_if_unused

    event = _text(payload.get("event"), 64)
    given = payload.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    if event in DELETIONS:
        db_session.execute(sa.delete(Attachment).where(Attachment.source_id == source.id))
        db_session.execute(sa.delete(Event).where(Event.source_id == source.id))
        source.webhook_id = None  # gone with the resource
        forget_if_unused(source)
        sources.forget_check(source.id)
        return None
    for key in ("repository", "tracker", "list"):
        about = data.get(key)
        if isinstance(about, dict) and about.get("visibility") in ("public", "unlisted", "private"):
            source.visibility = about["visibility"]
    actor, summary, url = summarize(source, event, data)
    # The source's row changes with each event: what tells a kept project
    # page (which watches its sources' rows) that its feed grew.
    source.updated = utcnow()
    row = Event(source=source, event=event, actor=actor, summary=summary[:512], url=url[:1024])
    db_session.add(row)
    return row


@dataclass
class Checked:
    """A project's resources as their services tell now: those the viewer
    may see, the services that did not answer, and what was gone."""

    shown: list[Source] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def check_sources(listed: Iterable[Source], viewer: User | None) -> Checked:
    """Ask each resource's service about it (answers kept a few seconds),
    bring hub's copy up to date in a transaction of its own, and keep what
    ``viewer`` may see. A resource whose service does not answer is shown
    as hub last knew it, and the service is named in ``problems``."""
    out = Checked()
    changes: dict[int, dict[str, Any] | None] = {}
    for source in listed:
        result = sources.check(source)
        if result.state == "gone":
            changes[source.id] = None
            out.gone.append(source.title)
            continue
        visibility = source.visibility
        if result.obj is not None:
            visibility = str(result.obj.get("visibility"))
            if visibility != source.visibility:
                changes[source.id] = result.obj
        elif result.problem not in out.problems:
            out.problems.append(result.problem)
        if visibility == PUBLIC or (viewer is not None and viewer.id == source.owner_id):
            out.shown.append(source)
    if changes:
        _apply(changes)
    return out


def _apply(changes: dict[int, dict[str, Any] | None]) -> None:
    """Bring hub's copies up to date (``None``: the resource is gone), in
    a transaction of their own: a page only reads."""
    from .projects import describe

    with current_service().db.session() as session:
        for source_id, obj in changes.items():
            source = session.get(Source, source_id)
            if source is None:
                continue
            if obj is None:
                session.execute(sa.delete(Attachment).where(Attachment.source_id == source_id))
                session.execute(sa.delete(Event).where(Event.source_id == source_id))
                session.delete(source)
                continue
            try:
                describe(source, sources.kind(source.service, source.kind), obj)
            except (LookupError, sources.Unreachable):
                continue


def visible_events(
    viewer: User | None, *, source_ids: Iterable[int] | None = None, owner: User | None = None
) -> sa.Select[Any]:
    """The events ``viewer`` may see, newest first: of ``source_ids``, or
    of ``owner``'s resources attached to projects ``viewer`` may read."""
    stmt = sa.select(Event).join(Source, Source.id == Event.source_id)
    if source_ids is not None:
        stmt = stmt.where(Event.source_id.in_(list(source_ids)))
    if owner is not None:
        stmt = stmt.where(Source.owner_id == owner.id)
    if viewer is None or owner is None or viewer.id != owner.id:
        seen = Source.visibility == PUBLIC
        if viewer is not None:
            seen = seen | (Source.owner_id == viewer.id)
        stmt = stmt.where(seen)
        if source_ids is None:
            # Only resources shown on a project the viewer may read.
            readable = Project.visibility == PUBLIC
            if viewer is not None:
                readable = readable | (Project.owner_id == viewer.id)
            shown = (
                sa.select(Attachment.source_id)
                .join(Project, Project.id == Attachment.project_id)
                .where(readable)
            )
            stmt = stmt.where(Source.id.in_(shown))
    return stmt.order_by(Event.id.desc())


def feed(stmt: sa.Select[Any], limit: int = FEED_LENGTH) -> list[Event]:
    return list(db_session.scalars(stmt.limit(limit)))


def refresh_all() -> None:
    """The ``refresh`` job: check every resource with its service, so one
    deleted or made private there leaves the public views even when no one
    opens its project's page."""
    ids = list(db_session.scalars(sa.select(Source.id).order_by(Source.id)))
    for start in range(0, len(ids), 100):
        batch = list(
            db_session.scalars(sa.select(Source).where(Source.id.in_(ids[start : start + 100])))
        )
        for source in batch:
            sources.forget_check(source.id)
        check_sources(batch, None)
