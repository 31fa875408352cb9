"""Repositories as things people make and manage: the index, the create
form, a user's list, and a repository's settings (description, visibility,
default branch, name, access grants) and deletion, for its owner only.

Pages work without JavaScript. Settings of a repository answer 404 to
everyone but its owner.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import contains_eager
from wtforms import RadioField, SelectField, StringField, TextAreaField

from srht_core import Form, db_session, login_required, paginate

from ..access import listed_for, mode_label
from ..models import MODES, PUBLIC, VISIBILITIES, AccessGrant, Repository, User
from ..plumbing import GitError
from ..repos import (
    RepoProblem,
    clone_urls,
    create_repository,
    default_branch,
    delete_repository,
    grant_access,
    open_repository,
    update_repository,
)
from .common import Viewing, viewer, viewing

bp = Blueprint("git", __name__)

VISIBILITY_HELP = {
    "public": "anyone can see and clone it, and it is listed on your page",
    "unlisted": "anyone with the link can see and clone it",
    "private": "only you and those you give access can see it",
}
MODE_HELP = {"ro": "read: browse, clone and fetch", "rw": "read and write: also push"}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class CreateForm(Form):
    name = StringField("Name", filters=[_strip])
    description = TextAreaField("Description", filters=[_strip])
    visibility = RadioField(
        "Visibility", default=PUBLIC, validate_choice=False, choices=list(VISIBILITIES)
    )


class SettingsForm(Form):
    description = TextAreaField("Description", filters=[_strip])
    visibility = RadioField("Visibility", validate_choice=False, choices=list(VISIBILITIES))
    default_branch = SelectField("Default branch", validate_choice=False)


class RenameForm(Form):
    name = StringField("New name", filters=[_strip])


class GrantForm(Form):
    username = StringField("User", filters=[_strip])
    mode = RadioField("Access", default="ro", validate_choice=False, choices=list(MODES))


class ConfirmForm(Form):
    """Nothing but the CSRF token: the confirmation is the button."""


def _show(form: Form, problem: RepoProblem) -> None:
    field = getattr(form, problem.field, None)
    if field is not None:
        field.errors = [*field.errors, problem.reason]
    else:
        flash(problem.reason, "error")


@bp.get("/")
def index() -> Any:
    user = viewer()
    mine = []
    if user is not None:
        mine = db_session.scalars(listed_for(user, user).limit(50)).all()
    recent = db_session.scalars(
        sa.select(Repository)
        .join(Repository.owner)
        .options(contains_eager(Repository.owner))
        .where(Repository.visibility == PUBLIC, Repository.pushed_at.is_not(None))
        .order_by(Repository.pushed_at.desc())
        .limit(20)
    ).all()
    return render_template("git/index.html", mine=mine, recent=recent)


def _create_page(form: CreateForm, status: int = 200) -> Any:
    return render_template("git/create.html", form=form, visibility_help=VISIBILITY_HELP), status


@bp.route("/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    form = CreateForm()
    if request.method == "GET":
        return _create_page(form)
    if not form.validate_on_submit():
        return _create_page(form, 400)
    user = viewer()
    assert user is not None
    try:
        repository = create_repository(
            user, form.name.data or "", form.description.data, form.visibility.data or ""
        )
    except RepoProblem as problem:
        _show(form, problem)
        return _create_page(form, 400)
    return redirect(
        url_for("git_browse.summary", username=user.username, name=repository.name), code=303
    )


@bp.get("/~<username>")
def user_repositories(username: str) -> Any:
    owner = db_session.scalar(sa.select(User).where(User.username == username))
    if owner is None:
        abort(404)
    user = viewer()
    page = paginate(db_session, listed_for(owner, user), per_page=25)
    return render_template(
        "git/user.html", owner=owner, page=page, is_owner=user is not None and user.id == owner.id
    )


# -- settings ------------------------------------------------------------------------------


def _owned(username: str, name: str) -> Viewing:
    view = viewing(username, name)
    if not view.is_owner:
        abort(404)
    return view


def _grants(repository: Repository) -> list[AccessGrant]:
    return list(
        db_session.scalars(
            sa.select(AccessGrant)
            .join(AccessGrant.user)
            .options(contains_eager(AccessGrant.user))
            .where(AccessGrant.repository_id == repository.id)
            .order_by(User.username)
        ).all()
    )


def _settings_page(
    view: Viewing,
    status: int = 200,
    *,
    settings: SettingsForm | None = None,
    rename: RenameForm | None = None,
    grant: GrantForm | None = None,
) -> Any:
    repository = view.repository
    try:
        branches = open_repository(repository).branches()
    except GitError:
        branches = []
    if settings is None:
        settings = SettingsForm(
            formdata=None,
            description=repository.description or "",
            visibility=repository.visibility,
            default_branch=default_branch(repository),
        )
    settings.default_branch.choices = [(b, b) for b in branches] or [("", "(nothing pushed yet)")]
    http_url, ssh_url = clone_urls(view.owner.username, repository.name)
    return render_template(
        "git/settings.html",
        view=view,
        repository=repository,
        owner=view.owner,
        settings=settings,
        rename=rename or RenameForm(formdata=None, name=repository.name),
        grant=grant or GrantForm(formdata=None),
        grants=_grants(repository),
        visibility_help=VISIBILITY_HELP,
        mode_help=MODE_HELP,
        mode_label=mode_label,
        confirm=ConfirmForm(formdata=None),
        http_url=http_url,
        ssh_url=ssh_url,
    ), status


@bp.route("/~<username>/<name>/settings", methods=["GET", "POST"])
@login_required
def settings(username: str, name: str) -> Any:
    view = _owned(username, name)
    if request.method == "GET":
        return _settings_page(view)
    form = SettingsForm()
    if not form.validate_on_submit():
        return _settings_page(view, 400, settings=form)
    branch = form.default_branch.data or None
    try:
        update_repository(
            view.repository,
            view.owner,
            description=form.description.data or "",
            visibility=form.visibility.data or "",
            default_branch=branch if branch != default_branch(view.repository) else None,
        )
    except RepoProblem as problem:
        db_session.rollback()
        _show(form, problem)
        return _settings_page(view, 400, settings=form)
    flash("Settings saved.", "success")
    return redirect(
        url_for("git.settings", username=view.owner.username, name=view.repository.name), code=303
    )


@bp.post("/~<username>/<name>/settings/rename")
@login_required
def rename(username: str, name: str) -> Any:
    view = _owned(username, name)
    form = RenameForm()
    if not form.validate_on_submit():
        return _settings_page(view, 400, rename=form)
    old = view.repository.name
    try:
        update_repository(view.repository, view.owner, name=form.name.data or "")
    except RepoProblem as problem:
        db_session.rollback()
        _show(form, problem)
        return _settings_page(view, 400, rename=form)
    if old != view.repository.name:
        flash(
            f"Renamed to {view.repository.name}. The old URL leads here until you make "
            f"another repository named {old}.",
            "success",
        )
    return redirect(
        url_for("git.settings", username=view.owner.username, name=view.repository.name), code=303
    )


@bp.post("/~<username>/<name>/settings/access")
@login_required
def add_access(username: str, name: str) -> Any:
    view = _owned(username, name)
    form = GrantForm()
    if not form.validate_on_submit():
        return _settings_page(view, 400, grant=form)
    grantee_name = (form.username.data or "").lstrip("~")
    grantee = db_session.scalar(sa.select(User).where(User.username == grantee_name))
    if grantee is None:
        form.username.errors = [
            f"No user ~{grantee_name} is known here yet: they must sign "
            "in to this git service once."
        ]
        return _settings_page(view, 400, grant=form)
    try:
        grant_access(view.repository, grantee, form.mode.data)
    except RepoProblem as problem:
        db_session.rollback()
        _show(form, problem)
        return _settings_page(view, 400, grant=form)
    flash(f"{grantee.canonical_name} now has {mode_label(form.mode.data)} access.", "success")
    return redirect(
        url_for("git.settings", username=view.owner.username, name=view.repository.name), code=303
    )


@bp.post("/~<username>/<name>/settings/access/<grantee>/remove")
@login_required
def remove_access(username: str, name: str, grantee: str) -> Any:
    view = _owned(username, name)
    form = ConfirmForm()
    user = db_session.scalar(sa.select(User).where(User.username == grantee))
    if not form.validate_on_submit() or user is None:
        abort(400)
    grant_access(view.repository, user, None)
    flash(f"{user.canonical_name} no longer has access.", "success")
    return redirect(
        url_for("git.settings", username=view.owner.username, name=view.repository.name), code=303
    )


@bp.route("/~<username>/<name>/delete", methods=["GET", "POST"])
@login_required
def delete(username: str, name: str) -> Any:
    view = _owned(username, name)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        delete_repository(view.repository)
        flash(f"{view.repository.name} is deleted.", "success")
        return redirect(url_for("git.user_repositories", username=view.owner.username), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template(
        "git/delete.html", view=view, repository=view.repository, owner=view.owner, form=form
    ), status
