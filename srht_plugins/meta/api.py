"""meta's API: the token owner's profile, and the internal API the other
services call (profiles for mirroring, token revocations, SSH keys by
fingerprint)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, request

from srht_core import (
    api_blueprint,
    api_user,
    db_session,
    internal_only_credential,
    require_scope,
)

from .accounts import revoked_since
from .models import SSHKey, User

api = api_blueprint("meta_api", __name__)
internal = Blueprint("meta_internal", __name__, url_prefix="/internal")
public = Blueprint("meta_public", __name__)


@api.get("/user")
@require_scope("meta/profile")
def get_user() -> Any:
    """The profile of the token's owner (scope ``meta/profile:RO``: a token
    granted for tickets alone does not reveal its owner's email)."""
    return api_user().profile()


@internal.get("/users/<int:user_id>")
@internal_only_credential
def internal_user(user_id: int) -> Any:
    user = db_session.get(User, user_id)
    if user is None:
        abort(404)
    return user.profile()


@internal.get("/tokens/revoked")
@internal_only_credential
def internal_revoked() -> Any:
    import time

    try:
        since = float(request.args.get("since", "0"))
    except ValueError:
        since = 0.0
    now = time.time()
    # Look back a little further than asked, so a revocation committed while
    # the previous answer was being made is not missed.
    return {"revoked": revoked_since(max(0.0, since - 5)), "now": now}


@internal.get("/ssh-keys")
@internal_only_credential
def internal_ssh_key() -> Any:
    """The SSH key whose fingerprint is ``?fingerprint=SHA256:...`` and its
    owner's profile (suspended or not: the caller decides), for the git
    service's AuthorizedKeysCommand."""
    fingerprint = request.args.get("fingerprint", "")
    key = db_session.scalar(sa.select(SSHKey).where(SSHKey.fingerprint == fingerprint))
    if key is None:
        abort(404)
    user = db_session.get(User, key.user_id)
    if user is None:
        abort(404)
    return {"fingerprint": key.fingerprint, "key": key.key, "user": user.profile()}


@public.get("/~<username>.keys")
def ssh_keys(username: str) -> Any:
    """A user's SSH public keys, one per line (like GitHub's ``.keys``)."""
    user = db_session.scalar(sa.select(User).where(User.username == username))
    if user is None or user.is_suspended:
        abort(404)
    keys = db_session.scalars(
        sa.select(SSHKey.key).where(SSHKey.user_id == user.id).order_by(SSHKey.id)
    )
    return Response("".join(k.strip() + "\n" for k in keys), mimetype="text/plain")
