"""Patchsets: the patches of one series, recognised by their subjects
(``[PATCH v2 3/5]``, ``[widget PATCH 0/3]`` for a cover letter) among the
messages of one thread, as ``git send-email`` sends them: the patches reply
to the cover letter (or to the first patch), in one thread.

A series is one patchset per thread, version, length and prefix; a lone
patch (``[PATCH]``) is a patchset of its own. A new version supersedes the
older ones still open that share its thread, its title, or its first
patch's title (a v2 sent without a cover letter). The list owner
sets the status on the web, through the API, or by replying with a
``X-Srht-Patchset-Update: APPLIED`` header (any status, any case).
"""

from __future__ import annotations

import sqlalchemy as sa

from srht_core import Problem, db_session, url_problem, utcnow

from . import events
from .addresses import list_address
from .mbox import mbox_entry
from .messages import PatchSubject, has_diff, parse_patch_subject
from .models import (
    APPROVED,
    ARCHIVED,
    NEEDS_REVISION,
    PATCHSET_STATUSES,
    PROPOSED,
    SUPERSEDED,
    TOOL_NAME,
    TOOL_STATUSES,
    Email,
    MailingList,
    Patchset,
    PatchsetTool,
)

__all__ = ["patch_of", "place", "series_mbox", "set_status", "set_tool", "update_by_mail"]

#: Statuses a newer version moves to superseded.
OPEN = (PROPOSED, NEEDS_REVISION, APPROVED)


def patch_of(email: Email) -> PatchSubject | None:
    """The series ``email`` belongs to, by its subject and text."""
    patch = parse_patch_subject(email.subject)
    if patch is not None and patch.number > 0 and not has_diff(email.body):
        return None
    return patch


def _emit(mailing_list: MailingList, event: str, patchset: Patchset, **extra: object) -> None:
    events.emit(
        mailing_list,
        event,
        {"patchset": patchset.to_dict(), **extra},
        list_address(mailing_list),
    )


def place(mailing_list: MailingList, email: Email, *, quiet: bool = False) -> Patchset | None:
    """Put an archived, threaded ``email`` in its patchset (made if new);
    ``quiet`` tells no webhook."""
    patch = patch_of(email)
    if patch is None:
        return None
    patchset = None
    if patch.total > 1:
        patchset = db_session.scalar(
            sa.select(Patchset)
            .where(
                Patchset.list_id == mailing_list.id,
                Patchset.thread_id == email.thread_id,
                Patchset.version == patch.version,
                Patchset.total == patch.total,
                Patchset.prefix == patch.prefix,
            )
            .order_by(Patchset.id)
            .limit(1)
        )
    renamed = False
    if patchset is None:
        patchset = Patchset(
            list_id=mailing_list.id,
            thread_id=email.thread_id,
            subject=patch.title,
            prefix=patch.prefix,
            version=patch.version,
            total=patch.total,
            status=PROPOSED,
            sender_name=email.sender_name,
            sender_address=email.sender_address,
        )
        db_session.add(patchset)
        db_session.flush()
        renamed = True
    elif patch.number == 0 and patchset.subject != patch.title:
        patchset.subject = patch.title  # the cover letter names the series
        renamed = True
    if patch.number == 1 and patchset.first_title != patch.title:
        patchset.first_title = patch.title
        renamed = True
    email.patchset_id = patchset.id
    email.patch_number = patch.number
    email.patch_total = patch.total
    patchset.updated = utcnow()
    db_session.flush()
    if renamed:
        supersede(mailing_list, patchset, quiet=quiet)
    if not quiet and patch.number > 0 and complete(patchset, just=patch.number):
        _emit(mailing_list, "patchset:received", patchset)
    return patchset


def complete(patchset: Patchset, just: int | None = None) -> bool:
    """Whether every patch of the series has arrived (and, with ``just``,
    whether patch ``just`` was the last one missing: not already there twice)."""
    numbers = list(
        db_session.scalars(
            sa.select(Email.patch_number).where(
                Email.patchset_id == patchset.id,
                Email.patch_number >= 1,
                Email.patch_number <= patchset.total,
            )
        )
    )
    if set(numbers) != set(range(1, patchset.total + 1)):
        return False
    return just is None or numbers.count(just) == 1


def supersede(mailing_list: MailingList, newer: Patchset, *, quiet: bool = False) -> None:
    if newer.version <= 1:
        return
    older = db_session.scalars(
        sa.select(Patchset).where(
            Patchset.list_id == mailing_list.id,
            Patchset.id != newer.id,
            Patchset.version < newer.version,
            Patchset.status.in_(OPEN),
            sa.or_(
                Patchset.thread_id == newer.thread_id,
                sa.and_(Patchset.subject == newer.subject, Patchset.prefix == newer.prefix),
                sa.and_(
                    Patchset.first_title == newer.first_title,
                    Patchset.first_title != "",
                    Patchset.prefix == newer.prefix,
                ),
            ),
        )
    ).all()
    for patchset in older:
        previous = patchset.status
        patchset.status = SUPERSEDED
        patchset.superseded_by_id = newer.id
        patchset.updated = utcnow()
        if not quiet:
            _emit(mailing_list, "patchset:update", patchset, previous=previous)


def set_status(mailing_list: MailingList, patchset: Patchset, status: str) -> bool:
    """Set the status (the caller checked it is the owner); ``True`` when
    it changed."""
    if status not in PATCHSET_STATUSES:
        raise Problem("status", f"Must be one of {', '.join(PATCHSET_STATUSES)}.")
    if patchset.status == status:
        return False
    previous = patchset.status
    patchset.status = status
    patchset.updated = utcnow()
    mailing_list.updated = utcnow()
    db_session.flush()
    _emit(mailing_list, "patchset:update", patchset, previous=previous)
    return True


def update_by_mail(mailing_list: MailingList, email: Email, value: str) -> Patchset | None:
    """Apply a reply's ``X-Srht-Patchset-Update`` header: from the list
    owner's address only, to the patchset of the nearest message above it
    in its thread that belongs to one."""
    status = value.strip().lower().replace("-", "_")
    if status not in PATCHSET_STATUSES:
        return None
    if email.sender_address.lower() != mailing_list.owner.email.lower():
        return None
    parent_id = email.parent_id
    for _step in range(100):
        if parent_id is None:
            return None
        row = db_session.execute(
            sa.select(Email.parent_id, Email.patchset_id).where(Email.id == parent_id)
        ).first()
        if row is None:
            return None
        if row.patchset_id is not None:
            patchset = db_session.get(Patchset, row.patchset_id)
            if patchset is not None:
                set_status(mailing_list, patchset, status)
            return patchset
        parent_id = row.parent_id
    return None


def series_mbox(patchset: Patchset) -> bytes:
    """The patches (not the cover letter) in order, as an mbox: what ``git
    am`` applies. A patch sent twice is taken the first time."""
    rows = db_session.execute(
        sa.select(Email.patch_number, Email.raw)
        .where(Email.patchset_id == patchset.id, Email.status == ARCHIVED, Email.patch_number >= 1)
        .order_by(Email.patch_number, Email.id)
    ).all()
    seen: set[int | None] = set()
    entries = []
    for number, raw in rows:
        if number in seen:
            continue
        seen.add(number)
        entries.append(mbox_entry(raw))
    return b"".join(entries)


def tools(patchset: Patchset) -> list[PatchsetTool]:
    """What tools said of ``patchset``, by name."""
    return list(
        db_session.scalars(
            sa.select(PatchsetTool)
            .where(PatchsetTool.patchset_id == patchset.id)
            .order_by(PatchsetTool.name)
        )
    )


def set_tool(
    mailing_list: MailingList,
    patchset: Patchset,
    name: str,
    status: str,
    details: str = "",
    url: str | None = None,
) -> PatchsetTool:
    """Record what tool ``name`` says of ``patchset`` now (the caller
    checked it acts for the list's owner); its last word replaces the one
    before."""
    if not TOOL_NAME.match(name):
        raise Problem("name", "Use 1 to 32 lowercase letters, digits and dashes.")
    if status not in TOOL_STATUSES:
        raise Problem("status", f"Must be one of {', '.join(TOOL_STATUSES)}.")
    if url is not None and url_problem(url) is not None:
        raise Problem("url", "Use an http:// or https:// URL.")
    found = db_session.scalar(
        sa.select(PatchsetTool).where(
            PatchsetTool.patchset_id == patchset.id, PatchsetTool.name == name
        )
    )
    if found is None:
        found = PatchsetTool(patchset_id=patchset.id, name=name, status=status)
        db_session.add(found)
    found.status = status
    found.details = details
    found.url = url
    found.updated = utcnow()
    mailing_list.updated = utcnow()  # the list's kept pages show it
    db_session.flush()
    return found
