"""What meta's pages share: the account menu beside every settings page,
whether a form shows errors, mailed links, and pages that show a secret
once."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, make_response, url_for
from flask.typing import ResponseReturnValue

from srht_core import db_session, viewer

from ..accounts import AccountError, find_email_link, use_email_link
from ..models import EmailToken


def account_menu() -> list[tuple[str, str, str]]:
    """The side menu of every account page (``srht/settings.html``): its
    sections as ``(key, label, url)``; admins also get Admin."""
    items = [
        ("account", "Account", url_for("auth.index")),
        ("profile", "Profile", url_for("settings.profile")),
        ("security", "Security", url_for("settings.security")),
        ("keys", "SSH & PGP keys", url_for("keys.index")),
        ("tokens", "Access tokens", url_for("settings.tokens")),
        ("oauth", "OAuth clients", url_for("oauth.clients")),
        ("audit", "Audit log", url_for("settings.audit_log")),
    ]
    user = viewer()
    if user is not None and user.is_admin:
        items.append(("admin", "Admin", url_for("admin.users")))
    return items


def failed(form: Any) -> bool:
    """Whether any field of ``form`` shows an error, those put there after
    validation included (``form.errors`` may miss them)."""
    return any(field.errors for field in form)


def status_of(form: Any) -> int:
    """400 for a form shown again with its errors, 200 otherwise."""
    return 400 if failed(form) else 200


def no_store(page: ResponseReturnValue, status: int = 200) -> Response:
    """A page that shows a secret once: never kept by a cache or the browser."""
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def mailed_link(token: str, purpose: str, *, use: bool) -> EmailToken:
    """The mailed one-time link ``token``, used up when ``use``; the error
    page (400) saying why when it cannot be used."""
    try:
        return (use_email_link if use else find_email_link)(token, purpose)
    except AccountError as error:
        db_session.rollback()
        abort(400, str(error))
