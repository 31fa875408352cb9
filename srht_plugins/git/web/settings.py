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

from srht_core import Form, Problem, confirm, db_session, login_required

from ..access import grants_of, mode_label
from ..forms import GrantForm, RenameForm, details_form
from ..models import PRIVATE, READ, User
from ..plumbing import GitError
from ..repos import (
    default_branch,
    delete_repository,
    find_user,
    grant_access,
    open_repository,
    update_repository,
)
from .common import Viewing, owned, repository_page

bp = Blueprint("git_settings", __name__)


def _url(endpoint: str, view: Viewing) -> str:
    return url_for(endpoint, username=view.owner.username, name=view.repository.name)


def _to(endpoint: str, view: Viewing) -> BaseResponse:
    return redirect(_url(endpoint, view), code=303)


def _page(template: str, view: Viewing, form: Form, **context: Any) -> Response:
    """A settings page (its template names its section of the menu); 400
    when it shows a form that was sent back."""
    status = 400 if form.is_submitted() else 200
    return repository_page(template, view, status=status, form=form, **context)


# -- details ---------------------------------------------------------------------------------


@bp.route("/~<username>/<name>/settings", methods=["GET", "POST"])
@login_required
def details(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    repository = view.repository
    current = default_branch(repository)
    try:
        branches = open_repository(repository).branches()
    except GitError:
        branches = []
    form = details_form(
        branches,
        description=repository.description or "",
        visibility=repository.visibility,
        default_branch=current or "",
    )
    if form.validate_on_submit():
        branch = form.default_branch.data or None
        try:
            update_repository(
                repository,
                view.owner,
                description=(form.description.data or "").strip(),
                visibility=form.visibility.data,
                default_branch=branch if branch != current else None,
            )
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash("Settings saved.", "success")
            return _to("git_settings.details", view)
    return _page("git/settings-details.html", view, form)


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
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            if old != view.repository.name:
                flash(
                    f"Renamed to {view.repository.name}. The old URL leads here until you "
                    f"make another repository named {old}.",
                    "success",
                )
            return _to("git_settings.rename", view)
    return _page("git/settings-rename.html", view, form)


# -- access ------------------------------------------------------------------------------------


@bp.route("/~<username>/<name>/settings/access", methods=["GET", "POST"])
@login_required
def access(username: str, name: str) -> ResponseReturnValue:
    view = owned(username, name)
    form = GrantForm()
    if form.validate_on_submit():
        try:
            user = find_user(form.username.data or "")
            grant_access(view.repository, user, form.mode.data)
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"{user.canonical_name} now has {mode_label(form.mode.data)} access.", "success")
            return _to("git_settings.access", view)
    grants = db_session.scalars(grants_of(view.repository).order_by(User.username)).all()
    return _page("git/settings-access.html", view, form, grants=grants, mode_label=mode_label)


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
