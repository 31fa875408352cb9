"""meta's tables: users and everything that proves who they are.

Every table is on :class:`Base` (``srht_core.Model``): an ``id`` that is
never reused, not even on SQLite, and a ``created`` timestamp. meta's user
ids matter beyond meta: every service mirrors users by them and trusts the
ids sealed in tokens and login cookies, so a deleted account's id must
never become another account's.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from srht_core import Model, UpdatedMixin


class Base(Model, DeclarativeBase):
    """meta's tables."""


def token_hash(token: str) -> str:
    """How tokens and one-time links are stored: SHA-256. They are 256-bit
    random values, so a fast hash is what fits (a password hash would only
    slow every API request); the database never holds one usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


#: Account states, in ``user.user_type``.
UNCONFIRMED, ACTIVE, ADMIN, SUSPENDED = "unconfirmed", "active", "admin", "suspended"


class User(UpdatedMixin, Base):
    __tablename__ = "user"

    username: Mapped[str] = mapped_column(sa.String(32), unique=True)
    email: Mapped[str] = mapped_column(sa.String(256), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    user_type: Mapped[str] = mapped_column(sa.String(32), default=UNCONFIRMED)
    suspension_notice: Mapped[str | None] = mapped_column(sa.Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    name: Mapped[str | None] = mapped_column(sa.String(256))
    url: Mapped[str | None] = mapped_column(sa.String(256))
    location: Mapped[str | None] = mapped_column(sa.String(256))
    bio: Mapped[str | None] = mapped_column(sa.Text)
    #: The TOTP secret, sealed with the network key; None when TOTP is off.
    totp_secret: Mapped[str | None] = mapped_column(sa.Text)
    #: The time step of the last TOTP code accepted, so a code works once.
    totp_last_step: Mapped[int | None] = mapped_column(sa.Integer)

    ssh_keys: Mapped[list[SSHKey]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    pgp_keys: Mapped[list[PGPKey]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def canonical_name(self) -> str:
        return "~" + self.username

    @property
    def is_admin(self) -> bool:
        return self.user_type == ADMIN

    @property
    def is_suspended(self) -> bool:
        return self.user_type == SUSPENDED

    def profile(self) -> dict[str, object]:
        """What other services and the API see of the user."""
        return {
            "id": self.id,
            "canonical_name": self.canonical_name,
            "username": self.username,
            "email": self.email,
            "user_type": self.user_type,
            "suspension_notice": self.suspension_notice,
            "name": self.name,
            "url": self.url,
            "location": self.location,
            "bio": self.bio,
            "created": self.created.isoformat() + "Z",
        }


class EmailToken(Base):
    """A one-time link sent by mail: confirm an account, reset a password,
    confirm a new address."""

    __tablename__ = "email_token"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    new_email: Mapped[str | None] = mapped_column(sa.String(256))
    expires: Mapped[datetime] = mapped_column(sa.DateTime)
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """A failed login (at ``created``), kept for rate limiting by account
    and by address."""

    __tablename__ = "login_attempt"
    __table_args__ = (sa.Index("ix_login_attempt_key_created", "key", "created"),)

    key: Mapped[str] = mapped_column(sa.String(128))


class RecoveryCode(Base):
    """A single-use second-factor recovery code, stored hashed."""

    __tablename__ = "recovery_code"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(256))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime)


class AuditLogEntry(Base):
    """A security event of an account, shown to its owner."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_created", "created"),)

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(sa.String(64))
    details: Mapped[str | None] = mapped_column(sa.Text)
    address: Mapped[str | None] = mapped_column(sa.String(64))


class SSHKey(Base):
    __tablename__ = "ssh_key"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(128), unique=True)
    comment: Mapped[str | None] = mapped_column(sa.String(256))
    last_used: Mapped[datetime | None] = mapped_column(sa.DateTime)

    user: Mapped[User] = relationship(back_populates="ssh_keys")

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "key": self.key,
            "comment": self.comment,
            "created": self.created.isoformat() + "Z",
            "last_used": self.last_used.isoformat() + "Z" if self.last_used else None,
        }


class PGPKey(Base):
    __tablename__ = "pgp_key"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(128), unique=True)

    user: Mapped[User] = relationship(back_populates="pgp_keys")

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "key": self.key,
            "created": self.created.isoformat() + "Z",
        }


class LoginSession(Base):
    """One login: its number is sealed in the login cookie every service
    reads, so revoking it here (logout, a password change) signs that
    browser out everywhere within the services' revocation poll."""

    __tablename__ = "login_session"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    address: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(256))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime, index=True)

    user: Mapped[User] = relationship()


class DeletedUser(Base):
    """An account deleted at ``created``: ``id`` is the deleted user's. Its
    tokens, grants and login sessions went with it, so this row is what
    tells the other services (through the internal revocations list) to
    refuse every credential sealed for that user id."""

    __tablename__ = "deleted_user"
    __table_args__ = (sa.Index("ix_deleted_user_created", "created"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)


class PersonalAccessToken(Base):
    __tablename__ = "personal_access_token"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    comment: Mapped[str | None] = mapped_column(sa.String(256))
    scopes: Mapped[str] = mapped_column(sa.Text)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires: Mapped[datetime | None] = mapped_column(sa.DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime, index=True)

    user: Mapped[User] = relationship()


class OAuthClient(Base):
    """An OAuth2 client a user registered."""

    __tablename__ = "oauth_client"

    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: None for public clients (PKCE only, no secret).
    client_secret_hash: Mapped[str | None] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(256))
    description: Mapped[str | None] = mapped_column(sa.Text)
    url: Mapped[str | None] = mapped_column(sa.String(256))
    redirect_uris: Mapped[str] = mapped_column(sa.Text)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    owner: Mapped[User] = relationship()


class OAuthAuthorizationCode(Base):
    __tablename__ = "oauth_authorization_code"

    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    client_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(sa.Text)
    scope: Mapped[str] = mapped_column(sa.Text)
    code_challenge: Mapped[str | None] = mapped_column(sa.String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(sa.String(16))
    auth_time: Mapped[int] = mapped_column(sa.Integer)
    expires: Mapped[datetime] = mapped_column(sa.DateTime)
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    user: Mapped[User] = relationship()


class OAuthToken(Base):
    """An OAuth2 grant: an access token (sealed, verifiable by every service)
    and its refresh token, both stored only as hashes."""

    __tablename__ = "oauth_token"

    client_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(sa.Text)
    access_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    refresh_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    #: The authorization code the grant started from. Tokens refreshed from
    #: one another keep it, so a whole grant can be revoked at once.
    authorization_id: Mapped[int] = mapped_column(sa.Integer, index=True)
    issued_at: Mapped[int] = mapped_column(sa.Integer)
    expires_in: Mapped[int] = mapped_column(sa.Integer)
    #: When the refresh token was exchanged for a new pair: it works once.
    refreshed_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime, index=True)

    user: Mapped[User] = relationship()
