"""A repository's settings, for its owner only, one page per section
beside the settings menu: details (description, visibility, default
branch), name, access grants, and deletion. Taking access away and
deleting ask first (:func:`srht_core.confirm`). Everyone else gets the
404 of a missing repository.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse
from wtforms import RadioField, SelectField, StringField, TextAreaField

from srht_core import Form, confirm, db_session, login_required

from ..access import grants_of, mode_label
from ..models import MODES, PRIVATE, READ, VISIBILITIES, User
from ..plumbing import GitError
from ..repos import (
    MAX_DESCRIPTION,
    RepoProblem,
    default_branch,
    delete_repository,
    find_user,
    grant_access,
    open_repository,
    update_repository,
)
from .common import Viewing, owned, repository_page
from .repos import VISIBILITY_HELP, show_problem

bp = Blueprint("git_settings", __name__)

#: What each access mode allows, beside its radio button.
MODE_HELP = {"ro": "Browse, clone and fetch.", "rw": "Also push."}


class DetailsForm(Form):
    description = TextAreaField(
        "Description", description=f"What it is, in at most {MAX_DESCRIPTION} characters."
    )
    visibility = RadioField(
        "Visibility", validate_choice=False, choices=[(v, v.capitalize()) for v in VISIBILITIES]
    )
    default_branch = SelectField(
        "Default branch",
        validate_choice=False,
        description="The branch the summary shows and clones check out.",
    )


class RenameForm(Form):
    name = StringField(
        "New name",
        description="The old name keeps leading here (web, clone and push) until you make "
        "another repository with it.",
    )


class GrantForm(Form):
    username = StringField(
        "User", description="Their username; they must have signed in here once."
    )
    mode = RadioField(
        "Access",
        default=READ,
        validate_choice=False,
        choices=[(m, mode_label(m).capitalize()) for m in MODES],
    )


def _url(endpoint: str, view: Viewing) -> str:
    return url_for(endpoint, username=view.owner.username, name=view.repository.name)


def _to(endpoint: str, view: Viewing) -> BaseResponse:
    return redirect(_url(endpoint, view), code=303)


def _page(
    template: str, view: Viewing, section: str, status: int = 200, **context: Any
) -> Response:
    return repository_page(template, view, status=status, section=section, **context)


# -- details ---------------------------------------------------------------------------------


@bp.route("/~<username>/<name>/settings", methods=["GET", "POST"])
@login_required
def details(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    repository = view.repository
    current = default_branch(repository)
    form = DetailsForm(
        data={
            "description": repository.description or "",
            "visibility": repository.visibility,
            "default_branch": current,
        }
    )
    try:
        branches = open_repository(repository).branches()
    except GitError:
        branches = []
    form.default_branch.choices = [(b, b) for b in branches] or [("", "(nothing pushed yet)")]
    if form.validate_on_submit():
        branch = form.default_branch.data or None
        try:
            update_repository(
                repository,
                view.owner,
                description=(form.description.data or "").strip(),
                visibility=form.visibility.data or "",
                default_branch=branch if branch != current else None,
            )
        except RepoProblem as problem:
            db_session.rollback()
            show_problem(form, problem)
        else:
            flash("Settings saved.", "success")
            return _to("git_settings.details", view)
    status = 400 if form.is_submitted() else 200
    return _page(
        "git/settings-details.html", view, "details", status, form=form, help=VISIBILITY_HELP
    )


# -- name --------------------------------------------------------------------------------------


@bp.route("/~<username>/<name>/settings/rename", methods=["GET", "POST"])
@login_required
def rename(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    form = RenameForm(data={"name": view.repository.name})
    if form.validate_on_submit():
        old = view.repository.name
        try:
            update_repository(view.repository, view.owner, name=(form.name.data or "").strip())
        except RepoProblem as problem:
            db_session.rollback()
            show_problem(form, problem)
        else:
            if old != view.repository.name:
                flash(
                    f"Renamed to {view.repository.name}. The old URL leads here until you "
                    f"make another repository named {old}.",
                    "success",
                )
            return _to("git_settings.rename", view)
    status = 400 if form.is_submitted() else 200
    return _page("git/settings-rename.html", view, "rename", status, form=form)


# -- access ------------------------------------------------------------------------------------


def _access_page(view: Viewing, form: GrantForm, status: int = 200) -> Response:
    grants = db_session.scalars(grants_of(view.repository).order_by(User.username)).all()
    return _page(
        "git/settings-access.html",
        view,
        "access",
        status,
        form=form,
        grants=grants,
        mode_label=mode_label,
        help=MODE_HELP,
    )


@bp.get("/~<username>/<name>/settings/access")
@login_required
def access(username: str, name: str) -> ResponseReturnValue:
    return _access_page(owned(username, name), GrantForm(formdata=None))


@bp.post("/~<username>/<name>/settings/access")
@login_required
def grant(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    form = GrantForm()
    if form.validate_on_submit():
        try:
            user = find_user(form.username.data or "")
            grant_access(view.repository, user, form.mode.data)
        except RepoProblem as problem:
            db_session.rollback()
            show_problem(form, problem)
        else:
            flash(f"{user.canonical_name} now has {mode_label(form.mode.data)} access.", "success")
            return _to("git_settings.access", view)
    return _access_page(view, form, 400)


@bp.route("/~<username>/<name>/settings/access/<grantee>/remove", methods=["GET", "POST"])
@login_required
def remove_access(username: str, name: str, grantee: str) -> ResponseReturnValue:
    view = owned(username, name)
    found = db_session.scalars(
        grants_of(view.repository).where(User.username == grantee.lstrip("~"))
    ).first()
    if found is None:
        abort(404, f"~{grantee.lstrip('~')} has no access to {view.ref} to take away.")
    user = found.user
    now = "read and push to it" if found.mode != READ else "read it"
    after = (
        "Afterwards they cannot see it at all: it is private."
        if view.repository.visibility == PRIVATE
        else "Afterwards they can only read it, as anyone can."
    )
    question = confirm(
        f"Take {user.canonical_name}'s access to {view.ref} away?",
        f"{user.canonical_name} can {now} now. {after}",
        cancel=_url("git_settings.access", view),
        button="Take access away",
    )
    if question is not None:
        return question
    grant_access(view.repository, user, None)
    flash(f"{user.canonical_name} no longer has access.", "success")
    return _to("git_settings.access", view)


# -- deletion ------------------------------------------------------------------------------------


@bp.route("/~<username>/<name>/settings/delete", methods=["GET", "POST"])
@login_required
def delete(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    question = confirm(
        f"Delete {view.ref}?",
        "The repository, its whole history, its access grants and webhooks are deleted for "
        "good; clones elsewhere keep their copy. This cannot be undone.",
        cancel=_url("git_settings.details", view),
        button="Delete the repository",
        typed=view.repository.name,
    )
    if question is not None:
        return question
    delete_repository(view.repository)
    flash(f"{view.ref} is deleted.", "success")
    return redirect(url_for("git.user_repositories", username=view.owner.username), code=303)
