"""The signed-in user's SSH and PGP public keys: list, add, remove.

A key is parsed (``..keys``) before anything is stored, and belongs to one
account site-wide: its fingerprint is unique. Another user's key id
answers 404.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from sqlalchemy.exc import IntegrityError
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

from srht_core import Form, current_user, db_session, login_required

from ..accounts import audit
from ..keys import MAX_PGP_LENGTH, MAX_SSH_LENGTH, KeyProblem, parse_pgp_key, parse_ssh_key
from ..models import PGPKey, SSHKey, User

bp = Blueprint("keys", __name__)


class SSHKeyForm(Form):
    key = TextAreaField(
        "SSH public key",
        validators=[
            InputRequired(),
            Length(
                max=MAX_SSH_LENGTH,
                message=f"That is too long for an SSH public key (at most "
                f"{MAX_SSH_LENGTH} characters).",
            ),
        ],
    )


class PGPKeyForm(Form):
    key = TextAreaField(
        "PGP public key",
        validators=[
            InputRequired(),
            Length(
                max=MAX_PGP_LENGTH,
                message=f"That is too long for a PGP public key (at most "
                f"{MAX_PGP_LENGTH // 1024} KiB).",
            ),
        ],
    )


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _page(
    status: int = 200, ssh_form: SSHKeyForm | None = None, pgp_form: PGPKeyForm | None = None
) -> Any:
    user = _me()
    ssh_keys = db_session.scalars(
        sa.select(SSHKey).where(SSHKey.user_id == user.id).order_by(SSHKey.id)
    ).all()
    pgp_keys = db_session.scalars(
        sa.select(PGPKey).where(PGPKey.user_id == user.id).order_by(PGPKey.id)
    ).all()
    return render_template(
        "meta/keys.html",
        ssh_keys=ssh_keys,
        pgp_keys=pgp_keys,
        ssh_form=ssh_form or SSHKeyForm(prefix="ssh", formdata=None),
        pgp_form=pgp_form or PGPKeyForm(prefix="pgp", formdata=None),
    ), status


def _in_use(model: type[SSHKey] | type[PGPKey], fingerprint: str) -> str | None:
    """Why a key with ``fingerprint`` cannot be added, if it is on file."""
    owner = db_session.scalar(sa.select(model.user_id).where(model.fingerprint == fingerprint))
    if owner is None:
        return None
    if owner == _me().id:
        return "You have added this key already."
    return "This key is in use by another account; a key can belong to one account only."


def _commit_new_key(form: Any) -> bool:
    """Commit the key just added; ``False`` (with the error on ``form``) when
    another request stored the same key first."""
    try:
        db_session.commit()
    except IntegrityError:
        db_session.rollback()
        form.key.errors.append("This key was just added to an account.")
        return False
    return True


@bp.get("/keys")
@login_required
def index() -> Any:
    return _page()


@bp.post("/keys/ssh")
@login_required
def add_ssh_key() -> Any:
    user = _me()
    form = SSHKeyForm(prefix="ssh")
    if form.validate_on_submit():
        try:
            key = parse_ssh_key(form.key.data)
        except KeyProblem as problem:
            form.key.errors.append(str(problem))
        else:
            if (reason := _in_use(SSHKey, key.fingerprint)) is not None:
                form.key.errors.append(reason)
            else:
                db_session.add(
                    SSHKey(
                        user_id=user.id,
                        key=key.key,
                        comment=key.comment,
                        fingerprint=key.fingerprint,
                    )
                )
                audit(user, "SSH key added", key.fingerprint)
                if _commit_new_key(form):
                    flash(f"SSH key {key.fingerprint} added.", "success")
                    return redirect(url_for("keys.index"))
    return _page(400, ssh_form=form)


@bp.post("/keys/ssh/<int:key_id>/delete")
@login_required
def delete_ssh_key(key_id: int) -> Any:
    user = _me()
    key = db_session.get(SSHKey, key_id)
    if key is None or key.user_id != user.id:
        abort(404)
    db_session.delete(key)
    audit(user, "SSH key removed", key.fingerprint)
    db_session.commit()
    flash(f"SSH key {key.fingerprint} removed.", "success")
    return redirect(url_for("keys.index"))


@bp.post("/keys/pgp")
@login_required
def add_pgp_key() -> Any:
    user = _me()
    form = PGPKeyForm(prefix="pgp")
    if form.validate_on_submit():
        try:
            key = parse_pgp_key(form.key.data)
        except KeyProblem as problem:
            form.key.errors.append(str(problem))
        else:
            if (reason := _in_use(PGPKey, key.fingerprint)) is not None:
                form.key.errors.append(reason)
            else:
                db_session.add(
                    PGPKey(user_id=user.id, key=key.armored, fingerprint=key.fingerprint)
                )
                audit(user, "PGP key added", key.fingerprint)
                if _commit_new_key(form):
                    flash(f"PGP key {key.fingerprint} added.", "success")
                    return redirect(url_for("keys.index"))
    return _page(400, pgp_form=form)


@bp.post("/keys/pgp/<int:key_id>/delete")
@login_required
def delete_pgp_key(key_id: int) -> Any:
    user = _me()
    key = db_session.get(PGPKey, key_id)
    if key is None or key.user_id != user.id:
        abort(404)
    db_session.delete(key)
    audit(user, "PGP key removed", key.fingerprint)
    db_session.commit()
    flash(f"PGP key {key.fingerprint} removed.", "success")
    return redirect(url_for("keys.index"))
