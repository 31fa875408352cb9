"""Your builds settings: secrets (made here, shown once, then only their id),
the repositories whose pushes start jobs, and the lists whose patchsets do."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from srht_core import ChoiceField, Form, Problem, confirm, db_session, login_required, viewer

from .. import gitapi, patchsets, push
from ..access import owned_link, owned_secret
from ..delegation import DelegationUnavailable
from ..models import (
    FILE,
    MAX_SECRET,
    MAX_SECRET_NAME,
    MAX_SECRET_PATH,
    PGP_KEY,
    SSH_KEY,
    ListLink,
    RepositoryHook,
    Secret,
)
from ..secrets import create_secret, delete_secret

bp = Blueprint("settings", __name__)


class SecretForm(Form):
    name = StringField(
        "Name", validators=[Length(max=MAX_SECRET_NAME)], description="For you to recognise it."
    )
    kind = ChoiceField(
        "Kind",
        [
            (FILE, "A file, written where you say"),
            (SSH_KEY, "An SSH private key (~/.ssh/id_...)"),
            (PGP_KEY, "A PGP private key (imported with gpg)"),
        ],
        default=FILE,
    )
    content = TextAreaField(
        "Secret",
        validators=[DataRequired(), Length(max=MAX_SECRET)],
        description="It is sealed at once and never shown again.",
    )
    path = StringField(
        "Path",
        validators=[Length(max=MAX_SECRET_PATH)],
        description="Files only: where it goes in the job, like ~/.netrc.",
    )
    mode = StringField("Mode", default="600", description="Files only: in octal.")


class RepositoryForm(Form):
    repository = StringField(
        "Repository",
        validators=[DataRequired(), Length(max=128)],
        description="The name of one of your repositories on git.",
    )


class ListLinkForm(Form):
    list = StringField(
        "List",
        validators=[DataRequired(), Length(max=200)],
        description="One of your lists on lists: devel, or ~you/devel.",
    )
    repository = StringField(
        "Repository",
        validators=[DataRequired(), Length(max=200)],
        description="The repository its patches apply to, with a build manifest: "
        "hello, or ~owner/hello.",
    )


def _menu(current: str) -> dict[str, Any]:
    return {
        "settings_menu": [
            ("secrets", "Secrets", url_for("settings.secrets")),
            ("repositories", "Repositories", url_for("settings.repositories")),
            ("lists", "Lists", url_for("settings.lists")),
        ],
        "section": current,
    }


@bp.route("/secrets", methods=["GET", "POST"])
@login_required
def secrets() -> ResponseReturnValue:
    user = viewer()
    form = SecretForm()
    made = None
    if form.validate_on_submit():
        try:
            made = create_secret(
                user,
                form.kind.data,
                (form.content.data or "").replace("\r\n", "\n").encode(),
                name=form.name.data or "",
                path=form.path.data,
                mode=form.mode.data,
            )
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            form = SecretForm(formdata=None)
    listed = db_session.scalars(
        sa.select(Secret).where(Secret.owner_id == user.id).order_by(Secret.id.desc())
    ).all()
    status = 400 if form.errors else 200
    return render_template(
        "builds/settings-secrets.html", form=form, secrets=listed, made=made, **_menu("secrets")
    ), status


@bp.route("/secrets/<uuid>/delete", methods=["GET", "POST"])
@login_required
def delete(uuid: str) -> ResponseReturnValue:
    secret = owned_secret(uuid, viewer())
    question = confirm(
        f"Delete the secret {secret.name or secret.uuid}?",
        "Jobs that ask for it by its id will run without it.",
        cancel=url_for("settings.secrets"),
    )
    if question is not None:
        return question
    delete_secret(secret)
    db_session.commit()
    flash(f"Secret {secret.uuid} deleted.", "success")
    return redirect(url_for("settings.secrets"))


@bp.route("/repositories", methods=["GET", "POST"])
@login_required
def repositories() -> ResponseReturnValue:
    user = viewer()
    form = RepositoryForm()
    if form.validate_on_submit():
        name = (form.repository.data or "").strip().removeprefix(f"~{user.username}/")
        exists = db_session.scalar(
            sa.select(RepositoryHook).where(
                RepositoryHook.owner_id == user.id, RepositoryHook.repository == name
            )
        )
        if exists is not None:
            form.repository.errors = [*form.repository.errors, "Pushes to it start jobs already."]
        else:
            try:
                hook = push.enable(user, name)
                db_session.commit()
            except (gitapi.GitUnavailable, DelegationUnavailable) as error:
                db_session.rollback()
                form.repository.errors = [*form.repository.errors, f"git said no: {error}."]
            else:
                flash(f"Pushes to {hook.ref} now start its jobs.", "success")
                return redirect(url_for("settings.repositories"))
    hooks = db_session.scalars(
        sa.select(RepositoryHook)
        .where(RepositoryHook.owner_id == user.id)
        .order_by(RepositoryHook.repository)
    ).all()
    status = 400 if form.errors else 200
    return render_template(
        "builds/settings-repositories.html", form=form, hooks=hooks, **_menu("repositories")
    ), status


@bp.route("/repositories/<int:hook_id>/delete", methods=["GET", "POST"])
@login_required
def disable(hook_id: int) -> ResponseReturnValue:
    hook = db_session.get(RepositoryHook, hook_id)
    if hook is None or hook.owner_id != viewer().id:
        from flask import abort

        abort(404, "You have no such repository here.")
    question = confirm(
        f"Stop building {hook.ref} on push?",
        "The webhook on git is removed; its jobs so far stay.",
        cancel=url_for("settings.repositories"),
        button="Stop",
    )
    if question is not None:
        return question
    try:
        push.disable(hook)
        db_session.commit()
    except (gitapi.GitUnavailable, DelegationUnavailable) as error:
        db_session.rollback()
        flash(f"git could not remove the webhook: {error}.", "error")
    else:
        flash(f"Pushes to {hook.ref} no longer start jobs.", "success")
    return redirect(url_for("settings.repositories"))


@bp.route("/lists", methods=["GET", "POST"])
@login_required
def lists() -> ResponseReturnValue:
    user = viewer()
    form = ListLinkForm()
    if form.validate_on_submit():
        try:
            made = patchsets.link(user, form.list.data or "", form.repository.data or "")
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(
                f"Patchsets on {made.list_ref} now start the jobs of {made.repository}.",
                "success",
            )
            return redirect(url_for("settings.lists"))
    links = db_session.scalars(
        sa.select(ListLink).where(ListLink.owner_id == user.id).order_by(ListLink.list_name)
    ).all()
    status = 400 if form.errors else 200
    return render_template(
        "builds/settings-lists.html", form=form, links=links, **_menu("lists")
    ), status


@bp.route("/lists/<int:link_id>/delete", methods=["GET", "POST"])
@login_required
def unlink(link_id: int) -> ResponseReturnValue:
    found = owned_link(link_id, viewer())
    question = confirm(
        f"Stop building patchsets of {found.list_ref}?",
        "The webhook on lists is removed; its jobs so far stay.",
        cancel=url_for("settings.lists"),
        button="Stop",
    )
    if question is not None:
        return question
    try:
        patchsets.unlink(found)
        db_session.commit()
    except Problem as problem:
        db_session.rollback()
        flash(f"lists could not remove the webhook: {problem}", "error")
    else:
        flash(f"Patchsets on {found.list_ref} no longer start jobs.", "success")
    return redirect(url_for("settings.lists"))
