"""Administration: find users, suspend them with a notice, lift a
suspension, delete them.

Only admins see these pages; to anyone else signed in they do not exist
(404). Suspending and deleting go through :mod:`..accounts`, which audits
the change and tells every other service.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

from srht_core import Form, current_user, db_session, login_required, paginate

from ..accounts import audit, delete_user, set_user_type
from ..forms import ConfirmForm
from ..models import (
    ACTIVE,
    SUSPENDED,
    AuditLogEntry,
    PersonalAccessToken,
    PGPKey,
    SSHKey,
    User,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")
F = TypeVar("F", bound=Callable[..., Any])

MAX_SEARCH = 256


class SuspendForm(Form):
    notice = TextAreaField(
        "Notice shown to the user",
        validators=[
            InputRequired(message="Say why, so the user knows what happened."),
            Length(max=4096),
        ],
    )


def admin_required(view: F) -> F:
    """Signed-in admins only; to everyone else signed in, the page does not exist."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _user(username: str) -> User:
    user = db_session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        abort(404)
    return user


@bp.get("/")
@bp.get("/users")
@admin_required
def users() -> Any:
    query = request.args.get("q", "").strip()[:MAX_SEARCH]
    stmt = sa.select(User).order_by(User.username, User.id)
    if query:
        stmt = stmt.where(
            sa.or_(
                User.username.icontains(query, autoescape=True),
                User.email.icontains(query, autoescape=True),
            )
        )
    return render_template(
        "meta/admin/users.html", page=paginate(db_session, stmt, per_page=50), query=query
    )


def _detail(user: User, status: int = 200, suspend_form: SuspendForm | None = None) -> Any:
    counts: dict[str, type[SSHKey] | type[PGPKey] | type[PersonalAccessToken]] = {
        "SSH keys": SSHKey,
        "PGP keys": PGPKey,
        "personal access tokens": PersonalAccessToken,
    }
    numbers = {
        label: db_session.scalar(sa.select(sa.func.count(model.id)).where(model.user_id == user.id))
        or 0
        for label, model in counts.items()
    }
    events = db_session.scalars(
        sa.select(AuditLogEntry)
        .where(AuditLogEntry.user_id == user.id)
        .order_by(AuditLogEntry.created.desc(), AuditLogEntry.id.desc())
        .limit(20)
    ).all()
    return render_template(
        "meta/admin/user.html",
        user=user,
        counts=numbers,
        events=events,
        suspend_form=suspend_form or SuspendForm(formdata=None),
        myself=user.id == _me().id,
    ), status


@bp.get("/users/<username>")
@admin_required
def user_detail(username: str) -> Any:
    return _detail(_user(username))


@bp.post("/users/<username>/suspend")
@admin_required
def suspend(username: str) -> Any:
    user = _user(username)
    if user.id == _me().id:
        flash("You cannot suspend your own account.", "error")
        return redirect(url_for("admin.user_detail", username=user.username))
    form = SuspendForm()
    if form.validate_on_submit():
        set_user_type(user, SUSPENDED, form.notice.data.strip())
        audit(_me(), "admin: user suspended", user.canonical_name)
        db_session.commit()
        flash(
            f"{user.canonical_name} is suspended: signed out everywhere and unable to log in.",
            "success",
        )
        return redirect(url_for("admin.user_detail", username=user.username))
    return _detail(user, 400, form)


@bp.post("/users/<username>/unsuspend")
@admin_required
def unsuspend(username: str) -> Any:
    user = _user(username)
    if user.user_type == SUSPENDED:
        set_user_type(user, ACTIVE)
        audit(_me(), "admin: suspension lifted", user.canonical_name)
        db_session.commit()
        flash(f"{user.canonical_name} may log in again.", "success")
    return redirect(url_for("admin.user_detail", username=user.username))


@bp.route("/users/<username>/delete", methods=["GET", "POST"])
@admin_required
def delete(username: str) -> Any:
    user = _user(username)
    form = ConfirmForm()
    if user.id == _me().id:
        flash("You cannot delete your own account here.", "error")
        return redirect(url_for("admin.user_detail", username=user.username))
    if form.validate_on_submit():
        name = user.canonical_name
        audit(_me(), "admin: user deleted", name)
        delete_user(user)
        db_session.commit()
        flash(f"{name} is deleted, here and on every service.", "success")
        return redirect(url_for("admin.users"))
    status = 400 if form.errors else 200
    return render_template("meta/admin/delete.html", user=user, form=form), status
