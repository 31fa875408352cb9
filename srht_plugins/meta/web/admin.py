"""Administration: find users, suspend them with a notice, lift a
suspension, delete them.

Only admins see these pages; to anyone else signed in they do not exist
(404; see :mod:`..access`). Suspending and deleting go through
:mod:`..accounts`, which audits the change and tells every other service.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from srht_core import confirm, db_session, paginate, viewer

from ..access import admin_required
from ..accounts import audit, delete_user, set_user_type
from ..forms import SuspendForm
from ..models import ACTIVE, SUSPENDED, AuditLogEntry, PersonalAccessToken, PGPKey, SSHKey, User
from .common import status_of

bp = Blueprint("admin", __name__, url_prefix="/admin")

MAX_SEARCH = 256


def _user(username: str) -> User:
    user = db_session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        abort(404, f"No user ~{username} here.")
    return user


def _not_myself(user: User, refusal: str) -> Any:
    """A redirect back to ``user``'s page saying ``refusal``, if that is the
    admin's own account."""
    if user.id != viewer().id:
        return None
    flash(refusal, "error")
    return redirect(url_for("admin.user_detail", username=user.username))


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


def _counts(user: User) -> dict[str, int]:
    """How many keys and live (unrevoked) tokens ``user`` has, by what they are."""

    def count(model: type[SSHKey] | type[PGPKey] | type[PersonalAccessToken], *where: Any) -> int:
        query = sa.select(sa.func.count(model.id)).where(model.user_id == user.id, *where)
        return db_session.scalar(query) or 0

    return {
        "SSH keys": count(SSHKey),
        "PGP keys": count(PGPKey),
        "Personal access tokens": count(
            PersonalAccessToken, PersonalAccessToken.revoked_at.is_(None)
        ),
    }


def _detail(user: User, suspend_form: SuspendForm | None = None) -> Any:
    events = db_session.scalars(
        sa.select(AuditLogEntry)
        .where(AuditLogEntry.user_id == user.id)
        .order_by(AuditLogEntry.created.desc(), AuditLogEntry.id.desc())
        .limit(20)
    ).all()
    form = suspend_form or SuspendForm(formdata=None)
    return render_template(
        "meta/admin/user.html",
        user=user,
        counts=_counts(user),
        events=events,
        suspend_form=form,
        myself=user.id == viewer().id,
    ), status_of(form)


@bp.get("/users/<username>")
@admin_required
def user_detail(username: str) -> Any:
    return _detail(_user(username))


@bp.post("/users/<username>/suspend")
@admin_required
def suspend(username: str) -> Any:
    user = _user(username)
    if (back := _not_myself(user, "You cannot suspend your own account.")) is not None:
        return back
    form = SuspendForm()
    if form.validate_on_submit():
        set_user_type(user, SUSPENDED, form.notice.data.strip())
        audit(viewer(), "admin: user suspended", user.canonical_name)
        db_session.commit()
        flash(
            f"{user.canonical_name} is suspended: signed out everywhere and unable to log in.",
            "success",
        )
        return redirect(url_for("admin.user_detail", username=user.username))
    return _detail(user, form)


@bp.post("/users/<username>/unsuspend")
@admin_required
def unsuspend(username: str) -> Any:
    user = _user(username)
    if user.user_type == SUSPENDED:
        set_user_type(user, ACTIVE)
        audit(viewer(), "admin: suspension lifted", user.canonical_name)
        db_session.commit()
        flash(f"{user.canonical_name} may log in again.", "success")
    return redirect(url_for("admin.user_detail", username=user.username))


@bp.route("/users/<username>/delete", methods=["GET", "POST"])
@admin_required
def delete(username: str) -> Any:
    user = _user(username)
    if (back := _not_myself(user, "You cannot delete your own account here.")) is not None:
        return back
    counts = ", ".join(f"{n} {label}" for label, n in _counts(user).items())
    question = confirm(
        f"Delete {user.canonical_name}?",
        f"The account is deleted here and on every service of this site, with what it "
        f"holds ({counts}, its OAuth clients and grants, its audit log). Everything signed "
        "in as this user is signed out.",
        "This cannot be undone.",
        cancel=url_for("admin.user_detail", username=user.username),
        button=f"Delete {user.canonical_name}",
        typed=user.username,
    )
    if question is not None:
        return question
    name = user.canonical_name
    audit(viewer(), "admin: user deleted", name)
    delete_user(user)
    db_session.commit()
    flash(f"{name} is deleted, here and on every service.", "success")
    return redirect(url_for("admin.users"))
