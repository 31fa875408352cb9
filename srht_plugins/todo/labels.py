"""A tracker's labels, whether through a page or the API: create, rename,
recolour and delete them (triage access).
Invalid input raises :class:`srht_core.Problem`."""

from __future__ import annotations

import re

import sqlalchemy as sa

from srht_core import Problem, db_session, utcnow

from . import events
from .access import TRIAGE, Access
from .models import COLOR, Label, Tracker

LABEL_NAME = re.compile(r'^[^"\s][^"]{0,63}$')


def check_label(name: str, color: str) -> tuple[str, str]:
    name = (name or "").strip()
    if not LABEL_NAME.match(name):
        raise Problem(
            "name", 'Use 1 to 64 characters, no double quotes ("), not starting with a space.'
        )
    if not COLOR.match(color or ""):
        raise Problem("color", "Use a colour like #1f7a3a (# and six hex digits).")
    return name, color.lower()


def _label_taken(tracker: Tracker, name: str, but: int | None = None) -> None:
    stmt = sa.select(Label.id).where(Label.tracker_id == tracker.id, Label.name == name)
    if but is not None:
        stmt = stmt.where(Label.id != but)
    if db_session.scalar(stmt) is not None:
        raise Problem("name", f"{tracker.ref} has a label {name!r} already.", 409)


def create_label(access: Access, name: str, color: str) -> Label:
    access.require(TRIAGE, "manage labels")
    name, color = check_label(name, color)
    _label_taken(access.tracker, name)
    label = Label(tracker_id=access.tracker.id, name=name, color=color)
    db_session.add(label)
    access.tracker.updated = utcnow()
    db_session.flush()
    events.emit(access.tracker, "label:create", {"label": label.to_dict()}, access.user)
    return label


def update_label(access: Access, label: Label, name: str | None, color: str | None) -> Label:
    access.require(TRIAGE, "manage labels")
    name, color = check_label(
        name if name is not None else label.name, color if color is not None else label.color
    )
    _label_taken(access.tracker, name, but=label.id)
    label.name, label.color = name, color
    access.tracker.updated = utcnow()
    db_session.flush()
    events.emit(access.tracker, "label:update", {"label": label.to_dict()}, access.user)
    return label


def delete_label(access: Access, label: Label) -> None:
    access.require(TRIAGE, "manage labels")
    events.emit(access.tracker, "label:delete", {"label": label.to_dict()}, access.user)
    db_session.delete(label)
    access.tracker.updated = utcnow()
    db_session.flush()


def find_label(access: Access, name: str) -> Label | None:
    return db_session.scalar(
        sa.select(Label).where(Label.tracker_id == access.tracker.id, Label.name == name)
    )
