"""Who may do what in meta: the rules behind every page and API call.

Everything a person manages here is their own: their profile, keys,
tokens, login sessions, OAuth2 clients, the access they granted, their
audit log. No page
or operation takes another user's id; an id in a URL (a key's, a token's,
a client's) is looked up among the viewer's own things, and anyone else's
does not exist for them: 404, never 403. Administration is for admins
alone; to anyone else signed in its pages do not exist either.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import abort

from srht_core import db_session, login_required, viewer

from .models import LoginSession, OAuthClient, PersonalAccessToken, PGPKey, SSHKey, User

__all__ = ["admin_required", "own_client", "own_key", "own_session", "own_token"]

F = TypeVar("F", bound=Callable[..., Any])


def admin_required(view: F) -> F:
    """Signed-in admins only; to everyone else signed in, the page does not
    exist (404); anonymous visitors are sent to log in."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not viewer().is_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def own_key(model: type[SSHKey] | type[PGPKey], key_id: int, user: User) -> SSHKey | PGPKey:
    """``user``'s SSH or PGP key number ``key_id``; 404 for anyone else's."""
    key = db_session.get(model, key_id)
    if not isinstance(key, SSHKey | PGPKey) or key.user_id != user.id:
        kind = "SSH" if model is SSHKey else "PGP"
        abort(404, f"You have no {kind} key {key_id}.")
    return key


def own_token(token_id: int, user: User) -> PersonalAccessToken:
    """``user``'s personal access token number ``token_id``; 404 for anyone else's."""
    pat = db_session.get(PersonalAccessToken, token_id)
    if pat is None or pat.user_id != user.id:
        abort(404, f"You have no personal access token {token_id}.")
    return pat


def own_session(session_id: int, user: User) -> LoginSession:
    """``user``'s login session number ``session_id``; 404 for anyone else's."""
    login = db_session.get(LoginSession, session_id)
    if login is None or login.user_id != user.id:
        abort(404, f"You have no login session {session_id}.")
    return login


def own_client(client_id: str, user: User) -> OAuthClient:
    """The OAuth2 client ``client_id`` that ``user`` registered; 404 for
    anyone else's."""
    client = db_session.scalar(
        sa.select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.owner_id == user.id
        )
    )
    if client is None:
        abort(404, "You have registered no OAuth client with that id.")
    return client
