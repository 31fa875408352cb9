"""The second factor: TOTP (pyotp) and single-use recovery codes.

The TOTP secret is stored encrypted with a key derived for meta alone;
recovery codes are stored as Argon2 hashes and each works once.
"""

from __future__ import annotations

import base64
import secrets

import pyotp
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from srht_core import current_service, db_session, derive_key, utcnow

from .models import RecoveryCode, User
from .passwords import check_password, hash_password

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


def check_totp(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes; returns them (shown once)."""
    db_session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    for code in codes:
        db_session.add(RecoveryCode(user_id=user.id, code_hash=hash_password(code)))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    code = code.strip().lower()
    for row in db_session.scalars(sa.select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))):
        if check_password(row.code_hash, code):
            row.used_at = utcnow()
            return True
    return False


def check_second_factor(user: User, code: str) -> bool:
    """A current TOTP code, or an unused recovery code (used up by this)."""
    secret = open_secret(user.totp_secret) if user.totp_secret else None
    if secret and check_totp(secret, code):
        return True
    if "-" in code and use_recovery_code(user, code):
        from .accounts import audit

        audit(user, "recovery code used")
        db_session.commit()
        return True
    return False
