"""Signing up, confirming, logging in and out, resetting passwords."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from srht_core import (
    Form,
    Problem,
    clear_login_cookie,
    confirm,
    current_service,
    db_session,
    is_safe_return_to,
    login_session,
    set_login_cookie,
    utcnow,
    viewer,
)

from ..accounts import (
    AccountError,
    account_locked,
    audit,
    authenticate,
    clear_failed_attempts,
    create_user,
    email_link,
    end_session,
    end_sessions,
    find_user,
    mail_user,
    new_account_problems,
    record_failed_attempt,
    send_confirmation,
    settings,
    start_session,
)
from ..forms import EmailForm, LoginForm, RegisterForm, ResetForm, TotpForm
from ..models import ACTIVE, UNCONFIRMED, PersonalAccessToken, User
from ..passwords import hash_password, password_problem
from ..totp import check_second_factor
from .common import mailed_link, status_of

bp = Blueprint("auth", __name__)

#: Seconds between the password step and the second factor.
PENDING_LOGIN_LIFETIME = 300


def _return_to(default: str | None = None) -> str:
    wanted = request.values.get("return_to")
    # Browsers drop tabs and newlines from a Location ("/\t/evil.example"
    # becomes "//evil.example"), so no control character or space may pass.
    if wanted and wanted.isprintable() and " " not in wanted and is_safe_return_to(wanted):
        return wanted
    return default or url_for("auth.index")


def _signed_in(user: User, return_to: str) -> Response:
    response = make_response(redirect(return_to))
    set_login_cookie(response, user.id, start_session(user).id)
    audit(user, "logged in")
    db_session.commit()
    return response


@bp.route("/")
def index() -> Any:
    user = viewer()
    if user is None:
        return render_template("meta/welcome.html", registration=settings("registration"))
    return render_template("meta/index.html", user=user, **_account_summary(user))


def _account_summary(user: User) -> dict[str, Any]:
    """What the account home shows besides the profile: the keys, the live
    tokens, and the site's other services."""
    now = utcnow()
    tokens = db_session.scalar(
        sa.select(sa.func.count(PersonalAccessToken.id)).where(
            PersonalAccessToken.user_id == user.id,
            PersonalAccessToken.revoked_at.is_(None),
            sa.or_(PersonalAccessToken.expires.is_(None), PersonalAccessToken.expires > now),
        )
    )
    state = current_service()
    elsewhere = [(link.label, link.url) for link in state.nav if link.service != state.service.name]
    return {
        "ssh_keys": len(user.ssh_keys),
        "pgp_keys": len(user.pgp_keys),
        "tokens": tokens or 0,
        "elsewhere": elsewhere,
    }


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    signed_in = viewer()
    if signed_in is not None:
        flash(
            f"You are logged in as {signed_in.username}; log out first to register "
            "another account.",
            "success",
        )
        return redirect(url_for("auth.index"))
    if not settings("registration"):
        return render_template("meta/registration-closed.html"), 403
    form = RegisterForm()
    if form.is_submitted():
        valid = form.validate()
        username = (form.username.data or "").strip()
        email = (form.email.data or "").strip()
        problems = new_account_problems(username, email, form.password.data or "")
        # Every problem at once: the form's own, then what only meta knows
        # (a taken name or address) for the fields the form found no fault in.
        for problem in problems:
            if not form[problem.field].errors:
                form.show(problem)
        if valid and not problems:
            user = create_user(username, email, form.password.data)
            send_confirmation(user)
            db_session.commit()
            return render_template("meta/registered.html", user=user)
    return render_template("meta/register.html", form=form), status_of(form)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm_account(token: str) -> Any:
    """The mailed link shows a button, and the account is confirmed when it
    is pressed: mail scanners that open every link must not use it up."""
    form = Form()
    pressed = form.validate_on_submit()
    user = mailed_link(token, "confirm", use=pressed).user
    if not pressed:
        return render_template(
            "meta/confirm-link.html",
            form=form,
            heading="Confirm your account",
            question=f"Confirm the account {user.username} for {user.email}?",
            button="Confirm my account",
        ), status_of(form)
    if user.user_type == UNCONFIRMED:
        user.user_type = ACTIVE
        user.confirmed_at = utcnow()
        audit(user, "email confirmed")
    db_session.commit()
    flash("Your account is confirmed. Welcome!", "success")
    return _signed_in(user, url_for("auth.index"))


@bp.route("/confirm", methods=["GET", "POST"])
def resend_confirmation() -> Any:
    form = EmailForm()
    if form.validate_on_submit():
        user = find_user(form.email.data)
        if user is not None and user.user_type == UNCONFIRMED:
            send_confirmation(user)
            db_session.commit()
        # The same answer either way, so the form does not reveal who has an account.
        flash("If an unconfirmed account has that address, a new link is on its way.", "success")
        return redirect(url_for("auth.login"))
    return render_template("meta/resend.html", form=form), status_of(form)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    return_to = _return_to()
    if viewer() is not None and request.method == "GET":
        return redirect(return_to)
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(form.username.data, form.password.data)
        except AccountError as failure:
            db_session.commit()  # keep the failed attempt for rate limiting
            error = str(failure)
        else:
            if user.totp_secret:
                session["pending_login"] = {
                    "user": user.id,
                    "at": time.time(),
                    "return_to": return_to,
                }
                db_session.commit()
                return redirect(url_for("auth.login_totp"))
            return _signed_in(user, return_to)
    form.return_to.data = return_to
    return render_template(
        "meta/login.html", form=form, error=error, registration=settings("registration")
    ), 400 if error else status_of(form)


@bp.route("/login/totp", methods=["GET", "POST"])
def login_totp() -> Any:
    pending = session.get("pending_login")
    if not pending or time.time() - pending["at"] > PENDING_LOGIN_LIFETIME:
        session.pop("pending_login", None)
        flash("Please log in again.", "error")
        return redirect(url_for("auth.login"))
    user = db_session.get(User, pending["user"])
    if user is None:
        session.pop("pending_login", None)
        abort(400, "The account you were logging in to no longer exists.")
    form = TotpForm()
    error = None
    if form.validate_on_submit():
        if account_locked(user):
            error = "Too many failed logins for this account; try again in 15 minutes."
        elif check_second_factor(user, form.code.data):
            session.pop("pending_login", None)
            return _signed_in(user, pending["return_to"])
        else:
            # Counted like a wrong password, so six digits cannot be guessed at leisure.
            record_failed_attempt(user, "wrong second factor")
            db_session.commit()
            error = "That code is not right, or was used already. Codes change every 30 seconds."
    return render_template("meta/login-totp.html", form=form, error=error), (
        400 if error else status_of(form)
    )


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    """Other services link here; the page's button ends this login
    everywhere (the core's confirmation, with meta's CSRF token)."""
    question = confirm(
        "Log out?",
        "You are signed out of every service of this site in this browser, and a copy of "
        "its login cookie stops working too.",
        cancel=_return_to(),
        button="Log out",
        keep="Stay logged in",
    )
    if question is not None:
        return question
    user = viewer()
    response = make_response(redirect(_return_to(url_for("auth.login"))))
    clear_login_cookie(response)
    session.clear()
    if user is not None:
        # A copy of the cookie (another tab's, a thief's) stops working too.
        end_session((login_session() or {}).get("s"))
        audit(user, "logged out")
        db_session.commit()
    return response


@bp.route("/forgot", methods=["GET", "POST"])
def forgot() -> Any:
    form = EmailForm()
    if form.validate_on_submit():
        user = find_user(form.email.data)
        if user is not None and user.user_type != UNCONFIRMED:
            token = email_link(user, "reset")
            origin = current_service().origin
            mail_user(
                user,
                "Reset your password",
                f"Hello {user.username},\n\nset a new password here:\n\n"
                f"  {origin}/reset/{token}\n\nThe link works once. If you did not "
                "ask for it, ignore this message; your password is unchanged.\n",
            )
            audit(user, "password reset requested")
            db_session.commit()
        flash("If an account has that address, a reset link is on its way.", "success")
        return redirect(url_for("auth.login"))
    return render_template("meta/forgot.html", form=form), status_of(form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    form = ResetForm()
    if form.validate_on_submit():
        link = mailed_link(token, "reset", use=True)
        problem = password_problem(form.password.data, link.user.username)
        if problem:
            db_session.rollback()
            form.show(Problem("password", f"Password {problem}."))
        else:
            link.user.password_hash = hash_password(form.password.data)
            # Whoever knew the old password is signed out everywhere, and
            # the lockout (which told the user to reset) is lifted.
            end_sessions(link.user)
            clear_failed_attempts(link.user)
            audit(link.user, "password reset")
            db_session.commit()
            flash("Your password is set. Log in with it now.", "success")
            return redirect(url_for("auth.login"))
    return render_template("meta/reset.html", form=form), status_of(form)
