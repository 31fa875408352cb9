"""One ticket: its page, comments, status, labels, assignees, edits and
subscription. Every form posts here and comes back to the ticket."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from srht_core import Problem, db_session, login_required, viewer

from .. import subscriptions
from .. import tickets as ops
from ..access import COMMENT, TRIAGE, Access, find_ticket, tracker_for
from ..forms import AssignForm, CommentForm, TicketForm
from ..models import CLOSED, OPEN, Comment, Label, Ticket
from ..references import referenced_by, render_text

bp = Blueprint("tickets", __name__)
#: ``{{ text | ticket_text(tracker) }}``: Markdown through the core's safe
#: renderer, with ticket references as links.
bp.add_app_template_filter(render_text, "ticket_text")


def _back(access: Access, ticket: Ticket, anchor: str = "") -> Any:
    return redirect(
        url_for(
            "tickets.ticket",
            owner=access.tracker.owner.username,
            tracker=access.tracker.name,
            number=ticket.number,
        )
        + anchor
    )


def render_ticket(
    access: Access,
    ticket: Ticket,
    *,
    comment_form: CommentForm | None = None,
    assign_form: AssignForm | None = None,
    status: int = 200,
) -> Any:
    user = viewer()
    comments = db_session.scalars(
        sa.select(Comment)
        .where(Comment.ticket_id == ticket.id)
        .options(selectinload(Comment.author))
        .order_by(Comment.id)
    ).all()
    addable: list[Label] = []
    if access.can(TRIAGE):
        shown = {label.id for label in ticket.labels}
        addable = [
            label
            for label in db_session.scalars(
                sa.select(Label).where(Label.tracker_id == access.tracker.id).order_by(Label.name)
            )
            if label.id not in shown
        ]
    return render_template(
        "todo/ticket.html",
        access=access,
        tracker=access.tracker,
        ticket=ticket,
        comments=comments,
        referenced_by=referenced_by(ticket, user),
        subscribed=subscriptions.subscription(user, ticket=ticket) is not None,
        comment_form=comment_form or CommentForm(formdata=None),
        assign_form=assign_form or AssignForm(formdata=None),
        addable_labels=addable,
        can_comment=access.can(COMMENT),
        can_triage=access.can(TRIAGE),
        can_edit=access.may_edit(ticket),
        OPEN=OPEN,
        CLOSED=CLOSED,
    ), status


def _load(owner: str, tracker: str, number: int) -> tuple[Access, Ticket]:
    access = tracker_for(owner, tracker)
    return access, find_ticket(access, number)


@bp.get("/~<owner>/<tracker>/<int:number>")
def ticket(owner: str, tracker: str, number: int) -> Any:
    return render_ticket(*_load(owner, tracker, number))


@bp.post("/~<owner>/<tracker>/<int:number>/comment")
def comment(owner: str, tracker: str, number: int) -> Any:
    """Comment, and with triage access close or reopen at the same time
    (the button pressed: ``action`` = comment, close or reopen)."""
    access, found = _load(owner, tracker, number)
    form = CommentForm()
    action = request.form.get("action", "comment")
    if form.validate_on_submit():
        changes = ops.Changes()
        if action == "close":
            changes.status, changes.resolution = CLOSED, form.resolution.data
        elif action == "reopen":
            changes.status = OPEN
        elif not (form.text.data or "").strip():
            form.text.errors = [*form.text.errors, "Write something to comment."]
            return render_ticket(access, found, comment_form=form, status=400)
        try:
            ops.change_ticket(access, found, viewer(), changes, form.text.data or "")
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            return _back(access, found, "#comments-end")
    return render_ticket(access, found, comment_form=form, status=400)


def _change(access: Access, found: Ticket, changes: ops.Changes, done: str) -> Any:
    try:
        ops.change_ticket(access, found, viewer(), changes)
        db_session.commit()
    except Problem as problem:
        db_session.rollback()
        flash(problem.reason, "error")
    else:
        flash(done, "success")
    return _back(access, found)


@bp.post("/~<owner>/<tracker>/<int:number>/labels")
def add_label(owner: str, tracker: str, number: int) -> Any:
    access, found = _load(owner, tracker, number)
    access.require(TRIAGE, "label tickets")
    label_id = request.form.get("label", "")
    label = db_session.get(Label, int(label_id)) if label_id.isdigit() else None
    if label is None or label.tracker_id != access.tracker.id:
        abort(400, "Choose one of this tracker's labels.")
    names = [lb.name for lb in found.labels] + [label.name]
    return _change(access, found, ops.Changes(labels=names), f"Labelled {label.name}.")


@bp.post("/~<owner>/<tracker>/<int:number>/labels/<int:label_id>/remove")
def remove_label(owner: str, tracker: str, number: int, label_id: int) -> Any:
    access, found = _load(owner, tracker, number)
    access.require(TRIAGE, "label tickets")
    names = [lb.name for lb in found.labels if lb.id != label_id]
    return _change(access, found, ops.Changes(labels=names), "Label removed.")


@bp.post("/~<owner>/<tracker>/<int:number>/assignees")
def assign(owner: str, tracker: str, number: int) -> Any:
    access, found = _load(owner, tracker, number)
    access.require(TRIAGE, "assign tickets")
    form = AssignForm()
    if form.validate_on_submit():
        names = [u.username for u in found.assignees] + [form.username.data]
        try:
            ops.change_ticket(access, found, viewer(), ops.Changes(assignees=names))
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.username.errors = [*form.username.errors, problem.reason]
        else:
            flash(f"Assigned ~{form.username.data.lstrip('~')}.", "success")
            return _back(access, found)
    return render_ticket(access, found, assign_form=form, status=400)


@bp.post("/~<owner>/<tracker>/<int:number>/assignees/<int:user_id>/remove")
def unassign(owner: str, tracker: str, number: int, user_id: int) -> Any:
    access, found = _load(owner, tracker, number)
    access.require(TRIAGE, "assign tickets")
    names = [u.username for u in found.assignees if u.id != user_id]
    return _change(access, found, ops.Changes(assignees=names), "Unassigned.")


@bp.route("/~<owner>/<tracker>/<int:number>/edit", methods=["GET", "POST"])
def edit(owner: str, tracker: str, number: int) -> Any:
    access, found = _load(owner, tracker, number)
    if not access.may_edit(found):
        abort(403, f"You may not edit {found.ref}.")
    form = TicketForm(obj=found)
    if form.validate_on_submit():
        try:
            ops.change_ticket(
                access,
                found,
                viewer(),
                ops.Changes(title=form.title.data, description=form.description.data or ""),
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash("Ticket updated.", "success")
            return _back(access, found)
    status = 400 if form.is_submitted() else 200
    return render_template(
        "todo/ticket-edit.html", access=access, tracker=access.tracker, ticket=found, form=form
    ), status


@bp.post("/~<owner>/<tracker>/<int:number>/subscribe")
@login_required
def subscribe(owner: str, tracker: str, number: int) -> Any:
    access, found = _load(owner, tracker, number)
    subscriptions.subscribe(viewer(), ticket=found)
    db_session.commit()
    flash(f"You will hear of {found.ref} by mail.", "success")
    return _back(access, found)


@bp.post("/~<owner>/<tracker>/<int:number>/unsubscribe")
@login_required
def unsubscribe(owner: str, tracker: str, number: int) -> Any:
    access, found = _load(owner, tracker, number)
    subscriptions.unsubscribe(viewer(), ticket=found)
    db_session.commit()
    flash(f"You unsubscribed from {found.ref}.", "success")
    return _back(access, found)
