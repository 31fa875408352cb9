"""The signed-in user's SSH and PGP public keys: list, add, remove; and
anyone's SSH keys as a text file (``/~user.keys``).

A key is parsed before anything is stored and belongs to one account
site-wide (:mod:`..keys`). Another user's key id answers 404.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from srht_core import confirm, db_session, login_required, viewer

from ..access import own_key
from ..forms import PGPKeyForm, SSHKeyForm
from ..keys import KeyProblem, add_pgp_key, add_ssh_key, commit_key, remove_key
from ..models import PGPKey, SSHKey, User

bp = Blueprint("keys", __name__)


def _page(
    status: int = 200, ssh_form: SSHKeyForm | None = None, pgp_form: PGPKeyForm | None = None
) -> Any:
    user: User = viewer()
    ssh_keys = db_session.scalars(
        sa.select(SSHKey).where(SSHKey.user_id == user.id).order_by(SSHKey.id)
    ).all()
    pgp_keys = db_session.scalars(
        sa.select(PGPKey).where(PGPKey.user_id == user.id).order_by(PGPKey.id)
    ).all()
    return render_template(
        "meta/keys.html",
        user=user,
        ssh_keys=ssh_keys,
        pgp_keys=pgp_keys,
        ssh_form=ssh_form or SSHKeyForm(prefix="ssh", formdata=None),
        pgp_form=pgp_form or PGPKeyForm(prefix="pgp", formdata=None),
    ), status


def _add(form: SSHKeyForm | PGPKeyForm, add: Any, kind: str) -> Any:
    if form.validate_on_submit():
        try:
            key = add(viewer(), form.key.data)
            commit_key()
        except KeyProblem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"{kind} key {key.fingerprint} added.", "success")
            return redirect(url_for("keys.index"))
    return _page(400, **{f"{kind.lower()}_form": form})


def _remove(model: type[SSHKey] | type[PGPKey], key_id: int, kind: str) -> Any:
    key = own_key(model, key_id, viewer())
    uses = (
        "git over SSH no longer accepts it for your account, on every service."
        if model is SSHKey
        else "Mail signed with it is no longer recognised as yours."
    )
    question = confirm(
        f"Remove the {kind} key {key.fingerprint}?",
        uses,
        "You can add it again later.",
        cancel=url_for("keys.index"),
        button="Remove",
    )
    if question is not None:
        return question
    remove_key(key)
    db_session.commit()
    flash(f"{kind} key {key.fingerprint} removed.", "success")
    return redirect(url_for("keys.index"))


@bp.get("/keys")
@login_required
def index() -> Any:
    return _page()


@bp.route("/keys/ssh", methods=["GET", "POST"])
@login_required
def add_ssh() -> Any:
    if request.method == "GET":
        # Where a form with a problem was shown: a reload comes back to the keys.
        return redirect(url_for("keys.index"))
    return _add(SSHKeyForm(prefix="ssh"), add_ssh_key, "SSH")


@bp.route("/keys/ssh/<int:key_id>/delete", methods=["GET", "POST"])
@login_required
def delete_ssh(key_id: int) -> Any:
    return _remove(SSHKey, key_id, "SSH")


@bp.route("/keys/pgp", methods=["GET", "POST"])
@login_required
def add_pgp() -> Any:
    if request.method == "GET":
        # Where a form with a problem was shown: a reload comes back to the keys.
        return redirect(url_for("keys.index"))
    return _add(PGPKeyForm(prefix="pgp"), add_pgp_key, "PGP")


@bp.route("/keys/pgp/<int:key_id>/delete", methods=["GET", "POST"])
@login_required
def delete_pgp(key_id: int) -> Any:
    return _remove(PGPKey, key_id, "PGP")


@bp.get("/~<username>.keys")
def ssh_keys(username: str) -> Any:
    """A user's SSH public keys, one per line (like GitHub's ``.keys``)."""
    user = db_session.scalar(sa.select(User).where(User.username == username))
    if user is None or user.is_suspended:
        abort(404, f"No user ~{username} here.")
    keys = db_session.scalars(
        sa.select(SSHKey.key).where(SSHKey.user_id == user.id).order_by(SSHKey.id)
    )
    return Response("".join(k.strip() + "\n" for k in keys), mimetype="text/plain")
