"""Making and changing projects, shared by the pages and the API: every
rule is checked here and a break raises :class:`srht_core.Problem` naming
the field, before anything is stored."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from srht_core import Problem, db_session, enqueue

from . import sources
from .events import emit
from .models import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_README,
    MAX_TAG,
    MAX_TAGS,
    NAME_RULE,
    TAG_RULE,
    VISIBILITIES,
    Attachment,
    Project,
    Source,
    User,
)

#: How many of a user's objects of one kind hub looks through to attach one.
MAX_LOOKED_AT = 1000


def parse_tags(text: str | list[str]) -> str:
    """Tags as stored (space separated, lower case, no repeats).

    :raises Problem: naming ``tags``.
    """
    words = text if isinstance(text, list) else re.split(r"[\s,]+", text or "")
    tags = list(dict.fromkeys(word.strip().lower() for word in words if word.strip()))
    for tag in tags:
        if len(tag) > MAX_TAG or not TAG_RULE.match(tag):
            raise Problem(
                "tags",
                f"{tag!r} is not a tag: use up to {MAX_TAG} lower-case letters, digits, "
                "dots, pluses and dashes, starting with a letter or digit.",
            )
    if len(tags) > MAX_TAGS:
        raise Problem("tags", f"{len(tags)} tags; a project has at most {MAX_TAGS}.")
    return " ".join(tags)


def check(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (any of name, description, readme, visibility, tags)
    checked and normalized.

    :raises Problem: naming the first field at fault.
    """
    out = dict(fields)
    if "name" in out:
        name = (out["name"] or "").strip()
        if not name:
            raise Problem("name", "A project needs a name.")
        if len(name) > MAX_NAME or not NAME_RULE.match(name):
            raise Problem(
                "name",
                f"{name!r} is not a project name: use up to {MAX_NAME} letters, digits, dots, "
                "dashes and underscores, starting with a letter or digit.",
            )
        out["name"] = name
    if "description" in out:
        out["description"] = (out["description"] or "").strip()
        if len(out["description"]) > MAX_DESCRIPTION:
            raise Problem(
                "description",
                f"At most {MAX_DESCRIPTION} characters (this is {len(out['description'])}).",
            )
    if "readme" in out:
        out["readme"] = out["readme"] or ""
        if len(out["readme"]) > MAX_README:
            raise Problem(
                "readme",
                f"The README is {len(out['readme']):,} characters; "
                f"at most {MAX_README:,} are kept.",
            )
    if "visibility" in out and out["visibility"] not in VISIBILITIES:
        raise Problem("visibility", f"Choose one of {', '.join(VISIBILITIES)}.")
    if "tags" in out:
        out["tags"] = parse_tags(out["tags"])
    return out


def _taken(owner: User, name: str, project: Project | None = None) -> None:
    stmt = sa.select(Project.id).where(Project.owner_id == owner.id, Project.name == name)
    found = db_session.scalar(stmt)
    if found is not None and (project is None or found != project.id):
        raise Problem("name", f"You have a project named {name} already.", 409)


def create_project(owner: User, fields: dict[str, Any]) -> Project:
    """A new project of ``owner``'s (not committed)."""
    values = check({"description": "", "readme": "", "visibility": "public", "tags": "", **fields})
    _taken(owner, values["name"])
    project = Project(owner=owner, **values)
    db_session.add(project)
    emit(project, "project:create")
    return project


def update_project(project: Project, fields: dict[str, Any]) -> Project:
    values = check(fields)
    if "name" in values:
        _taken(project.owner, values["name"], project)
    for key, value in values.items():
        setattr(project, key, value)
    emit(project, "project:update")
    return project


def delete_project(project: Project) -> None:
    emit(project, "project:delete")
    sources_of = [a.source for a in project.attachments]
    db_session.delete(project)
    db_session.flush()
    for source in sources_of:
        forget_if_unused(source)


def candidates(owner: User) -> tuple[list[tuple[sources.Kind, dict[str, Any]]], list[str]]:
    """The objects ``owner`` may attach (their own, of every kind offered),
    and a sentence for each service that could not be asked."""
    kinds, problems = sources.all_kinds()
    found: list[tuple[sources.Kind, dict[str, Any]]] = []
    messages = [str(p) for p in problems]
    for kind in kinds:
        try:
            found += [(kind, obj) for obj in sources.list_mine(owner.id, kind)]
        except sources.Unreachable as problem:
            messages.append(str(problem))
    return found, messages


def _find_own(owner: User, kind: sources.Kind, resource: str) -> dict[str, Any] | None:
    path, looked = f"{kind.mine}?limit=100", 0
    token = sources.token_for(owner.id, kind)
    while path and looked < MAX_LOOKED_AT:
        status, answer = sources.call(kind.service, path, token=token)
        if status != 200 or not isinstance(answer, dict):
            raise sources.Unreachable(kind.service, f"{kind.mine} answered {status}")
        for obj in answer.get("results", ()):
            looked += 1
            if resource in (kind.fill(kind.title, obj), kind.fill(kind.item, obj)):
                return obj  # type: ignore[no-any-return]
        nxt = answer.get("next")
        path = f"{kind.mine}?limit=100&cursor={nxt}" if nxt else ""
    return None


def attach(project: Project, service: str, kind_name: str, resource: str) -> Source:
    """Attach ``owner``'s object ``resource`` (its title, ``~alice/repo``,
    or its API path) of ``service``'s kind ``kind_name`` to ``project``.

    :raises Problem: naming ``resource`` when the service offers no such
        kind, cannot be asked (saying which), or the owner has no such
        object of their own.
    """
    owner = project.owner
    try:
        kind = sources.kind(service, kind_name)
        obj = _find_own(owner, kind, resource.strip())
    except LookupError:
        raise Problem("resource", f"{service} offers no resources of type {kind_name!r}.") from None
    except sources.Unreachable as problem:
        raise Problem("resource", f"Cannot attach it now: {problem}.", 503) from None
    if obj is None:
        raise Problem(
            "resource", f"You have no {kind.name} {resource} of your own on {service}.", 404
        )
    item = kind.fill(kind.item, obj)
    source = db_session.scalar(
        sa.select(Source).where(
            Source.owner_id == owner.id, Source.service == service, Source.item == item
        )
    )
    if source is None:
        source = Source(
            owner=owner,
            service=service,
            kind=kind.name,
            item=item,
            hook_key=sources.new_hook_key(),
        )
        db_session.add(source)
    describe(source, kind, obj)
    db_session.flush()
    if any(a.source_id == source.id for a in project.attachments):
        raise Problem("resource", f"{source.title} is attached to this project already.", 409)
    project.attachments.append(Attachment(source=source))
    if source.webhook_id is None and kind.webhooks:
        enqueue("subscribe", source_id=source.id)
    emit(project, "project:update")
    return source


def describe(source: Source, kind: sources.Kind, obj: dict[str, Any]) -> None:
    """Update what hub keeps of ``source`` from its service's answer ``obj``."""
    source.title = kind.fill(kind.title, obj)[:512]
    source.url = (kind.origin + kind.fill(kind.page, obj))[:1024]
    description = obj.get("description")
    source.description = description if isinstance(description, str) else ""
    visibility = obj.get("visibility")
    source.visibility = visibility if visibility in ("public", "unlisted", "private") else "private"


def detach(project: Project, source_id: int) -> Source:
    """:raises Problem: 404 naming ``resource`` when it is not attached."""
    for attachment in project.attachments:
        if attachment.source_id == source_id:
            source = attachment.source
            project.attachments.remove(attachment)
            db_session.flush()
            forget_if_unused(source)
            emit(project, "project:update")
            return source
    raise Problem("resource", f"No resource {source_id} is attached to {project.ref}.", 404)


def forget_if_unused(source: Source) -> None:
    """Delete ``source`` (and its events) once no project shows it, and
    take hub's webhook off it."""
    used = db_session.scalar(sa.select(Attachment.id).where(Attachment.source_id == source.id))
    if used is None:
        if source.webhook_id is not None:
            enqueue(
                "unsubscribe",
                owner_id=source.owner_id,
                service=source.service,
                kind=source.kind,
                item=source.item,
                webhook_id=source.webhook_id,
            )
        db_session.delete(source)


def forget_user(user: User) -> None:
    """For a deleted account: delete their projects, what hub heard of their
    resources, and their webhooks (their resources went with the account on
    every service, hub's webhooks on them too)."""
    from .models import Event, Webhook

    mine = sa.select(Source.id).where(Source.owner_id == user.id).scalar_subquery()
    theirs = sa.select(Project.id).where(Project.owner_id == user.id).scalar_subquery()
    db_session.execute(sa.delete(Event).where(Event.source_id.in_(mine)))
    db_session.execute(
        sa.delete(Attachment).where(
            sa.or_(Attachment.source_id.in_(mine), Attachment.project_id.in_(theirs))
        )
    )
    db_session.execute(sa.delete(Source).where(Source.owner_id == user.id))
    db_session.execute(sa.delete(Project).where(Project.owner_id == user.id))
    db_session.execute(sa.delete(Webhook).where(Webhook.owner_id == user.id))
