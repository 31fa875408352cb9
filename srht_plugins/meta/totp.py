"""The second factor: TOTP (pyotp) and single-use recovery codes.

The TOTP secret is stored encrypted with a key derived for meta alone;
recovery codes are stored as keyed hashes (HMAC-SHA256 with a key derived
for meta alone: they are 64-bit random values, so a slow password hash
would only make every check slow) and each works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any, cast

import pyotp
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from markupsafe import Markup
from sqlalchemy.engine import CursorResult

from srht_core import current_service, db_session, derive_key, utcnow

from .accounts import audit
from .models import RecoveryCode, User

RECOVERY_CODES = 10


def _fernet() -> Fernet:
    secret = current_service().config["srht"]["service-key"]
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, "meta:totp")))


def seal_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def open_secret(sealed: str) -> str | None:
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    issuer = current_service().config["srht"]["site-name"]
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)


def qr_code_svg(uri: str) -> Markup:
    """``uri`` as a QR code: an inline SVG made here, so the page needs no
    JavaScript and no image request (and the secret never leaves the page)."""
    import segno  # only the setup page draws one

    code = segno.make(uri, error="m")
    svg = code.svg_inline(
        scale=4, border=4, dark="#000", light="#fff", svgclass="qr", title="QR code of the link"
    )
    labelled = svg.replace("<svg ", '<svg role="img" aria-label="QR code of the link" ', 1)
    return Markup(labelled)  # noqa: S704 - segno's paths and our fixed title, no user text


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (of 30 seconds) whose code ``code`` is, allowing one
    step of clock drift either way; ``None`` when it matches none."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time() if at is None else at) // totp.interval
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def check_totp(secret: str, code: str) -> bool:
    """Whether ``code`` is a current code of ``secret`` (reuse not checked:
    see :func:`accept_totp`)."""
    return matching_step(secret, code) is not None


def accept_totp(user: User, code: str, secret: str | None = None) -> bool:
    """Whether ``code`` is a current TOTP code of ``user`` not used before.
    An accepted code's time step is recorded (to be committed by the
    caller), so the same code, or an older one, is refused afterwards."""
    if secret is None:
        secret = open_secret(user.totp_secret) if user.totp_secret else None
    if not secret:
        return False
    step = matching_step(secret, code)
    if step is None:
        return False
    # One conditional UPDATE, so two requests racing with one code cannot
    # both win: the second waits for the first's row lock, then matches nothing.
    result = db_session.execute(
        sa.update(User)
        .where(
            User.id == user.id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step)
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session="fetch")
    )
    return cast(CursorResult[Any], result).rowcount == 1


def _code_hash(code: str) -> str:
    secret = current_service().config["srht"]["service-key"]
    key = derive_key(secret, "meta:recovery-codes")
    return hmac.new(key, code.strip().lower().encode(), hashlib.sha256).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes; returns them (shown once)."""
    db_session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    for code in codes:
        db_session.add(RecoveryCode(user_id=user.id, code_hash=_code_hash(code)))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    code = code.strip().lower()
    for row in db_session.scalars(
        sa.select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    ):
        if hmac.compare_digest(row.code_hash, _code_hash(code)):
            row.used_at = utcnow()
            return True
    return False


def check_second_factor(user: User, code: str) -> bool:
    """A current TOTP code not used before (recorded, not committed), or an
    unused recovery code (used up and committed by this)."""
    if accept_totp(user, code):
        return True
    if "-" in code and use_recovery_code(user, code):
        audit(user, "recovery code used")
        db_session.commit()
        return True
    return False
