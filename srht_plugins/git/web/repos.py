"""Repositories as things people make and find: the index (yours and the
recently pushed), the create form, and a user's list."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import contains_eager

from srht_core import Problem, db_session, login_required, paginate, user_named, viewer

from ..access import listed_for
from ..forms import CreateForm
from ..models import PUBLIC, Repository, User
from ..repos import create_repository

bp = Blueprint("git", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    user = viewer()
    mine: list[Repository] = []
    if user is not None:
        mine = list(db_session.scalars(listed_for(user, user).limit(50)).all())
    recent = db_session.scalars(
        sa.select(Repository)
        .join(Repository.owner)
        .options(contains_eager(Repository.owner))
        .where(Repository.visibility == PUBLIC, Repository.pushed_at.is_not(None))
        .order_by(Repository.pushed_at.desc())
        .limit(20)
    ).all()
    return render_template("git/index.html", mine=mine, recent=recent)


@bp.route("/create", methods=["GET", "POST"])
@login_required
def create() -> ResponseReturnValue:
    form = CreateForm()
    if form.validate_on_submit():
        user = viewer()
        try:
            repository = create_repository(
                user,
                (form.name.data or "").strip(),
                (form.description.data or "").strip(),
                form.visibility.data or "",
            )
        except Problem as problem:
            form.show(problem)
        else:
            return redirect(
                url_for("git_browse.summary", username=user.username, name=repository.name),
                code=303,
            )
    status = 400 if form.is_submitted() else 200
    return render_template("git/create.html", form=form), status


@bp.get("/~<username>")
def user_repositories(username: str) -> ResponseReturnValue:
    owner: User | None = user_named(username)
    if owner is None:
        abort(404, f"No user ~{username} here.")
    user = viewer()
    page = paginate(db_session, listed_for(owner, user), per_page=25)
    return render_template(
        "git/user.html", owner=owner, page=page, is_owner=user is not None and user.id == owner.id
    )
