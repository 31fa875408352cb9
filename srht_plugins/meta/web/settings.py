"""Account settings: profile, password, email address, the second factor,
personal access tokens and the audit log.

Every page here is about the signed-in user and nobody else: no view takes
a user id, and the one object id in a URL (a token's) is checked against
the signed-in user, answering 404 for anyone else's.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.exc import IntegrityError
from wtforms import EmailField, IntegerField, PasswordField, SelectMultipleField, StringField
from wtforms.validators import Email, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from srht_core import (
    Form,
    current_service,
    current_user,
    db_session,
    login_required,
    login_session,
    paginate,
    utcnow,
)

from ..accounts import (
    AccountError,
    account_locked,
    audit,
    broadcast,
    email_link,
    end_sessions,
    find_email_link,
    issue_personal_token,
    known_scopes,
    mail_user,
    record_failed_attempt,
    revoke_personal_token,
    use_email_link,
)
from ..forms import PasswordChangeForm, ProfileForm
from ..models import AuditLogEntry, EmailToken, PersonalAccessToken, RecoveryCode, User
from ..passwords import check_password, hash_password, password_problem
from ..totp import (
    accept_totp,
    new_recovery_codes,
    new_secret,
    open_secret,
    provisioning_uri,
    seal_secret,
)

bp = Blueprint("settings", __name__)

LOCKED = "Too many failed attempts for this account; try again in 15 minutes."


class EmailChangeForm(Form):
    email = EmailField("New email address", validators=[InputRequired(), Email(), Length(max=256)])
    password = PasswordField("Current password", validators=[InputRequired(), Length(max=1024)])


class TotpConfirmForm(Form):
    code = StringField(
        "Code from your authenticator app", validators=[InputRequired(), Length(max=16)]
    )


class TotpCheckForm(Form):
    """Proof it is the owner at the keyboard: a current code or the password."""

    code = StringField("Code from your authenticator app", validators=[Optional(), Length(max=16)])
    password = PasswordField("or your password", validators=[Optional(), Length(max=1024)])


class TokenForm(Form):
    comment = StringField(
        "Comment",
        validators=[Optional(), Length(max=256)],
        description="What the token is for, to recognise it later.",
    )
    scopes = SelectMultipleField(
        "Scopes", choices=[], widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )
    expires = IntegerField(
        "Expires after (days)",
        validators=[Optional(), NumberRange(min=1, max=3650)],
        description="Leave empty for a token that does not expire.",
    )


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _failed(form: Any) -> bool:
    """Whether any field of ``form`` has an error (including ones added
    after validation, which ``form.errors`` does not show)."""
    return any(field.errors for field in form)


def _no_store(html: str) -> Any:
    """A page showing a secret once: never kept by a cache or the browser."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


def _prove_owner(user: User, form: TotpCheckForm) -> bool:
    """Check ``form``'s TOTP code or password, with the login rate limits;
    put the error on the form when neither is right."""
    code, password = (form.code.data or "").strip(), form.password.data or ""
    if not code and not password:
        form.code.errors.append("Enter a current code, or your password.")
        return False
    if account_locked(user):
        form.code.errors.append(LOCKED)
        return False
    if code and accept_totp(user, code):
        return True
    if password and check_password(user.password_hash, password):
        return True
    record_failed_attempt(user, "wrong code or password in the security settings", "check failed")
    db_session.commit()
    form.code.errors.append("That code or password is not right (a code works once).")
    return False


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
        broadcast(user, "user:update")
        db_session.commit()
        flash("Your profile is saved.", "success")
        return redirect(url_for("settings.profile"))
    return render_template("meta/profile.html", form=form, user=user), 400 if _failed(form) else 200


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
        "meta/security.html", user=user, recovery_codes_left=remaining, **page
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
        if account_locked(user):
            form.current.errors.append(LOCKED)
        elif not check_password(user.password_hash, form.current.data):
            record_failed_attempt(user, "wrong current password when changing it", "check failed")
            db_session.commit()
            form.current.errors.append("That is not your current password.")
        elif problem := password_problem(form.password.data, user.username):
            form.password.errors.append(f"Password {problem}.")
        else:
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
        taken = db_session.scalar(
            sa.select(User.id).where(sa.func.lower(User.email) == new.lower())
        )
        if account_locked(user):
            form.password.errors.append(LOCKED)
        elif not check_password(user.password_hash, form.password.data):
            record_failed_attempt(
                user, "wrong password when changing the email address", "check failed"
            )
            db_session.commit()
            form.password.errors.append("That is not your current password.")
        elif new.lower() == user.email.lower():
            form.email.errors.append("That is your address already.")
        elif taken:
            form.email.errors.append("Another account uses that address.")
        else:
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
    try:
        link = (use_email_link if pressed else find_email_link)(token, "email-change")
    except AccountError as error:
        db_session.rollback()
        return render_template("meta/link-error.html", message=str(error)), 400
    user, new = link.user, link.new_email
    if new is None or user.is_suspended:
        db_session.rollback()
        return render_template(
            "meta/link-error.html", message="This link cannot change this account."
        ), 400
    if not pressed:
        return render_template(
            "meta/confirm-link.html",
            form=form,
            heading="Change your email address",
            question=f"Make {new} the address of the account {user.username}?",
            button="Change my address",
        ), 400 if form.errors else 200
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
    broadcast(user, "user:update")
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
        return render_template(
            "meta/link-error.html", message="Another account uses that address now."
        ), 400
    flash(f"Your email address is now {new}.", "success")
    return redirect(url_for("auth.index"))


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
                return _no_store(
                    render_template("meta/recovery-codes.html", codes=codes, enabled=True)
                )
            form.code.errors.append(
                "That code is not right. Check the time on your "
                "phone, and enter the code shown now."
            )
    groups = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    html = render_template(
        "meta/totp-enable.html", form=form, secret=groups, uri=provisioning_uri(user, secret)
    )
    response = _no_store(html)
    response.status_code = 400 if _failed(form) else 200
    return response


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
        return _no_store(render_template("meta/recovery-codes.html", codes=codes, enabled=False))
    return _security_page(400, codes_form=form)


# -- personal access tokens ---------------------------------------------------------------


def _token_form(**kwargs: Any) -> TokenForm:
    form = TokenForm(**kwargs)
    scopes = known_scopes()
    form.scopes.choices = [
        (f"{name}:{access}", f"{name}:{access}")
        for name in sorted(scopes)
        for access in ("RO", "RW")
    ]
    return form


def _tokens_page(form: TokenForm, status: int = 200) -> Any:
    user = _me()
    page = paginate(
        db_session,
        sa.select(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == user.id)
        .order_by(PersonalAccessToken.created.desc(), PersonalAccessToken.id.desc()),
    )
    return render_template(
        "meta/tokens.html", form=form, page=page, scopes=sorted(known_scopes().items())
    ), status


@bp.get("/tokens")
@login_required
def tokens() -> Any:
    return _tokens_page(_token_form(formdata=None))


@bp.post("/tokens")
@login_required
def create_token() -> Any:
    user = _me()
    form = _token_form()
    if form.validate_on_submit():
        wanted = set(form.scopes.data or ())
        # RW includes RO: asking for both is asking for RW.
        chosen = sorted(s for s in wanted if not (s.endswith(":RO") and s[:-3] + ":RW" in wanted))
        try:
            token = issue_personal_token(
                user,
                " ".join(chosen),
                expires_days=form.expires.data,
                comment=(form.comment.data or "").strip() or None,
            )
        except AccountError as error:
            db_session.rollback()
            form.scopes.errors.append(str(error))
        else:
            db_session.commit()
            return _no_store(
                render_template(
                    "meta/token-created.html",
                    token=token,
                    scopes=chosen,
                    comment=form.comment.data,
                    expires=form.expires.data,
                )
            )
    return _tokens_page(form, 400)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    pat = db_session.get(PersonalAccessToken, token_id)
    if pat is None or pat.user_id != _me().id:
        abort(404)
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
