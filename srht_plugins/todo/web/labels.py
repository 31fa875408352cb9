"""A tracker's labels: the list, creating one, deleting one (after asking)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for

from srht_core import Problem, confirm, db_session

from .. import labels as ops
from ..access import TRIAGE, tracker_for
from ..forms import LabelForm
from ..models import Label

bp = Blueprint("labels", __name__)


def render_labels(access: Any, form: LabelForm | None = None, status: int = 200) -> Any:
    labels = db_session.scalars(
        sa.select(Label).where(Label.tracker_id == access.tracker.id).order_by(Label.name)
    ).all()
    return render_template(
        "todo/labels.html",
        access=access,
        tracker=access.tracker,
        labels=labels,
        form=form or LabelForm(formdata=None),
        can_triage=access.can(TRIAGE),
    ), status


@bp.get("/~<owner>/<tracker>/labels")
def labels(owner: str, tracker: str) -> Any:
    return render_labels(tracker_for(owner, tracker))


@bp.post("/~<owner>/<tracker>/labels")
def create_label(owner: str, tracker: str) -> Any:
    access = tracker_for(owner, tracker)
    access.require(TRIAGE, "manage labels")
    form = LabelForm()
    if form.validate_on_submit():
        try:
            label = ops.create_label(access, form.name.data, form.color.data)
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"Label {label.name} created.", "success")
            return redirect(url_for("labels.labels", owner=owner, tracker=tracker))
    return render_labels(access, form, 400)


@bp.route("/~<owner>/<tracker>/labels/<int:label_id>/delete", methods=["GET", "POST"])
def delete_label(owner: str, tracker: str, label_id: int) -> Any:
    access = tracker_for(owner, tracker)
    access.require(TRIAGE, "manage labels")
    label = db_session.get(Label, label_id)
    if label is None or label.tracker_id != access.tracker.id:
        abort(404, f"{access.tracker.ref} has no label {label_id}.")
    question = confirm(
        f"Delete the label {label.name} of {access.tracker.ref}?",
        "It is taken off every ticket that has it. The tickets stay.",
        cancel=url_for("labels.labels", owner=owner, tracker=tracker),
    )
    if question is not None:
        return question
    ops.delete_label(access, label)
    db_session.commit()
    flash(f"Label {label.name} deleted.", "success")
    return redirect(url_for("labels.labels", owner=owner, tracker=tracker))
