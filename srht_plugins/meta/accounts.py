"""What meta does with accounts, whichever page or command asks: create,
confirm, authenticate (with rate limits), start and end login sessions,
audit, suspend and delete. The other services hear of changes through
:mod:`.events`; tokens are in :mod:`.tokens`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import request
from sqlalchemy.engine import CursorResult

from srht_core import (
    LOGIN_LIFETIME,
    Problem,
    client_address,
    current_service,
    db_session,
    send_mail,
    utcnow,
)

from .events import USER_DELETE, USER_UPDATE, broadcast
from .models import (
    ACTIVE,
    ADMIN,
    SUSPENDED,
    UNCONFIRMED,
    AuditLogEntry,
    DeletedUser,
    EmailToken,
    LoginAttempt,
    LoginSession,
    User,
    new_token,
    token_hash,
)
from .passwords import check_password, hash_password, needs_rehash, password_problem

USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{1,29}$")
RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "api",
        "abuse",
        "help",
        "about",
        "login",
        "logout",
        "register",
        "root",
        "security",
        "settings",
        "static",
        "support",
        "sysadmin",
        "system",
        "webmaster",
        "www",
        "oauth",
        "oauth2",
        "internal",
        "meta",
        "todo",
        "paste",
        "git",
        "hg",
        "builds",
        "lists",
        "man",
        "hub",
        "srht",
        "sourcehut",
        "mail",
        "postmaster",
        "hostmaster",
        "noreply",
        "no-reply",
        "user",
        "users",
        "profile",
        "privacy",
        "terms",
        "staff",
    }
)
RATE_WINDOW = timedelta(minutes=15)


class AccountError(Exception):
    """A request about an account that cannot be done: the sentence to
    show, and each :class:`~srht_core.Problem` of the input, so that a form
    can show them all at once."""

    def __init__(self, message: str = "", *, problems: list[Problem] | None = None):
        self.problems = problems or []
        super().__init__(message or " ".join(p.reason for p in self.problems))


def settings(key: str) -> object:
    """A ``[meta::settings]`` value, its default when the section is absent."""
    config = current_service().config
    declared = config.schemas["meta::settings"].key(key)
    return config.get("meta::settings", key, declared.default if declared else None)


def confirmation_lifetime() -> int:
    """Seconds a mailed one-time link works (``[meta::settings]``)."""
    value = settings("confirmation-lifetime")
    assert isinstance(value, int)
    return value


def username_problem(username: str) -> str | None:
    if not USERNAME.match(username):
        return (
            "must be 2 to 30 characters: lower-case letters, digits, _ and -, "
            "not starting with a digit or -"
        )
    if username in RESERVED:
        return "is reserved"
    return None


def audit(user: User, event: str, details: str | None = None) -> None:
    """Record a security event on ``user``'s audit log."""
    try:
        address = client_address()
    except RuntimeError:
        address = None  # outside a request: the CLI
    db_session.add(AuditLogEntry(user_id=user.id, event=event, details=details, address=address))


def find_user(name_or_email: str) -> User | None:
    value = name_or_email.strip()
    column = User.email if "@" in value else User.username
    return db_session.scalar(sa.select(User).where(sa.func.lower(column) == value.lower()))


def new_account_problems(username: str, email: str, password: str | None) -> list[Problem]:
    """Every reason an account with these details cannot be made: an
    invalid, reserved or taken username, a taken address, a password too
    short or too long (``None``: no password)."""
    problems = []
    if problem := username_problem(username):
        problems.append(Problem("username", f"Username {problem}."))
    elif db_session.scalar(sa.select(User.id).where(User.username == username)):
        problems.append(Problem("username", "That username is taken.", 409))
    if db_session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == email.lower())):
        problems.append(Problem("email", "An account with that email address exists already."))
    if password is not None and (problem := password_problem(password, username)):
        problems.append(Problem("password", f"Password {problem}."))
    return problems


def create_user(
    username: str, email: str, password: str | None, *, user_type: str = UNCONFIRMED
) -> User:
    """Add a user (not committed).

    :raises AccountError: listing every problem of
        :func:`new_account_problems`.
    """
    problems = new_account_problems(username, email, password)
    if problems:
        raise AccountError(problems=problems)
    user = User(
        username=username,
        email=email,
        user_type=user_type,
        password_hash=hash_password(password) if password else None,
        confirmed_at=utcnow() if user_type != UNCONFIRMED else None,
    )
    db_session.add(user)
    db_session.flush()
    audit(user, "account created")
    return user


# -- one-time links --------------------------------------------------------------


def email_link(user: User, purpose: str, *, new_email: str | None = None) -> str:
    """Make a one-time link token for ``purpose`` (not committed)."""
    token = new_token()
    lifetime = confirmation_lifetime()
    db_session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=token_hash(token),
            new_email=new_email,
            expires=utcnow() + timedelta(seconds=lifetime),
        )
    )
    return token


def find_email_link(token: str, purpose: str) -> EmailToken:
    """A one-time link that may still be used, without using it up.
    :raises AccountError: when unknown, used, expired, or for another
    purpose."""
    link = db_session.scalar(
        sa.select(EmailToken).where(
            EmailToken.token_hash == token_hash(token), EmailToken.purpose == purpose
        )
    )
    if link is None:
        raise AccountError("This link is not valid. Links work once; ask for a new one.")
    if link.used_at is not None:
        raise AccountError("This link has been used already; ask for a new one.")
    if link.expires < utcnow():
        raise AccountError("This link has expired; ask for a new one.")
    return link


def use_email_link(token: str, purpose: str) -> EmailToken:
    """Consume a one-time link (:func:`find_email_link`, then mark it used)."""
    link = find_email_link(token, purpose)
    link.used_at = utcnow()
    return link


def mail_user(user: User, subject: str, body: str, to: str | None = None) -> None:
    site = current_service().config["srht"]["site-name"]
    send_mail(to or user.email, f"[{site}] {subject}", body)


def send_confirmation(user: User) -> None:
    origin = current_service().origin
    token = email_link(user, "confirm")
    mail_user(
        user,
        "Confirm your account",
        f"Hello {user.username},\n\nconfirm your account by opening this link:\n\n"
        f"  {origin}/confirm/{token}\n\nIf you did not register, ignore this message.\n",
    )


# -- logging in ----------------------------------------------------------------------


def _failures(key: str) -> int:
    return (
        db_session.scalar(
            sa.select(sa.func.count(LoginAttempt.id)).where(
                LoginAttempt.key == key, LoginAttempt.created > utcnow() - RATE_WINDOW
            )
        )
        or 0
    )


def authenticate(name_or_email: str, password: str) -> User:
    """The user these credentials prove, after the rate limits.

    :raises AccountError: with the sentence to show. The failure is
        recorded (and committed by the caller) for rate limiting.
    """
    config = current_service().config["meta"]
    address_key = f"address:{client_address()}"
    if _failures(address_key) >= config["login-attempts-per-address"]:
        raise AccountError("Too many failed logins from your address; try again in 15 minutes.")
    user = find_user(name_or_email)
    account_key = f"user:{user.id}" if user else f"name:{name_or_email.lower()[:100]}"
    if _failures(account_key) >= config["login-attempts-per-account"]:
        raise AccountError(
            "Too many failed logins for this account; try again in 15 "
            "minutes, or reset your password."
        )
    # The password is hashed for an unknown name too (against a dummy
    # hash), so the time taken does not tell whether the account exists.
    if not check_password(user.password_hash if user else None, password) or user is None:
        db_session.add_all([LoginAttempt(key=address_key), LoginAttempt(key=account_key)])
        if user is not None:
            audit(user, "login failed", "wrong password")
        raise AccountError("Wrong username or password.")
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if user.user_type == UNCONFIRMED:
        raise AccountError(
            "Confirm your email address first: follow the link we sent "
            "you (or ask for a new one below)."
        )
    if user.user_type == SUSPENDED:
        raise AccountError(
            "This account is suspended: " + (user.suspension_notice or "contact the site's owner.")
        )
    return user


def account_locked(user: User) -> bool:
    """Whether failed attempts at ``user``'s password or second factor
    reached ``[meta] login-attempts-per-account`` in the last 15 minutes."""
    limit = int(current_service().config["meta"]["login-attempts-per-account"])
    return _failures(f"user:{user.id}") >= limit


def clear_failed_attempts(user: User) -> None:
    """Forget the failed attempts counted against ``user`` (not committed):
    a password reset proves the mailbox, and the lockout tells the user to
    reset. The client address's count stays."""
    db_session.execute(sa.delete(LoginAttempt).where(LoginAttempt.key == f"user:{user.id}"))


def record_failed_attempt(user: User, details: str, event: str = "login failed") -> None:
    """Count a wrong password or second factor against ``user`` and the
    client's address, as a failed login does, and audit it (not committed)."""
    db_session.add_all(
        [LoginAttempt(key=f"address:{client_address()}"), LoginAttempt(key=f"user:{user.id}")]
    )
    audit(user, event, details)


def start_session(user: User) -> LoginSession:
    """Record a login (not committed); its id goes into the login cookie."""
    login = LoginSession(
        user=user,
        address=client_address()[:64],
        user_agent=(request.user_agent.string or "")[:256] or None,
    )
    db_session.add(login)
    db_session.flush()
    return login


def end_sessions(user: User, *, keep: int | None = None) -> int:
    """Revoke ``user``'s open login sessions, but ``keep`` (the current one
    after a password change); return how many. Every service signs those
    browsers out at its next revocation poll."""
    result = db_session.execute(
        sa.update(LoginSession)
        .where(
            LoginSession.user_id == user.id,
            LoginSession.revoked_at.is_(None),
            LoginSession.id != (keep if keep is not None else -1),
        )
        .values(revoked_at=utcnow())
    )
    return cast(CursorResult[Any], result).rowcount


def open_sessions(user: User) -> list[LoginSession]:
    """``user``'s login sessions that a cookie may still be using: not
    revoked, younger than the cookie's lifetime; newest first."""
    since = utcnow() - timedelta(seconds=LOGIN_LIFETIME)
    return list(
        db_session.scalars(
            sa.select(LoginSession)
            .where(
                LoginSession.user_id == user.id,
                LoginSession.revoked_at.is_(None),
                LoginSession.created > since,
            )
            .order_by(LoginSession.created.desc(), LoginSession.id.desc())
        )
    )


def end_session(session_id: object) -> None:
    """Revoke one login session (logging out), if it is one."""
    if isinstance(session_id, int):
        db_session.execute(
            sa.update(LoginSession)
            .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


# -- suspending and deleting ----------------------------------------------------------


def set_user_type(user: User, user_type: str, notice: str | None = None) -> None:
    if user_type not in (UNCONFIRMED, ACTIVE, ADMIN, SUSPENDED):
        raise AccountError(f"unknown user type {user_type!r}")
    user.user_type = user_type
    user.suspension_notice = notice if user_type == SUSPENDED else None
    audit(user, f"account {user_type}", notice)
    broadcast(user, USER_UPDATE)


def delete_user(user: User) -> None:
    """Delete ``user`` (not committed) with its keys, tokens, OAuth grants
    and login sessions, and record the deletion (:class:`DeletedUser`):
    meta's revocations list then names the user id, so every service
    refuses any token or login cookie sealed for it within its revocation
    poll, whether or not the ``user:delete`` event reached it."""
    audit(user, "account deleted")
    broadcast(user, USER_DELETE)
    db_session.add(DeletedUser(id=user.id))
    db_session.delete(user)
