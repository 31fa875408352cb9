"""OAuth2 on the web: the endpoints clients call, the consent page people
see, and the pages where users register and revoke their clients and the
access they granted.

The endpoints clients call directly (token, revoke, introspect) are not
browser forms: they are exempt from CSRF, take no cookies into account,
allow cross-origin calls, and answer RFC 6749 JSON errors. The consent
form is an ordinary CSRF-protected page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from authlib.oauth2 import OAuth2Error
from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from srht_core import (
    Problem,
    allow_csp,
    confirm,
    db_session,
    login_required,
    login_url,
    viewer,
)

from ..access import own_client
from ..accounts import audit
from ..forms import ClientForm
from ..models import OAuthClient, User
from ..oauth import (
    AUTHORIZATION_CODE_LIFETIME,
    authorization_server,
    client_problems,
    describe_scopes,
    init_app,
    live_grants,
    register_client,
    revoke_client,
    revoke_user_grant,
    server_metadata,
)
from ..totp import open_secret, seal_secret
from .common import failed, no_store, status_of

bp = Blueprint("oauth", __name__)


@bp.record_once
def attach_server(state: Any) -> None:
    init_app(state.app)


# -- what clients call ---------------------------------------------------------------


def _json_error(
    error: str, description: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def client_endpoint(view: Callable[[], Response]) -> Callable[[], Response]:
    """An endpoint OAuth2 clients call: POST only, no CSRF (clients
    authenticate themselves, cookies are ignored), errors as RFC 6749 JSON,
    the transaction committed only when the answer is a success."""

    @wraps(view)
    def wrapper() -> Response:
        if request.method != "POST":
            return _json_error("invalid_request", "Use POST.", 405, {"Allow": "POST"})
        try:
            response = view()
        except OAuth2Error as error:
            db_session.rollback()
            return authorization_server().handle_error_response(None, error)  # type: ignore[no-any-return]
        if response.status_code == 200:
            db_session.commit()
        else:
            db_session.rollback()
        return response

    wrapper.srht_csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper


@bp.route("/oauth2/token", methods=["GET", "POST"])
@client_endpoint
def token() -> Response:
    return authorization_server().create_token_response()  # type: ignore[no-any-return]


@bp.route("/oauth2/revoke", methods=["GET", "POST"])
@client_endpoint
def revoke() -> Response:
    return authorization_server().create_endpoint_response(  # type: ignore[no-any-return]
        "revocation"
    )


@bp.route("/oauth2/introspect", methods=["GET", "POST"])
@client_endpoint
def introspect() -> Response:
    return authorization_server().create_endpoint_response(  # type: ignore[no-any-return]
        "introspection"
    )


@bp.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    return jsonify(dict(server_metadata()))


CROSS_ORIGIN = {"oauth.token", "oauth.revoke", "oauth.introspect", "oauth.metadata"}


@bp.after_request
def allow_cross_origin(response: Response) -> Response:
    # Browser apps (public clients) call these from their own origin; no
    # cookie is ever looked at, so any origin may.
    if request.endpoint in CROSS_ORIGIN:
        response.headers["Access-Control-Allow-Origin"] = "*"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "3600"
    return response


# -- consent -------------------------------------------------------------------------


def _authorization_error(error: OAuth2Error) -> ResponseReturnValue:
    """Send the error to the client when its redirect URI is known to be
    its own; otherwise tell the person in the browser (RFC 6749 4.1.2.1)."""
    if error.redirect_uri:
        return authorization_server().handle_error_response(None, error)  # type: ignore[no-any-return]
    return render_template("meta/oauth-error.html", error=error), error.status_code or 400


def _form_action_source(uri: str) -> str:
    """The CSP source that lets a form's answer redirect to ``uri``."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


@bp.route("/oauth2/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """The authorization endpoint: show the consent page (GET), record the
    decision (POST, from that page's CSRF-protected form)."""
    user = viewer()
    if user is None:
        if request.method != "GET":
            abort(401)
        return redirect(login_url(request.full_path))
    server = authorization_server()
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return _authorization_error(error)
    client = grant.client.row
    if request.method == "GET":
        page = render_template(
            "meta/oauth-consent.html",
            client=client,
            user=user,
            scopes=describe_scopes(grant.request.scope),
            redirect_uri=grant.redirect_uri,
            action=request.full_path.rstrip("?"),
        )
        # Browsers hold the redirect that answers a form to the page's
        # form-action, so the consent page also allows the client's redirect URI.
        allow_csp("form-action", _form_action_source(grant.redirect_uri))
        return no_store(page)
    approved = request.form.get("decision") == "approve"
    response = server.create_authorization_response(
        grant=grant, grant_user=user if approved else None
    )
    if approved and response.status_code == 302:
        audit(
            user,
            "OAuth authorization granted",
            f"{client.name} ({client.client_id}): {grant.request.scope}",
        )
    db_session.commit()
    return response  # type: ignore[no-any-return]


# -- clients, for their owners ----------------------------------------------------------------


def _me() -> User:
    user: User = viewer()
    return user


@bp.get("/oauth2/clients")
@login_required
def clients() -> ResponseReturnValue:
    """The user's clients and the access they granted to clients."""
    owned = db_session.scalars(
        sa.select(OAuthClient)
        .where(OAuthClient.owner_id == _me().id)
        .order_by(OAuthClient.revoked_at.is_not(None), OAuthClient.created.desc())
    )
    return render_template(
        "meta/oauth-clients.html", clients=list(owned), grants=live_grants(_me())
    )


@bp.route("/oauth2/clients/register", methods=["GET", "POST"])
@login_required
def register() -> ResponseReturnValue:
    form = ClientForm()
    if form.is_submitted():
        valid = form.validate()
        url = (form.url.data or "").strip()
        if url and not form.url.errors and not url.lower().startswith(("https://", "http://")):
            form.show(Problem("url", "The website must be an http or https URL."))
        uris = (form.redirect_uris.data or "").splitlines()
        # Every problem at once: the form's own, then each redirect URI's.
        for problem in client_problems(form.name.data or "", uris):
            if not form[problem.field].errors:
                form.show(problem)
        if valid and not failed(form):
            client, secret = register_client(
                _me(),
                form.name.data,
                uris,
                confidential=form.client_type.data == "confidential",
                description=(form.description.data or "").strip(),
                url=url,
            )
            db_session.commit()
            # Post/redirect/get: the secret is shown once, on a page that a
            # reload does not turn into another client (sealed: the session
            # cookie is signed, not encrypted).
            session["new_client"] = {
                "client": client.client_id,
                "secret": seal_secret(secret) if secret else None,
            }
            return redirect(url_for("oauth.registered", client_id=client.client_id))
    return render_template("meta/oauth-client-register.html", form=form), status_of(form)


@bp.get("/oauth2/clients/<client_id>/registered")
@login_required
def registered(client_id: str) -> ResponseReturnValue:
    """The client just registered and its secret, shown once."""
    client = own_client(client_id, _me())
    made = session.get("new_client")
    if not isinstance(made, dict) or made.get("client") != client.client_id:
        return redirect(url_for("oauth.client", client_id=client.client_id))
    session.pop("new_client", None)
    sealed = made.get("secret")
    page = render_template(
        "meta/oauth-client-registered.html",
        client=client,
        secret=open_secret(str(sealed)) if sealed else None,
        metadata_url=url_for("oauth.metadata", _external=False),
    )
    return no_store(page)  # the secret, shown once


@bp.get("/oauth2/clients/<client_id>")
@login_required
def client(client_id: str) -> ResponseReturnValue:
    return render_template(
        "meta/oauth-client.html",
        client=own_client(client_id, _me()),
        code_minutes=AUTHORIZATION_CODE_LIFETIME // 60,
    )


@bp.route("/oauth2/clients/<client_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_client_page(client_id: str) -> ResponseReturnValue:
    client = own_client(client_id, _me())
    if client.revoked_at is not None:
        flash(f"{client.name} is revoked already.", "success")
        return redirect(url_for("oauth.clients"))
    question = confirm(
        f"Revoke the client {client.name}?",
        "Nobody can authorize it again, and every token it holds stops working at once, "
        "on every service of this site.",
        "This cannot be undone: the application would need a new client.",
        cancel=url_for("oauth.client", client_id=client.client_id),
        button="Revoke",
    )
    if question is not None:
        return question
    revoke_client(client)
    db_session.commit()
    flash(
        f"{client.name} is revoked: it cannot sign anyone in, and every token it held "
        "has stopped working.",
        "success",
    )
    return redirect(url_for("oauth.clients"))


@bp.route("/oauth2/authorizations/<int:authorization_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke_authorization(authorization_id: int) -> ResponseReturnValue:
    user = _me()
    grant = next((g for g in live_grants(user) if g.authorization_id == authorization_id), None)
    if grant is None:
        abort(404, "You granted no such access, or it has ended already.")
    question = confirm(
        f"Revoke the access you gave {grant.client.name}?",
        f"It had {grant.scope}. Its tokens stop working at once, on every service of this "
        "site; to use your account again it must ask you anew.",
        cancel=url_for("oauth.clients"),
        button="Revoke",
    )
    if question is not None:
        return question
    revoke_user_grant(user, authorization_id)
    db_session.commit()
    flash("Access revoked: that application's tokens have stopped working.", "success")
    return redirect(url_for("oauth.clients"))
