"""The front door of the site (or the signed-in user's dashboard), the
explore page and public profiles."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, abort, render_template, request, url_for

from srht_core import (
    BoundedCache,
    ServiceUnreachable,
    anonymous_page,
    current_service,
    db_session,
    internal_request,
    mirror_user,
    paginate,
    user_named,
    viewer,
    watch,
    watched_page,
)

from .. import activity, sources
from ..access import listed_projects
from ..attention import needs_attention
from ..models import PUBLIC, Project, Source, User

bp = Blueprint("home", __name__)

#: meta's profiles of users (name, bio, links), kept a minute.
PROFILE_TTL = 60.0
_profiles: BoundedCache[tuple[str, int], tuple[float, dict[str, Any] | None]] = BoundedCache(4096)


def meta_link(path: str, return_to: str | None = None) -> str:
    config = current_service().config
    origin = config.get("meta", "origin") if config.has_section("meta") else ""
    query = "?" + urlencode({"return_to": return_to}) if return_to else ""
    return f"{origin}{path}{query}"


def registration_open() -> bool:
    config = current_service().config
    try:
        value = config.get("meta::settings", "registration")
    except (KeyError, LookupError):
        value = None
    return value is None or bool(value)


@bp.get("/")
def index() -> Any:
    user = viewer()
    if user is None:
        # On PostgreSQL kept until a project or a user changes (a hit runs
        # no query); elsewhere until a public project is made, changed or
        # deleted.
        return watched_page(_front_door)
    mine = list(db_session.scalars(listed_projects(user, user).limit(50)))
    events = activity.feed(activity.visible_events(user, owner=user))
    return render_template(
        "hub/dashboard.html", mine=mine, events=events, attention=needs_attention(user.id)
    )


def _front_door() -> Any:
    watch(Project, User)

    def render() -> Any:
        recent = list(db_session.scalars(listed_projects(None).limit(12)))
        here = current_service().origin + url_for("home.index")
        return render_template(
            "hub/home.html",
            recent=recent,
            login=meta_link("/login", here),
            register=meta_link("/register", here) if registration_open() else None,
        )

    version = tuple(
        db_session.execute(
            sa.select(sa.func.max(Project.updated), sa.func.max(Project.id), sa.func.count()).where(
                Project.visibility == PUBLIC
            )
        ).one()
    )
    return anonymous_page(version, render)


@bp.get("/explore")
def explore() -> Any:
    query = (request.args.get("search") or "").strip()
    stmt = listed_projects(None)
    for word in query.split()[:8]:
        if word.startswith("tag:") and len(word) > 4:
            stmt = stmt.where(sa.func.concat(" ", Project.tags, " ").contains(f" {word[4:]} "))
        else:
            like = f"%{word.replace('%', '').replace('_', '')}%"
            stmt = stmt.where(
                sa.or_(
                    Project.name.ilike(like),
                    Project.description.ilike(like),
                    Project.tags.ilike(like),
                )
            )
    page = paginate(db_session, stmt)
    return render_template("hub/explore.html", page=page, search=query)


def profile_of(user: User) -> dict[str, Any] | None:
    """meta's public profile of ``user`` (``None`` when meta does not answer)."""
    key = (current_service().config["srht"]["network-key"], user.id)
    kept = _profiles.get(key)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    try:
        found = internal_request("meta", f"/internal/users/{user.id}", timeout=3)
    except ServiceUnreachable:
        found = None
    profile = found if isinstance(found, dict) else None
    _profiles.put(key, (time.monotonic() + PROFILE_TTL, profile))
    return profile


def public_resources(
    user: User,
) -> tuple[list[tuple[sources.Kind, list[dict[str, Any]]]], list[str], set[str], set[str]]:
    """``user``'s resources each service lists publicly, the services that
    did not answer, those that were asked and those that know the user."""
    kinds, problems = sources.all_kinds()
    found = []
    messages = [str(p) for p in problems]
    asked: set[str] = {p.service for p in problems}
    known: set[str] = set()
    for kind in kinds:
        if not kind.listed:
            continue
        asked.add(kind.service)
        try:
            status, answer = sources.call(
                kind.service, kind.listed.format(username=user.username) + "?limit=25"
            )
        except sources.Unreachable as problem:
            messages.append(str(problem))
            continue
        if status == 200 and isinstance(answer, dict):
            known.add(kind.service)
            objects = [
                o
                for o in answer.get("results", ())
                if isinstance(o, dict) and o.get("visibility") == PUBLIC
            ]
            if objects:
                found.append((kind, objects))
    return found, messages, asked, known


def person_named(username: str) -> User | None:
    """Hub's copy of user ``username``, mirrored from meta on first sight
    (a profile is public: its user need never have signed in to hub)."""
    user: User | None = user_named(username)
    if user is not None:
        return user
    try:
        found = internal_request(
            "meta", f"/internal/users/by-name/{username.lstrip('~')}", timeout=3
        )
    except ServiceUnreachable:
        return None
    if not isinstance(found, dict) or found.get("user_type") in ("suspended", "deleted"):
        return None
    with current_service().db.session() as session:
        mirror_user(found, session)
    user = user_named(username)
    return user


#: The services whose ``/~user`` page lists a user's things, with what it lists.
USER_PAGES = (
    ("git", "Repositories"),
    ("todo", "Trackers"),
    ("lists", "Mailing lists"),
    ("paste", "Pastes"),
    ("builds", "Builds"),
)


def elsewhere(user: User, asked: set[str], known: set[str]) -> list[tuple[str, str, str]]:
    """``(service, what it lists, URL)`` of ``user``'s page on each of the
    site's services that has one (each links back here: ``profile_url``).
    A service hub asked for the user's things (``asked``) is linked only
    when it knows the user (``known``): a user's page there is a 404 until
    they first visit it."""
    origins = current_service().origins
    return [
        (service, label, f"{origins[service]}/~{user.username}")
        for service, label in USER_PAGES
        if origins.get(service) and (service in known or service not in asked)
    ]


@bp.get("/~<username>")
def profile(username: str) -> Any:
    user = person_named(username)
    if user is None:
        abort(404, f"No user ~{username.lstrip('~')} here.")
    projects = list(db_session.scalars(listed_projects(viewer(), user).limit(50)))
    events = activity.feed(activity.visible_events(viewer(), owner=user))
    resources, problems, asked, known = public_resources(user)
    return render_template(
        "hub/profile.html",
        person=user,
        details=profile_of(user),
        projects=projects,
        events=events,
        resources=resources,
        problems=problems,
        elsewhere=elsewhere(user, asked, known),
        sources_count=db_session.scalar(
            sa.select(sa.func.count(Source.id)).where(Source.owner_id == user.id)
        ),
    )
