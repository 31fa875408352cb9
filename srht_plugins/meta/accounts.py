"""What meta does with accounts, whichever page or command asks: create,
confirm, authenticate (with rate limits), audit, issue and revoke tokens, and
tell the other services when a user changes."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from srht_core import (
    LOGIN_LIFETIME,
    TokenGrant,
    client_address,
    current_service,
    db_session,
    parse_scopes,
    seal_grant,
    send_mail,
    send_webhook,
    utcnow,
)

from .models import (
    ACTIVE,
    ADMIN,
    SUSPENDED,
    UNCONFIRMED,
    AuditLogEntry,
    EmailToken,
    LoginAttempt,
    LoginSession,
    OAuthToken,
    PersonalAccessToken,
    User,
    new_token,
    token_hash,
)
from .passwords import check_password, hash_password, needs_rehash

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
    """A request about an account that cannot be done; ``field`` names the
    input to blame, when one is."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def settings(key: str) -> object:
    """A ``[meta::settings]`` value, its default when the section is absent."""
    config = current_service().config
    declared = config.schemas["meta::settings"].key(key)
    return config.get("meta::settings", key, declared.default if declared else None)


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


def create_user(
    username: str, email: str, password: str | None, *, user_type: str = UNCONFIRMED
) -> User:
    """Add a user (not committed). :raises AccountError: for a taken or
    invalid username or a taken email."""
    problem = username_problem(username)
    if problem:
        raise AccountError(f"Username {problem}.", "username")
    if db_session.scalar(sa.select(User.id).where(User.username == username)):
        raise AccountError("That username is taken.", "username")
    if db_session.scalar(sa.select(User.id).where(sa.func.lower(User.email) == email.lower())):
        raise AccountError("An account with that email address exists already.", "email")
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
    lifetime = int(settings("confirmation-lifetime"))  # type: ignore[arg-type]
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
    if user is None or not check_password(user.password_hash, password):
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


def record_failed_attempt(user: User, details: str, event: str = "login failed") -> None:
    """Count a wrong password or second factor against ``user`` and the
    client's address, as a failed login does, and audit it (not committed)."""
    db_session.add_all(
        [LoginAttempt(key=f"address:{client_address()}"), LoginAttempt(key=f"user:{user.id}")]
    )
    audit(user, event, details)


def start_session(user: User) -> LoginSession:
    """Record a login (not committed); its id goes into the login cookie."""
    from flask import request

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
    return int(result.rowcount or 0)


def end_session(session_id: object) -> None:
    """Revoke one login session (logging out), if it is one."""
    if isinstance(session_id, int):
        db_session.execute(
            sa.update(LoginSession)
            .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


# -- telling the other services --------------------------------------------------------


def broadcast(user: User, event: str) -> None:
    """Queue a signed identity event (``user:update`` or ``user:delete``)
    for every other enabled service, in the current transaction."""
    state = current_service()
    payload = (
        user.profile() if event == "user:update" else {"id": user.id, "username": user.username}
    )
    for service, origin in sorted(state.origins.items()):
        if service == state.service.name:
            continue
        send_webhook(
            origin + "/_srht/identity",
            event,
            payload,
            internal=True,
            subscription=f"identity:{service}",
        )


def set_user_type(user: User, user_type: str, notice: str | None = None) -> None:
    if user_type not in (UNCONFIRMED, ACTIVE, ADMIN, SUSPENDED):
        raise AccountError(f"unknown user type {user_type!r}")
    user.user_type = user_type
    user.suspension_notice = notice if user_type == SUSPENDED else None
    audit(user, f"account {user_type}", notice)
    broadcast(user, "user:update")


def delete_user(user: User) -> None:
    audit(user, "account deleted")
    broadcast(user, "user:delete")
    db_session.delete(user)


# -- tokens --------------------------------------------------------------------------------


def issue_personal_token(
    user: User, scopes: str, *, expires_days: int | None = None, comment: str | None = None
) -> str:
    """A new personal access token for ``user`` (shown once; stored hashed).

    :raises AccountError: for malformed or unknown scopes.
    """
    try:
        wanted = parse_scopes(scopes)
    except ValueError as error:
        raise AccountError(str(error), "scopes") from None
    known = known_scopes()
    unknown = [s for s in wanted if s.rsplit(":", 1)[0] not in known]
    if unknown:
        raise AccountError(
            f"unknown scope {unknown[0]}; this site offers: " + ", ".join(sorted(known)), "scopes"
        )
    if not wanted:
        raise AccountError("choose at least one scope", "scopes")
    expires: datetime | None = None
    if expires_days is not None:
        expires = utcnow() + timedelta(days=expires_days)
    # The row's id goes into the sealed token, so the hash is set after the flush.
    pat = PersonalAccessToken(
        user_id=user.id,
        comment=comment,
        scopes=" ".join(wanted),
        token_hash=f"pending:{new_token()}",
        expires=expires,
    )
    db_session.add(pat)
    db_session.flush()
    expiry = time.time() + expires_days * 86400 if expires_days is not None else None
    token = seal_grant(TokenGrant("pat", pat.id, user.id, frozenset(wanted), expiry))
    pat.token_hash = token_hash(token)
    audit(user, "personal access token issued", comment)
    return token


def known_scopes() -> dict[str, str]:
    """``{"todo/tickets": "description"}`` for every enabled service."""
    state = current_service()
    return state.plugins.oauth_scopes([r.name for r in state.plugins.enabled(state.config)])


def revoke_personal_token(pat: PersonalAccessToken) -> None:
    if pat.revoked_at is None:
        pat.revoked_at = utcnow()
        audit(pat.user, "personal access token revoked", pat.comment)


def revoked_since(since: float) -> list[tuple[str, int, float | None]]:
    """Tokens and login sessions revoked after ``since`` (a UNIX time), for
    the services' revocation caches: ``(kind, id, expires)``, where
    ``expires`` is when what was revoked would have stopped working anyway
    (a UNIX time; ``None``: never), after which a cache may forget it."""
    after = (
        datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
        if since > 0
        else datetime(1970, 1, 1)
    )

    def unix(moment: datetime | None) -> float | None:
        return None if moment is None else moment.replace(tzinfo=UTC).timestamp()

    pats = db_session.execute(
        sa.select(PersonalAccessToken.id, PersonalAccessToken.expires).where(
            PersonalAccessToken.revoked_at.is_not(None), PersonalAccessToken.revoked_at >= after
        )
    )
    oauth = db_session.execute(
        sa.select(OAuthToken.id, OAuthToken.issued_at + OAuthToken.expires_in).where(
            OAuthToken.revoked_at.is_not(None), OAuthToken.revoked_at >= after
        )
    )
    sessions = db_session.execute(
        sa.select(LoginSession.id, LoginSession.created).where(
            LoginSession.revoked_at.is_not(None), LoginSession.revoked_at >= after
        )
    )
    return (
        [("pat", i, unix(expires)) for i, expires in pats]
        + [("oauth", i, float(expires)) for i, expires in oauth]
        + [("session", i, unix(created) + LOGIN_LIFETIME) for i, created in sessions]
    )


def token_revoked(kind: str, token_id: int) -> bool:
    """meta's own check (tokens and login sessions): straight from the
    database. An unknown id counts as revoked."""
    model = {"pat": PersonalAccessToken, "oauth": OAuthToken, "session": LoginSession}.get(kind)
    if model is None:
        return True
    row = db_session.execute(sa.select(model.revoked_at).where(model.id == token_id)).first()
    return row is None or row[0] is not None
