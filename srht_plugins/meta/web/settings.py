"""Account settings: profile, password, email address, login sessions, the
second factor, personal access tokens and the audit log.

Every page here is about the signed-in user and nobody else: no view takes
a user id, and an object id in a URL (a token's, a session's) is looked up among
the signed-in user's own (:mod:`..access`), answering 404 for anyone else's.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy.exc import IntegrityError

from srht_core import (
    Form,
    Problem,
    confirm,
    current_service,
    db_session,
    login_required,
    login_session,
    paginate,
    utcnow,
    viewer,
)

from ..access import own_session, own_token
from ..accounts import (
    account_locked,
    audit,
    email_link,
    end_session,
    end_sessions,
    mail_user,
    open_sessions,
    record_failed_attempt,
)
from ..events import USER_UPDATE, broadcast
from ..forms import (
    EmailChangeForm,
    PasswordChangeForm,
    ProfileForm,
    TokenForm,
    TotpCheckForm,
    TotpConfirmForm,
    scope_choices,
)
from ..models import AuditLogEntry, EmailToken, PersonalAccessToken, RecoveryCode, User
from ..passwords import check_password, hash_password, password_problem
from ..tokens import issue_personal_token, known_scopes, revoke_personal_token
from ..totp import (
    accept_totp,
    new_recovery_codes,
    new_secret,
    open_secret,
    provisioning_uri,
    qr_code_svg,
    seal_secret,
)
from .common import account_menu, failed, mailed_link, no_store, status_of

bp = Blueprint("settings", __name__)
bp.add_app_template_global(account_menu)

LOCKED = "Too many failed attempts for this account; try again in 15 minutes."


def _me() -> User:
    user: User = viewer()
    return user


def _prove_owner(user: User, form: TotpCheckForm) -> bool:
    """Check ``form``'s TOTP code or password, with the login rate limits;
    put the error on the form when neither is right."""
    code, password = (form.code.data or "").strip(), form.password.data or ""
    if not code and not password:
        form.show(Problem("code", "Enter a current code, or your password."))
        return False
    if account_locked(user):
        form.show(Problem("code", LOCKED))
        return False
    if code and accept_totp(user, code):
        return True
    if password and check_password(user.password_hash, password):
        return True
    record_failed_attempt(user, "wrong code or password in the security settings", "check failed")
    db_session.commit()
    form.show(Problem("code", "That code or password is not right (a code works once)."))
    return False


def _check_password(user: User, form: Form, name: str, details: str) -> bool:
    """Whether ``form``'s field ``name`` holds ``user``'s password, with the
    login rate limits; the error goes on that field when it does not,
    ``details`` into the audit log."""
    if account_locked(user):
        form.show(Problem(name, LOCKED))
        return False
    if not check_password(user.password_hash, form[name].data):
        record_failed_attempt(user, details, "check failed")
        db_session.commit()
        form.show(Problem(name, "That is not your current password."))
        return False
    return True


# -- profile ---------------------------------------------------------------------


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> Any:
    user = _me()
    form = ProfileForm(obj=user)
    if form.validate_on_submit():
        for name in ("name", "url", "location", "bio"):
            value = (getattr(form, name).data or "").strip()
            setattr(user, name, value or None)
        broadcast(user, USER_UPDATE)
        db_session.commit()
        flash("Your profile is saved.", "success")
        return redirect(url_for("settings.profile"))
    return render_template("meta/profile.html", form=form, user=user), status_of(form)


# -- security: password, email, second factor ------------------------------------------


def _security_page(status: int = 200, **forms: Any) -> Any:
    user = _me()
    page = {
        "password_form": PasswordChangeForm(prefix="password", formdata=None),
        "email_form": EmailChangeForm(prefix="email", formdata=None),
        "disable_form": TotpCheckForm(prefix="disable", formdata=None),
        "codes_form": TotpCheckForm(prefix="codes", formdata=None),
    }
    page.update(forms)
    remaining = (
        db_session.scalar(
            sa.select(sa.func.count(RecoveryCode.id)).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )
    return render_template(
        "meta/security.html",
        user=user,
        recovery_codes_left=remaining,
        sessions=open_sessions(user),
        this_session=(login_session() or {}).get("s"),
        **page,
    ), status


@bp.get("/security")
@login_required
def security() -> Any:
    return _security_page()


@bp.post("/security/password")
@login_required
def change_password() -> Any:
    user = _me()
    form = PasswordChangeForm(prefix="password")
    if form.validate_on_submit():
        # Both fields are checked, so every problem shows at once.
        if problem := password_problem(form.password.data, user.username):
            form.show(Problem("password", f"Password {problem}."))
        proven = _check_password(user, form, "current", "wrong current password when changing it")
        if proven and not failed(form):
            user.password_hash = hash_password(form.password.data)
            # Other browsers signed in with the old password are signed out.
            current = (login_session() or {}).get("s")
            end_sessions(user, keep=current if isinstance(current, int) else None)
            audit(user, "password changed")
            mail_user(
                user,
                "Your password was changed",
                f"Hello {user.username},\n\nthe password of your account was just "
                "changed. If you did not do this, reset your password now and "
                "tell the site's administrators.\n",
            )
            db_session.commit()
            flash("Your password is changed.", "success")
            return redirect(url_for("settings.security"))
    return _security_page(400, password_form=form)


@bp.post("/security/email")
@login_required
def change_email() -> Any:
    user = _me()
    form = EmailChangeForm(prefix="email")
    if form.validate_on_submit():
        new = form.email.data.strip()
        if new.lower() == user.email.lower():
            form.show(Problem("email", "That is your address already."))
        elif db_session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == new.lower())):
            form.show(Problem("email", "Another account uses that address."))
        proven = _check_password(
            user, form, "password", "wrong password when changing the email address"
        )
        if proven and not failed(form):
            token = email_link(user, "email-change", new_email=new)
            link = current_service().origin + url_for("settings.confirm_email", token=token)
            mail_user(
                user,
                "Confirm your new email address",
                f"Hello {user.username},\n\nto make {new} the address of your "
                f"account, open this link:\n\n  {link}\n\nUntil you do, nothing "
                "changes. If you did not ask for this, ignore this message.\n",
                to=new,
            )
            mail_user(
                user,
                "Your email address is being changed",
                f"Hello {user.username},\n\nsomeone signed in as you asked to change "
                f"the address of your account to {new}. It changes only when the "
                "link sent there is followed. If this was not you, change your "
                "password now.\n",
            )
            audit(user, "email change requested", new)
            db_session.commit()
            flash(f"We sent a link to {new}. Your address changes when you follow it.", "success")
            return redirect(url_for("settings.security"))
    return _security_page(400, email_form=form)


@bp.route("/security/email/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> Any:
    """The link mailed to the new address; it works without signing in,
    since following it is what proves the address. It shows a button, and
    the address changes when it is pressed: mail scanners that open every
    link must not use it up."""
    form = Form()
    pressed = form.validate_on_submit()
    link = mailed_link(token, "email-change", use=pressed)
    user, new = link.user, link.new_email
    if new is None or user.is_suspended:
        db_session.rollback()
        abort(400, "This link cannot change this account.")
    if not pressed:
        return render_template(
            "meta/confirm-link.html",
            form=form,
            heading="Change your email address",
            question=f"Make {new} the address of the account {user.username}?",
            button="Change my address",
        ), status_of(form)
    old = user.email
    user.email = new
    # Reset links mailed to the old address must not outlive it.
    db_session.execute(
        sa.update(EmailToken)
        .where(
            EmailToken.user_id == user.id,
            EmailToken.purpose == "reset",
            EmailToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    audit(user, "email changed", f"{old} to {new}")
    broadcast(user, USER_UPDATE)
    mail_user(
        user,
        "Your email address was changed",
        f"Hello {user.username},\n\nyour account's address is now {new}. If you did "
        "not do this, tell the site's administrators.\n",
        to=old,
    )
    try:
        db_session.commit()
    except IntegrityError:
        db_session.rollback()
        abort(400, "Another account uses that address now.")
    flash(f"Your email address is now {new}.", "success")
    return redirect(url_for("auth.index"))


@bp.route("/security/sessions/<int:session_id>/end", methods=["GET", "POST"])
@login_required
def end_login_session(session_id: int) -> Any:
    """Log out another browser (this one logs out at ``/logout``)."""
    user = _me()
    login = own_session(session_id, user)
    if login.revoked_at is not None or login.id == (login_session() or {}).get("s"):
        return redirect(url_for("settings.security", _anchor="sessions"))
    where = login.address or "an unknown address"
    question = confirm(
        f"Log out the browser at {where}?",
        f"It logged in on {login.created:%Y-%m-%d %H:%M} UTC"
        + (f" with {login.user_agent}" if login.user_agent else "")
        + ". It is signed out of every service of this site, each within a minute, "
        "and has to log in again with your password.",
        cancel=url_for("settings.security", _anchor="sessions"),
        button="Log it out",
    )
    if question is not None:
        return question
    end_session(login.id)
    audit(user, "logged out elsewhere", f"the login from {where}")
    db_session.commit()
    flash(f"The browser at {where} is logged out.", "success")
    return redirect(url_for("settings.security", _anchor="sessions"))


@bp.route("/security/totp", methods=["GET", "POST"])
@login_required
def enable_totp() -> Any:
    """Turn on the second factor: show a new secret, then take a current
    code as proof the app has it, then show recovery codes once."""
    user = _me()
    if user.totp_secret:
        flash("Two-factor authentication is on already.", "success")
        return redirect(url_for("settings.security"))
    pending = session.get("totp_setup")
    secret = None
    if isinstance(pending, dict) and pending.get("user") == user.id:
        secret = open_secret(str(pending.get("secret", "")))
    if secret is None:
        if request.method == "POST":
            flash("The setup expired; here is a new secret to start again.", "error")
        secret = new_secret()
        # Sealed: Flask's session cookie is signed, not encrypted.
        session["totp_setup"] = {"user": user.id, "secret": seal_secret(secret)}
        form = TotpConfirmForm(formdata=None)
    else:
        form = TotpConfirmForm()
        if form.validate_on_submit():
            if accept_totp(user, form.code.data, secret):
                user.totp_secret = seal_secret(secret)
                codes = new_recovery_codes(user)
                audit(user, "two-factor authentication enabled")
                mail_user(
                    user,
                    "Two-factor authentication is on",
                    f"Hello {user.username},\n\nlogging in to your account now needs "
                    "a code from your authenticator app. If you did not do this, "
                    "tell the site's administrators.\n",
                )
                db_session.commit()
                session.pop("totp_setup", None)
                return no_store(
                    render_template("meta/recovery-codes.html", codes=codes, enabled=True)
                )
            form.show(
                Problem(
                    "code",
                    "That code is not right. Check the time on your "
                    "phone, and enter the code shown now.",
                )
            )
    groups = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    uri = provisioning_uri(user, secret)
    page = render_template(
        "meta/totp-enable.html",
        form=form,
        secret=groups,
        uri=uri,
        qr_code=qr_code_svg(uri),
    )
    return no_store(page, status_of(form))


@bp.post("/security/totp/disable")
@login_required
def disable_totp() -> Any:
    user = _me()
    form = TotpCheckForm(prefix="disable")
    if not user.totp_secret:
        return redirect(url_for("settings.security"))
    if form.validate_on_submit() and _prove_owner(user, form):
        user.totp_secret = None
        user.totp_last_step = None
        db_session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        audit(user, "two-factor authentication disabled")
        mail_user(
            user,
            "Two-factor authentication is off",
            f"Hello {user.username},\n\nlogging in to your account no longer needs a "
            "code. If you did not do this, change your password now and tell the "
            "site's administrators.\n",
        )
        db_session.commit()
        flash("Two-factor authentication is off.", "success")
        return redirect(url_for("settings.security"))
    return _security_page(400, disable_form=form)


@bp.post("/security/totp/recovery-codes")
@login_required
def regenerate_recovery_codes() -> Any:
    user = _me()
    form = TotpCheckForm(prefix="codes")
    if not user.totp_secret:
        return redirect(url_for("settings.security"))
    if form.validate_on_submit() and _prove_owner(user, form):
        codes = new_recovery_codes(user)
        audit(user, "recovery codes replaced")
        db_session.commit()
        return no_store(render_template("meta/recovery-codes.html", codes=codes, enabled=False))
    return _security_page(400, codes_form=form)


# -- personal access tokens ---------------------------------------------------------------


def _token_form(**kwargs: Any) -> TokenForm:
    form = TokenForm(**kwargs)
    form.scopes.choices = scope_choices(known_scopes())
    return form


def _tokens_page(form: TokenForm, status: int = 200) -> Any:
    page = paginate(
        db_session,
        sa.select(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == _me().id)
        .order_by(PersonalAccessToken.created.desc(), PersonalAccessToken.id.desc()),
    )
    return render_template("meta/tokens.html", form=form, page=page), status


@bp.get("/tokens")
@login_required
def tokens() -> Any:
    return _tokens_page(_token_form(formdata=None))


@bp.post("/tokens")
@login_required
def create_token() -> Any:
    form = _token_form()
    valid = form.validate_on_submit()
    wanted = set(form.scopes.data or ())
    # RW includes RO: asking for both is asking for RW.
    chosen = sorted(s for s in wanted if not (s.endswith(":RO") and s[:-3] + ":RW" in wanted))
    if not chosen and not form.scopes.errors:
        form.show(Problem("scopes", "Choose at least one scope."))
    if valid and chosen:
        comment = (form.comment.data or "").strip() or None
        try:
            token = issue_personal_token(
                _me(), " ".join(chosen), expires_days=form.expires.data, comment=comment
            )
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            db_session.commit()
            # Post/redirect/get: the token is shown once, on a page that a
            # reload does not turn into another token. Sealed: Flask's
            # session cookie is signed, not encrypted.
            session["new_token"] = {
                "user": _me().id,
                "token": seal_secret(token),
                "scopes": chosen,
                "comment": comment,
                "expires": form.expires.data,
            }
            return redirect(url_for("settings.token_created"))
    return _tokens_page(form, 400)


@bp.get("/tokens/new")
@login_required
def token_created() -> Any:
    """The token just made, shown once: the session forgets it here."""
    made = session.pop("new_token", None)
    token = None
    if isinstance(made, dict) and made.get("user") == _me().id:
        token = open_secret(str(made.get("token", "")))
    if token is None:
        flash(
            "A new token is shown only once, right after it is made; "
            "revoke it below if it was not copied, and make another.",
            "error",
        )
        return redirect(url_for("settings.tokens"))
    return no_store(
        render_template(
            "meta/token-created.html",
            token=token,
            scopes=made.get("scopes") or [],
            comment=made.get("comment"),
            expires=made.get("expires"),
        )
    )


@bp.route("/tokens/<int:token_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_token(token_id: int) -> Any:
    pat = own_token(token_id, _me())
    if pat.revoked_at is not None:
        flash("That token is revoked already.", "success")
        return redirect(url_for("settings.tokens"))
    name = f"“{pat.comment}”" if pat.comment else f"number {pat.id}"
    question = confirm(
        f"Revoke the token {name}?",
        f"It has the scopes {pat.scopes}. Every program using it loses that access at once, "
        "on every service of this site; a revoked token cannot be used again.",
        cancel=url_for("settings.tokens"),
        button="Revoke",
    )
    if question is not None:
        return question
    revoke_personal_token(pat)
    db_session.commit()
    flash("The token is revoked: it no longer works anywhere.", "success")
    return redirect(url_for("settings.tokens"))


# -- audit log ------------------------------------------------------------------------------


@bp.get("/audit-log")
@login_required
def audit_log() -> Any:
    page = paginate(
        db_session,
        sa.select(AuditLogEntry)
        .where(AuditLogEntry.user_id == _me().id)
        .order_by(AuditLogEntry.created.desc(), AuditLogEntry.id.desc()),
        per_page=50,
    )
    return render_template("meta/audit-log.html", page=page)
