"""The archive: a thread (its messages nested by who answered whom), a
message with its headers and attachments, a patchset with its patches'
diffs and its other versions, and their downloads (raw message, mbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for

from srht_core import Problem, db_session, login_required, sandbox, watch, watched_page

from .. import patches
from ..access import Access, find_email, find_patchset, find_thread, list_for
from ..forms import PatchsetStatusForm
from ..mbox import mbox_entry
from ..messages import attachment_part
from ..models import ARCHIVED, Email, Patchset
from ..render import render_text, split_patch
from .lists import mbox_response

bp = Blueprint("archive", __name__)

#: Replies are indented at most this deep.
MAX_DEPTH = 8


@dataclass(frozen=True)
class Shown:
    """A message of a thread page, at its depth under the first."""

    email: Email
    depth: int


def nested(emails: list[Email]) -> list[Shown]:
    """``emails`` depth first, each answer under what it answers."""
    ids = {e.id for e in emails}
    children: dict[int | None, list[Email]] = {}
    for email in emails:
        parent = email.parent_id if email.parent_id in ids else None
        children.setdefault(parent, []).append(email)
    out: list[Shown] = []
    stack = [(e, 0) for e in reversed(children.get(None, []))]
    while stack:
        email, depth = stack.pop()
        out.append(Shown(email, min(depth, MAX_DEPTH)))
        stack.extend((child, depth + 1) for child in reversed(children.get(email.id, [])))
    return out


@bp.get("/~<owner>/<name>/threads/<int:thread_id>")
def thread(owner: str, name: str, thread_id: int) -> Any:
    def render() -> Any:
        access = list_for(owner, name)
        watch(access.list)
        found = find_thread(access, thread_id)
        emails = list(
            db_session.scalars(
                sa.select(Email)
                .where(Email.thread_id == found.id, Email.status == ARCHIVED)
                .order_by(Email.id)
            )
        )
        sets = {e.patchset_id for e in emails if e.patchset_id is not None}
        shown_sets = (
            db_session.scalars(
                sa.select(Patchset).where(Patchset.id.in_(sets)).order_by(Patchset.id)
            ).all()
            if sets
            else []
        )
        return render_template(
            "lists/thread.html",
            access=access,
            mailing_list=access.list,
            thread=found,
            messages=nested(emails),
            patchsets=shown_sets,
            render_text=render_text,
        )

    return watched_page(render)


@bp.get("/~<owner>/<name>/threads/<int:thread_id>/mbox")
def thread_mbox(owner: str, name: str, thread_id: int) -> Any:
    access = list_for(owner, name)
    found = find_thread(access, thread_id)
    raws = db_session.scalars(
        sa.select(Email.raw)
        .where(Email.thread_id == found.id, Email.status == ARCHIVED)
        .order_by(Email.id)
    ).all()
    return mbox_response(b"".join(mbox_entry(raw) for raw in raws), f"thread-{found.id}.mbox")


@bp.get("/~<owner>/<name>/messages/<int:email_id>")
def message(owner: str, name: str, email_id: int) -> Any:
    access = list_for(owner, name)
    found = find_email(access, email_id)
    return render_template(
        "lists/message.html",
        access=access,
        mailing_list=access.list,
        email=found,
        headers=found.headers,
        text=render_text(found.body),
    )


@bp.get("/~<owner>/<name>/message-id/<path:message_id>")
def by_message_id(owner: str, name: str, message_id: str) -> Any:
    """A message by its ``Message-ID`` (with or without angle brackets)."""
    access = list_for(owner, name)
    found = db_session.scalar(
        sa.select(Email.id).where(
            Email.list_id == access.list.id,
            Email.message_id == message_id.strip("<>"),
            Email.status == ARCHIVED,
        )
    )
    if found is None:
        abort(404, f"No message <{message_id.strip('<>')}> on {access.list.ref}.")
    return redirect(url_for("archive.message", owner=owner, name=name, email_id=found))


@bp.get("/~<owner>/<name>/messages/<int:email_id>/raw")
def raw(owner: str, name: str, email_id: int) -> Any:
    """The message as it arrived, as text: never interpreted by the browser."""
    access = list_for(owner, name)
    found = find_email(access, email_id, raw=True)
    return sandbox(Response(found.raw, content_type="text/plain; charset=utf-8"))


@bp.get("/~<owner>/<name>/messages/<int:email_id>/attachments/<int:number>")
def attachment(owner: str, name: str, email_id: int, number: int) -> Any:
    access = list_for(owner, name)
    found = find_email(access, email_id, raw=True)
    part = attachment_part(found.raw, number)
    if part is None:
        abort(404, f"Message {email_id} has no attachment {number}.")
    filename, _content_type, data = part
    # Served as bytes to save, never as a page of this origin.
    response = Response(data, mimetype="application/octet-stream")
    quoted = filename.replace('"', "").encode("ascii", "replace").decode("ascii")
    response.headers["Content-Disposition"] = f'attachment; filename="{quoted}"'
    return sandbox(response)


@bp.route("/~<owner>/<name>/patches/<int:patchset_id>", methods=["GET"])
def patchset(owner: str, name: str, patchset_id: int) -> Any:
    access = list_for(owner, name)
    return render_patchset(access, find_patchset(access, patchset_id))


def render_patchset(
    access: Access, found: Patchset, form: PatchsetStatusForm | None = None, status: int = 200
) -> Any:
    emails = list(
        db_session.scalars(
            sa.select(Email)
            .where(Email.patchset_id == found.id, Email.status == ARCHIVED)
            .order_by(Email.patch_number, Email.id)
        )
    )
    cover = next((e for e in emails if e.patch_number == 0), None)
    shown = [
        (email, split_patch(email.body, f"p{email.patch_number}-L"))
        for email in emails
        if email.patch_number
    ]
    versions = db_session.scalars(
        sa.select(Patchset)
        .where(
            Patchset.list_id == access.list.id,
            sa.or_(
                sa.and_(Patchset.subject == found.subject, Patchset.prefix == found.prefix),
                Patchset.superseded_by_id == found.id,
                Patchset.id == found.superseded_by_id,
            ),
        )
        .order_by(Patchset.version, Patchset.id)
    ).all()
    if form is None and access.is_owner:
        form = PatchsetStatusForm(formdata=None, data={"status": found.status})
    return render_template(
        "lists/patchset.html",
        access=access,
        mailing_list=access.list,
        patchset=found,
        cover=cover,
        patches=shown,
        missing=sorted(set(range(1, found.total + 1)) - {e.patch_number for e, _ in shown}),
        versions=versions,
        tools=patches.tools(found),
        form=form,
        render_text=render_text,
    ), status


@bp.post("/~<owner>/<name>/patches/<int:patchset_id>")
@login_required
def set_status(owner: str, name: str, patchset_id: int) -> Any:
    access = list_for(owner, name)
    access.require_owner("set a patchset's status")
    found = find_patchset(access, patchset_id)
    form = PatchsetStatusForm()
    if form.validate_on_submit():
        try:
            patches.set_status(access.list, found, form.status.data)
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"Patchset marked {form.status.data.replace('_', ' ')}.", "success")
            return redirect(
                url_for("archive.patchset", owner=owner, name=name, patchset_id=found.id)
            )
    return render_patchset(access, found, form, 400)


@bp.get("/~<owner>/<name>/patches/<int:patchset_id>/mbox")
def patchset_mbox(owner: str, name: str, patchset_id: int) -> Any:
    """The patches (not the cover letter) in order: what ``git am`` applies."""
    access = list_for(owner, name)
    found = find_patchset(access, patchset_id)
    return mbox_response(patches.series_mbox(found), f"patchset-{found.id}-v{found.version}.mbox")
