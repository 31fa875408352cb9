"""meta's OAuth2 provider, as client developers and users meet it.

Two halves. Through a real gunicorn meta (``oauth_site``) a real OAuth2
client library, authlib's ``OAuth2Session``, starts from the discovery
document alone and completes authorization code + PKCE, uses, refreshes,
introspects and revokes tokens, while a ``requests.Session`` plays the
browser (login and consent forms with their scraped CSRF tokens); every
malformed or hostile request is refused with the RFC's error. In-process
(``oauth_app``, same real PostgreSQL): the pages (client registration,
consent, revocation) and what they store.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import sqlalchemy as sa
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from srht_core.config import dump_ini
from srht_core.testing import serve_service, site_config

pytestmark = [pytest.mark.postgres]

#: The password of every user the oauth_ fixtures create.
OAUTH_PASSWORD = "correct horse battery staple"


# -- fixtures: meta in-process, and meta under gunicorn --------------------------------


@pytest.fixture
def oauth_app(
    register_plugin: Callable[..., Any],
    make_config: Callable[..., Any],
    make_app: Callable[..., Any],
    srht_database_url: str,
) -> Any:
    """meta's app on a fresh PostgreSQL database, migrated."""
    import srht_plugins.meta

    record = register_plugin(srht_plugins.meta, "meta", distribution="srht")
    assert record.ok, record.reason
    return make_app("meta", make_config({"meta": {"connection-string": srht_database_url}}))


def oauth_srht(config: Path, *args: str, stdin: str | None = None) -> str:
    """Run ``srht --config CONFIG ARGS``; fail with what it said when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "srht_core.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"srht {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class OAuthSite:
    """meta served by gunicorn: its URL (= its configured origin), config
    and database; ``alice`` and ``bob`` exist with :data:`OAUTH_PASSWORD`."""

    url: str
    config: Path
    database_url: str


@pytest.fixture(scope="module")
def oauth_site(srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthSite]:
    """meta under ``srht serve`` (gunicorn) on the port of its configured
    origin, its database migrated by ``srht migrate``, its users made by
    ``srht meta create-user``: shared by this module's HTTP tests."""
    root = tmp_path_factory.mktemp("oauth-site")
    database_url = srht_postgres.create_database()
    data = site_config(root / "data", {"meta": {"connection-string": database_url}})
    config = root / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    oauth_srht(config, "migrate")
    for name in ("alice", "bob"):
        oauth_srht(
            config,
            "meta",
            "create-user",
            name,
            "--email",
            f"{name}@example.org",
            "--password-stdin",
            stdin=OAUTH_PASSWORD + "\n",
        )
    origin = data["meta"]["origin"]
    with serve_service("meta", config, port=urlsplit(origin).port) as url:
        assert url == origin
        yield OAuthSite(url, config, database_url)


REDIRECT_URI = "http://127.0.0.1:9/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other"
PROFILE = "meta/profile:RO"
TIMEOUT = 60


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def verifier_and_challenge() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, create_s256_code_challenge(verifier)


# -- the browser part, over HTTP ---------------------------------------------------


class Browser:
    """A person with a browser: a ``requests.Session`` that posts the real
    forms with their CSRF tokens and never follows redirects by itself."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(self._url(url), allow_redirects=False, timeout=TIMEOUT)

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        return self.http.post(self._url(url), data=data, allow_redirects=False, timeout=TIMEOUT)

    def submit(self, url: str, data: dict[str, str]) -> requests.Response:
        """Open the form at ``url`` and post it with its CSRF token."""
        page = self.get(url)
        assert page.status_code == 200, page.text
        return self.post(url, {"csrf_token": csrf_token(page.text), **data})

    def _url(self, url: str) -> str:
        return url if url.startswith("http") else self.base + url

    def log_in(self, username: str) -> None:
        answer = self.submit("/login", {"username": username, "password": OAUTH_PASSWORD})
        assert answer.status_code == 302, answer.text

    def register_client(
        self, name: str, *, public: bool, redirect_uris: tuple[str, ...] = (REDIRECT_URI,)
    ) -> tuple[str, str]:
        """Register a client on the pages; return its id and secret ("" for public)."""
        answer = self.submit(
            "/oauth2/clients/register",
            {
                "name": name,
                "redirect_uris": "\n".join(redirect_uris),
                "client_type": "public" if public else "confidential",
            },
        )
        # Post/redirect/get: the secret is on the page the form redirects to.
        assert answer.status_code == 302, answer.text
        answer = self.get(answer.headers["Location"])
        assert answer.status_code == 200, answer.text
        client_id = re.search(r'<code id="client-id">([^<]+)</code>', answer.text)
        secret = re.search(r'<code id="client-secret">([^<]+)</code>', answer.text)
        assert client_id, answer.text
        assert (secret is None) == public
        return client_id.group(1), secret.group(1) if secret else ""

    def consent(self, authorization_url: str, decision: str = "approve") -> requests.Response:
        """Open the consent page for ``authorization_url`` and answer it."""
        page = self.get(authorization_url)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action
        return self.post(
            action.group(1).replace("&amp;", "&"),
            {"csrf_token": csrf_token(page.text), "decision": decision},
        )


@pytest.fixture(scope="module")
def discovery(oauth_site: OAuthSite) -> dict[str, Any]:
    """The server metadata document: all a client is told."""
    answer = requests.get(
        oauth_site.url + "/.well-known/oauth-authorization-server", timeout=TIMEOUT
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def alice(oauth_site: OAuthSite) -> Iterator[Browser]:
    browser = Browser(oauth_site.url)
    browser.log_in("alice")
    yield browser
    browser.http.close()


@pytest.fixture(scope="module")
def public_client(alice: Browser) -> str:
    client_id, _ = alice.register_client("Pocket app", public=True)
    return client_id


@pytest.fixture(scope="module")
def confidential_client(alice: Browser) -> tuple[str, str]:
    return alice.register_client("Server app", public=False)


@pytest.fixture
def clients() -> Iterator[Callable[..., OAuth2Session]]:
    """``clients(client_id, secret, **options)`` → an ``OAuth2Session``
    (PKCE with S256 unless ``code_challenge_method=None``), closed after
    the test."""
    made: list[OAuth2Session] = []

    def make(client_id: str, secret: str = "", **options: Any) -> OAuth2Session:
        settings = {
            "scope": PROFILE,
            "redirect_uri": REDIRECT_URI,
            "code_challenge_method": "S256",
            **options,
        }
        made.append(OAuth2Session(client_id, secret or None, **settings))
        return made[-1]

    yield make
    for session in made:
        session.close()


def authorize(
    browser: Browser, discovery: dict[str, Any], client: OAuth2Session
) -> tuple[dict[str, Any], str, str]:
    """Run the authorization part with PKCE; return the token, the code
    verifier and the redirect the client received."""
    verifier = secrets.token_urlsafe(48)
    url, _state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier
    )
    answer = browser.consent(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    token = client.fetch_token(
        discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    return token, verifier, location


def api_user(site: OAuthSite, access_token: str) -> requests.Response:
    return requests.get(
        site.url + "/api/user", timeout=TIMEOUT, headers={"Authorization": f"Bearer {access_token}"}
    )


def token_request(site: OAuthSite, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(site.url + "/oauth2/token", data=data, timeout=TIMEOUT, **kwargs)


# -- through gunicorn: the whole flow, from discovery alone --------------------------------


@pytest.mark.slow
def test_the_discovery_document_names_every_endpoint_and_scope(
    oauth_site: OAuthSite, discovery: dict[str, Any]
) -> None:
    document = discovery
    AuthorizationServerMetadata(document).validate()
    base = oauth_site.url
    assert document["issuer"] == base
    assert document["authorization_endpoint"] == base + "/oauth2/authorize"
    assert document["token_endpoint"] == base + "/oauth2/token"
    assert document["revocation_endpoint"] == base + "/oauth2/revoke"
    assert document["introspection_endpoint"] == base + "/oauth2/introspect"
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["scopes_supported"] == [
        "meta/keys:RO",
        "meta/keys:RW",
        "meta/profile:RO",
        "meta/profile:RW",
    ]
    assert "none" in document["token_endpoint_auth_methods_supported"]


@pytest.mark.slow
def test_a_public_client_completes_the_flow_from_the_discovery_document(
    oauth_site: OAuthSite,
    discovery: dict[str, Any],
    alice: Browser,
    public_client: str,
    clients: Callable[..., OAuth2Session],
) -> None:
    client = clients(public_client)
    token, _verifier, location = authorize(alice, discovery, client)

    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == PROFILE
    assert token["expires_in"] == 3600
    assert "state" in query(location)
    profile = client.get(oauth_site.url + "/api/user", timeout=TIMEOUT)
    assert profile.status_code == 200
    assert profile.json()["username"] == "alice"

    # Refreshing rotates the pair.
    first = dict(token)
    refreshed = client.refresh_token(discovery["token_endpoint"])
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert client.get(oauth_site.url + "/api/user", timeout=TIMEOUT).status_code == 200

    introspected = client.introspect_token(
        discovery["introspection_endpoint"], token=refreshed["access_token"]
    ).json()
    assert introspected["active"] is True
    assert introspected["client_id"] == public_client
    assert introspected["username"] == "alice"
    assert introspected["scope"] == PROFILE
    assert introspected["token_type"] == "Bearer"
    assert introspected["exp"] > introspected["iat"]
    assert (
        client.introspect_token(
            discovery["introspection_endpoint"],
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        ).json()["active"]
        is True
    )

    revoked = client.revoke_token(
        discovery["revocation_endpoint"],
        token=refreshed["access_token"],
        token_type_hint="access_token",
    )
    assert revoked.status_code == 200
    assert client.introspect_token(
        discovery["introspection_endpoint"], token=refreshed["access_token"]
    ).json() == {"active": False}
    refused = api_user(oauth_site, refreshed["access_token"])
    assert refused.status_code == 401
    assert refused.json() == {"errors": [{"reason": "the token has been revoked"}]}

    # The refresh token issued with the revoked access token went with it,
    # and the first one was spent by the rotation.
    for old in (refreshed["refresh_token"], first["refresh_token"]):
        with pytest.raises(OAuthError) as failed:
            client.refresh_token(discovery["token_endpoint"], refresh_token=old)
        assert failed.value.error == "invalid_grant"


@pytest.mark.slow
def test_a_spent_refresh_token_presented_again_revokes_the_whole_grant(
    oauth_site: OAuthSite,
    discovery: dict[str, Any],
    alice: Browser,
    public_client: str,
    clients: Callable[..., OAuth2Session],
) -> None:
    client = clients(public_client)
    first, _verifier, _location = authorize(alice, discovery, client)
    first = dict(first)
    second = dict(client.refresh_token(discovery["token_endpoint"]))
    assert api_user(oauth_site, second["access_token"]).status_code == 200
    # The access token the rotation replaced lives out its short lifetime.
    assert api_user(oauth_site, first["access_token"]).status_code == 200

    # Someone replays the spent refresh token: one of the two parties holding
    # it stole it, so nothing of this grant works any more.
    with pytest.raises(OAuthError) as failed:
        client.refresh_token(discovery["token_endpoint"], refresh_token=first["refresh_token"])
    assert failed.value.error == "invalid_grant"
    assert "used already" in failed.value.description
    assert api_user(oauth_site, second["access_token"]).status_code == 401
    assert api_user(oauth_site, first["access_token"]).status_code == 401
    with pytest.raises(OAuthError):
        client.refresh_token(discovery["token_endpoint"], refresh_token=second["refresh_token"])


@pytest.mark.slow
def test_a_confidential_client_authenticates_with_its_secret(
    oauth_site: OAuthSite,
    discovery: dict[str, Any],
    alice: Browser,
    confidential_client: tuple[str, str],
    clients: Callable[..., OAuth2Session],
) -> None:
    client_id, secret = confidential_client
    # PKCE is allowed (and then checked) for confidential clients...
    client = clients(client_id, secret)
    token, _verifier, _location = authorize(alice, discovery, client)
    assert api_user(oauth_site, token["access_token"]).json()["username"] == "alice"

    # ... but not required.
    plain = clients(client_id, secret, code_challenge_method=None)
    url, _state = plain.create_authorization_url(discovery["authorization_endpoint"])
    location = alice.consent(url).headers["Location"]
    token = plain.fetch_token(discovery["token_endpoint"], authorization_response=location)
    assert api_user(oauth_site, token["access_token"]).status_code == 200

    # A wrong secret, or none, gets nowhere.
    url, _state = plain.create_authorization_url(discovery["authorization_endpoint"])
    code = query(alice.consent(url).headers["Location"])["code"]
    for auth, data in (((client_id, "wrong"), {}), (None, {"client_id": client_id})):
        answer = token_request(
            oauth_site,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                **data,
            },
            auth=auth,
        )
        assert answer.status_code in (400, 401)
        assert answer.json()["error"] == "invalid_client"


@pytest.mark.slow
def test_introspection_and_revocation_answer_only_the_client_that_owns_the_token(
    oauth_site: OAuthSite,
    discovery: dict[str, Any],
    alice: Browser,
    public_client: str,
    confidential_client: tuple[str, str],
    clients: Callable[..., OAuth2Session],
) -> None:
    token, _verifier, _location = authorize(alice, discovery, clients(public_client))
    other = clients(*confidential_client)

    assert other.introspect_token(
        discovery["introspection_endpoint"], token=token["access_token"]
    ).json() == {"active": False}
    refused = other.revoke_token(discovery["revocation_endpoint"], token=token["access_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert api_user(oauth_site, token["access_token"]).status_code == 200
    # Revoking what does not exist is not an error (RFC 7009).
    assert (
        other.revoke_token(discovery["revocation_endpoint"], token="no such token").status_code
        == 200
    )


# -- through gunicorn: refused requests ----------------------------------------------------


def authorization_url(discovery: dict[str, Any], client_id: str, **overrides: str) -> str:
    _verifier, challenge = verifier_and_challenge()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": PROFILE,
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return (
        discovery["authorization_endpoint"]
        + "?"
        + urlencode({k: v for k, v in params.items() if v is not None and v != "-"})
    )


@pytest.mark.slow
def test_an_unregistered_redirect_uri_is_refused_without_redirecting(
    discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    for uri in (
        OTHER_REDIRECT_URI,
        REDIRECT_URI + "/",
        REDIRECT_URI + "?x=1",
        "https://evil.example/callback",
    ):
        page = alice.get(authorization_url(discovery, public_client, redirect_uri=uri))
        assert page.status_code == 400
        assert "Location" not in page.headers
        assert f"The redirect URI {uri} is not registered for this client" in page.text
    page = alice.get(authorization_url(discovery, "no-such-client"))
    assert page.status_code == 400
    assert "The client does not exist on this server." in page.text


@pytest.mark.slow
def test_the_redirect_uri_must_be_the_same_at_the_token_endpoint(
    oauth_site: OAuthSite, discovery: dict[str, Any], alice: Browser
) -> None:
    client_id, _ = alice.register_client(
        "Two callbacks", public=True, redirect_uris=(REDIRECT_URI, OTHER_REDIRECT_URI)
    )
    verifier, challenge = verifier_and_challenge()
    location = alice.consent(
        authorization_url(discovery, client_id, code_challenge=challenge)
    ).headers["Location"]
    answer = token_request(
        oauth_site,
        {
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "client_id": client_id,
            "redirect_uri": OTHER_REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid 'redirect_uri' in request.",
    }


@pytest.mark.slow
def test_a_public_client_must_use_pkce_with_s256(
    discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    for overrides, reason in (
        ({"code_challenge": "-", "code_challenge_method": "-"}, "must use PKCE"),
        ({"code_challenge_method": "plain"}, "Unsupported 'code_challenge_method'"),
        ({"code_challenge_method": "-"}, "code_challenge_method=S256"),
    ):
        answer = alice.get(authorization_url(discovery, public_client, **overrides))
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT_URI + "?")
        error = query(location)
        assert error["error"] == "invalid_request"
        assert reason in error["error_description"]
        assert error["state"] == "xyz"


@pytest.mark.slow
def test_a_wrong_or_missing_code_verifier_is_refused(
    oauth_site: OAuthSite, discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    verifier, challenge = verifier_and_challenge()
    location = alice.consent(
        authorization_url(discovery, public_client, code_challenge=challenge)
    ).headers["Location"]
    exchange = {
        "grant_type": "authorization_code",
        "code": query(location)["code"],
        "client_id": public_client,
        "redirect_uri": REDIRECT_URI,
    }
    wrong = token_request(oauth_site, {**exchange, "code_verifier": secrets.token_urlsafe(48)})
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "Code challenge failed."}
    missing = token_request(oauth_site, exchange)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert "code_verifier" in missing.json()["error_description"]
    # The failures did not spend the code.
    right = token_request(oauth_site, {**exchange, "code_verifier": verifier})
    assert right.status_code == 200
    assert right.headers["Cache-Control"] == "no-store"


@pytest.mark.slow
def test_a_code_works_once_and_its_reuse_revokes_what_it_gave(
    oauth_site: OAuthSite, discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    verifier, challenge = verifier_and_challenge()
    location = alice.consent(
        authorization_url(discovery, public_client, code_challenge=challenge)
    ).headers["Location"]
    exchange = {
        "grant_type": "authorization_code",
        "code": query(location)["code"],
        "client_id": public_client,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    first = token_request(oauth_site, exchange)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert api_user(oauth_site, access).status_code == 200

    again = token_request(oauth_site, exchange)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "used already" in again.json()["error_description"]
    assert api_user(oauth_site, access).status_code == 401


@pytest.mark.slow
def test_unknown_and_malformed_scopes_are_refused(
    discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    for scope, reason in (
        (
            "todo/tickets:RO",
            "Unknown scope todo/tickets:RO; this site offers meta/keys, "
            "meta/profile (each :RO or :RW).",
        ),
        ("meta/profile", "'meta/profile' is not a scope like service/resource:RO or :RW"),
        ("meta/profile:RO everything", "'everything' is not a scope"),
        ("-", "Ask for at least one scope"),
    ):
        answer = alice.get(authorization_url(discovery, public_client, scope=scope))
        assert answer.status_code == 302, answer.text
        error = query(answer.headers["Location"])
        assert error["error"] == "invalid_scope"
        assert error["error_description"].startswith(reason)


@pytest.mark.slow
def test_a_consent_post_without_its_csrf_token_is_refused(
    oauth_site: OAuthSite, discovery: dict[str, Any], alice: Browser
) -> None:
    client_id, _ = alice.register_client("Never approved", public=True)
    url = authorization_url(discovery, client_id)
    for data in ({"decision": "approve"}, {"decision": "approve", "csrf_token": "forged"}):
        answer = alice.post(url, data)
        assert answer.status_code == 400
        assert "Location" not in answer.headers
        assert "CSRF" in answer.text
    engine = sa.create_engine(oauth_site.database_url)
    try:
        with engine.connect() as connection:
            codes = connection.execute(
                sa.text("SELECT count(*) FROM oauth_authorization_code WHERE client_id = :c"),
                {"c": client_id},
            ).scalar()
    finally:
        engine.dispose()
    assert codes == 0


@pytest.mark.slow
def test_denying_sends_access_denied_to_the_client(
    discovery: dict[str, Any], alice: Browser, public_client: str
) -> None:
    answer = alice.consent(authorization_url(discovery, public_client), decision="deny")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    error = query(location)
    assert (error["error"], error["state"]) == ("access_denied", "xyz")
    assert "code" not in error


@pytest.mark.slow
def test_the_client_endpoints_answer_rfc_6749_json(
    oauth_site: OAuthSite, public_client: str
) -> None:
    wrong_method = requests.get(oauth_site.url + "/oauth2/token", timeout=TIMEOUT)
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "invalid_request", "error_description": "Use POST."}
    password = token_request(
        oauth_site,
        {
            "grant_type": "password",
            "username": "alice",
            "password": OAUTH_PASSWORD,
            "client_id": public_client,
        },
    )
    assert password.status_code == 400
    assert password.json()["error"] == "unsupported_grant_type"
    unknown = token_request(
        oauth_site, {"grant_type": "authorization_code", "code": "x", "client_id": "no-such-client"}
    )
    assert unknown.json()["error"] == "invalid_client"
    preflight = requests.options(
        oauth_site.url + "/oauth2/token",
        timeout=TIMEOUT,
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.slow
def test_anonymous_visitors_log_in_first_and_come_back_to_the_consent_page(
    oauth_site: OAuthSite, discovery: dict[str, Any], public_client: str
) -> None:
    bob = Browser(oauth_site.url)
    try:
        url = authorization_url(discovery, public_client)
        answer = bob.get(url)
        assert answer.status_code == 302
        login = answer.headers["Location"]
        assert login.startswith(oauth_site.url + "/login?")
        page = bob.get(login)
        logged_in = bob.post(
            login,
            {
                "csrf_token": csrf_token(page.text),
                "username": "bob",
                "password": OAUTH_PASSWORD,
                "return_to": query(login)["return_to"],
            },
        )
        assert logged_in.status_code == 302
        consent = bob.get(logged_in.headers["Location"])
        assert consent.status_code == 200
        assert "Authorize Pocket app?" in consent.text
        assert "~bob" in consent.text
    finally:
        bob.http.close()


# -- in-process: the pages and what they store ---------------------------------------------


@pytest.fixture
def meta(oauth_app: Any) -> Iterator[Any]:
    """A test client signed in as alice (created through the accounts API)."""
    from srht_core import db_session
    from srht_plugins.meta.accounts import create_user
    from srht_plugins.meta.models import ACTIVE

    with oauth_app.app_context():
        for name in ("alice", "bob"):
            create_user(name, f"{name}@example.org", OAUTH_PASSWORD, user_type=ACTIVE)
        db_session.commit()
    client = oauth_app.test_client()
    log_in(client, "alice")
    yield client


def log_in(client: Any, username: str) -> None:
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.text),
            "username": username,
            "password": OAUTH_PASSWORD,
        },
    )
    assert answer.status_code == 302, answer.text


def submit(client: Any, url: str, data: dict[str, str]) -> Any:
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(page.text), **data})


def rows(app: Any, statement: str, **params: Any) -> list[Any]:
    with app.extensions["srht"].db.engine.connect() as connection:
        return list(connection.execute(sa.text(statement), params))


def audit_events(app: Any, username: str) -> list[tuple[str, str | None]]:
    return [
        (r.event, r.details)
        for r in rows(
            app,
            'SELECT event, details FROM audit_log JOIN "user" ON "user".id = user_id '
            "WHERE username = :u ORDER BY audit_log.id",
            u=username,
        )
    ]


def test_registering_shows_the_secret_once_and_stores_only_its_hash(
    oauth_app: Any, meta: Any
) -> None:
    answer = submit(
        meta,
        "/oauth2/clients/register",
        {
            "name": "Server app",
            "description": "Syncs things",
            "url": "https://app.example",
            "redirect_uris": "https://app.example/cb\r\nhttp://localhost:8000/cb\r\n",
            "client_type": "confidential",
        },
    )
    # Post/redirect/get: the secret is shown once, on the page redirected to.
    assert answer.status_code == 302
    location = answer.headers["Location"]
    answer = meta.get(location)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    client_id = re.search(r'<code id="client-id">([^<]+)</code>', answer.text).group(1)
    secret = re.search(r'<code id="client-secret">([^<]+)</code>', answer.text).group(1)

    (stored,) = rows(oauth_app, "SELECT * FROM oauth_client WHERE client_id = :c", c=client_id)
    assert stored.client_secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.redirect_uris.split() == ["https://app.example/cb", "http://localhost:8000/cb"]
    assert secret not in meta.get(f"/oauth2/clients/{client_id}").text
    reloaded = meta.get(location)  # a reload shows no secret and makes no client
    assert reloaded.status_code == 302 and secret not in reloaded.text
    assert len(rows(oauth_app, "SELECT id FROM oauth_client WHERE name = 'Server app'")) == 1
    listing = meta.get("/oauth2/clients").text
    assert "Server app" in listing and client_id in listing and secret not in listing
    assert ("OAuth client registered", f"Server app ({client_id})") in audit_events(
        oauth_app, "alice"
    )

    public = submit(
        meta,
        "/oauth2/clients/register",
        {"name": "Pocket app", "redirect_uris": "com.example.pocket:/cb", "client_type": "public"},
    )
    assert public.status_code == 302
    public = meta.get(public.headers["Location"])
    assert public.status_code == 200
    assert 'id="client-secret"' not in public.text
    assert (
        rows(oauth_app, "SELECT client_secret_hash FROM oauth_client WHERE name = 'Pocket app'")[
            0
        ].client_secret_hash
        is None
    )


@pytest.mark.parametrize(
    ("uris", "reason"),
    [
        ("", "This field is required."),
        ("/callback", "/callback must be an absolute URL"),
        ("https://app.example/cb#frag", "must not contain a fragment"),
        ("javascript://alert(1)", "must use https, or a private-use scheme"),
        ("mything:/cb", "must use https, or a private-use scheme"),
        ("https://user:pw@app.example/cb", "must not contain a user name or password"),
        ("\n".join(f"https://app.example/{i}" for i in range(11)), "at most 10 redirect URIs"),
    ],
    ids=["empty", "relative", "fragment", "javascript", "bare-scheme", "userinfo", "too-many"],
)
def test_bad_redirect_uris_are_refused_and_nothing_is_stored(
    oauth_app: Any, meta: Any, uris: str, reason: str
) -> None:
    answer = submit(
        meta,
        "/oauth2/clients/register",
        {"name": "Bad", "redirect_uris": uris, "client_type": "public"},
    )
    assert answer.status_code == 400
    assert reason in answer.text
    assert rows(oauth_app, "SELECT id FROM oauth_client") == []


def test_registering_needs_a_login_and_a_csrf_token(oauth_app: Any, meta: Any) -> None:
    anonymous = oauth_app.test_client()
    assert anonymous.get("/oauth2/clients/register").status_code == 302
    forged = meta.post(
        "/oauth2/clients/register",
        data={"name": "x", "redirect_uris": REDIRECT_URI, "client_type": "public"},
    )
    assert forged.status_code == 400
    assert rows(oauth_app, "SELECT id FROM oauth_client") == []


def register(meta: Any, *, public: bool = True) -> str:
    answer = submit(
        meta,
        "/oauth2/clients/register",
        {
            "name": "Pocket app",
            "description": "Reads your profile.",
            "redirect_uris": REDIRECT_URI,
            "client_type": "public" if public else "confidential",
        },
    )
    shown = meta.get(answer.headers["Location"])  # post/redirect/get
    return re.search(r'<code id="client-id">([^<]+)</code>', shown.text).group(1)


def consent_url(client_id: str, challenge: str, scope: str = PROFILE) -> str:
    return "/oauth2/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )


def approve(meta: Any, client_id: str, scope: str = PROFILE) -> dict[str, str]:
    """Consent and exchange the code; return the token response."""
    verifier, challenge = verifier_and_challenge()
    answer = submit(meta, consent_url(client_id, challenge, scope), {"decision": "approve"})
    assert answer.status_code == 302, answer.text
    code = query(answer.headers["Location"])["code"]
    token = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    return token.json  # type: ignore[no-any-return]


def test_the_consent_page_shows_the_client_and_what_each_scope_allows(
    oauth_app: Any, meta: Any
) -> None:
    client_id = register(meta)
    _verifier, challenge = verifier_and_challenge()
    page = meta.get(consent_url(client_id, challenge, "meta/profile:RO meta/keys:RW"))

    assert page.status_code == 200
    html = page.text
    assert "<h1>Authorize Pocket app?</h1>" in html
    assert "registered by ~alice" in html
    assert "Reads your profile." in html
    assert (
        "<strong>Read</strong> your profile: username, email, name <code>meta/profile:RO</code>"
    ) in html
    assert (
        "<strong>Read and write</strong> your SSH and PGP public keys <code>meta/keys:RW</code>"
    ) in html
    assert f"<code>{REDIRECT_URI}</code>" in html
    assert 'name="csrf_token"' in html
    assert page.headers["Cache-Control"] == "no-store"
    # The form's answer redirects to the client: the page's CSP must let it.
    policy = page.headers["Content-Security-Policy"]
    assert "form-action 'self'" in policy and "http://127.0.0.1:9" in policy
    assert "frame-ancestors 'none'" in policy


def test_tokens_are_sealed_grants_stored_only_as_hashes_and_audited(
    oauth_app: Any, meta: Any
) -> None:
    from srht_core.identity import unseal

    client_id = register(meta)
    token = approve(meta, client_id)

    (row,) = rows(oauth_app, "SELECT * FROM oauth_token")
    assert row.access_hash == hashlib.sha256(token["access_token"].encode()).hexdigest()
    assert row.refresh_hash == hashlib.sha256(token["refresh_token"].encode()).hexdigest()
    (code,) = rows(oauth_app, "SELECT * FROM oauth_authorization_code")
    assert code.used_at is not None and len(code.code_hash) == 64
    assert row.authorization_id == code.id
    assert (code.expires - code.used_at).total_seconds() <= 600
    with oauth_app.app_context():
        grant = unseal(token["access_token"], None, oauth_app.extensions["srht"])
    assert grant is not None
    assert (grant["k"], grant["i"], grant["s"], grant["c"]) == (
        "oauth",
        row.id,
        [PROFILE],
        client_id,
    )
    assert grant["x"] == row.issued_at + 3600
    assert ("OAuth authorization granted", f"Pocket app ({client_id}): {PROFILE}") in audit_events(
        oauth_app, "alice"
    )
    assert (
        meta.get("/api/user", headers={"Authorization": f"Bearer {token['access_token']}"}).json[
            "username"
        ]
        == "alice"
    )


def test_revoking_a_client_stops_its_tokens_and_its_authorizations(
    oauth_app: Any, meta: Any
) -> None:
    from srht_plugins.meta.tokens import revoked_since

    client_id = register(meta)
    token = approve(meta, client_id)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert meta.get("/api/user", headers=bearer).status_code == 200

    # The client's page links to a question; asking changes nothing.
    page = meta.get(f"/oauth2/clients/{client_id}")
    assert f'href="/oauth2/clients/{client_id}/revoke"' in page.text
    question = meta.get(f"/oauth2/clients/{client_id}/revoke")
    assert question.status_code == 200 and "Revoke the client Pocket app?" in question.text
    assert meta.get("/api/user", headers=bearer).status_code == 200
    revoked = submit(meta, f"/oauth2/clients/{client_id}/revoke", {"confirmed": "yes"})
    assert revoked.status_code == 302

    assert meta.get("/api/user", headers=bearer).status_code == 401
    with oauth_app.test_request_context():
        (row,) = rows(oauth_app, "SELECT id, issued_at, expires_in FROM oauth_token")
        # With the time the access token stops working anyway (see RevocationCache).
        assert ("oauth", row.id, row.issued_at + row.expires_in) in revoked_since(0)
    _verifier, challenge = verifier_and_challenge()
    refused = meta.get(consent_url(client_id, challenge))
    assert refused.status_code == 400
    assert "The client does not exist on this server." in refused.text
    assert ("OAuth client revoked", f"Pocket app ({client_id})") in audit_events(oauth_app, "alice")


def test_only_the_owner_sees_and_revokes_a_client(oauth_app: Any, meta: Any) -> None:
    client_id = register(meta)
    bob = oauth_app.test_client()
    log_in(bob, "bob")
    assert bob.get(f"/oauth2/clients/{client_id}").status_code == 404
    assert client_id not in bob.get("/oauth2/clients").text
    token = csrf_token(bob.get("/oauth2/clients/register").text)
    assert (
        bob.post(f"/oauth2/clients/{client_id}/revoke", data={"csrf_token": token}).status_code
        == 404
    )
    assert rows(oauth_app, "SELECT revoked_at FROM oauth_client")[0].revoked_at is None


def test_a_user_revokes_the_access_they_granted(oauth_app: Any, meta: Any) -> None:
    client_id = register(meta)
    token = approve(meta, client_id)
    page = meta.get("/oauth2/clients")
    assert "Access you granted" in page.text and f"<code>{PROFILE}</code>" in page.text
    action = re.search(r'href="(/oauth2/authorizations/\d+/revoke)"', page.text).group(1)

    bob = oauth_app.test_client()
    log_in(bob, "bob")
    bob_token = csrf_token(bob.get("/oauth2/clients/register").text)
    assert bob.get(action).status_code == 404
    assert bob.post(action, data={"csrf_token": bob_token, "confirmed": "yes"}).status_code == 404

    question = meta.get(action)
    assert question.status_code == 200
    assert "Revoke the access you gave Pocket app?" in question.text and PROFILE in question.text
    assert submit(meta, action, {"confirmed": "yes"}).status_code == 302
    assert (
        meta.get(
            "/api/user", headers={"Authorization": f"Bearer {token['access_token']}"}
        ).status_code
        == 401
    )
    refresh = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refresh.status_code == 400
    assert refresh.json["error"] == "invalid_grant"
    assert "No application can use your account." in meta.get("/oauth2/clients").text
    assert any(
        event == "OAuth authorization revoked"
        for event, _details in audit_events(oauth_app, "alice")
    )


def test_a_suspended_user_cannot_refresh(oauth_app: Any, meta: Any) -> None:
    from srht_core import db_session
    from srht_plugins.meta.accounts import find_user
    from srht_plugins.meta.models import SUSPENDED

    client_id = register(meta)
    token = approve(meta, client_id)
    with oauth_app.test_request_context(method="POST"):
        find_user("alice").user_type = SUSPENDED
        db_session.commit()
    refresh = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refresh.status_code == 400
    assert refresh.json == {
        "error": "invalid_grant",
        "error_description": "The account this grant is for is suspended.",
    }


def test_a_code_older_than_ten_minutes_is_refused(oauth_app: Any, meta: Any) -> None:
    client_id = register(meta)
    verifier, challenge = verifier_and_challenge()
    answer = submit(meta, consent_url(client_id, challenge), {"decision": "approve"})
    code = query(answer.headers["Location"])["code"]
    # Age the code as ten minutes passing would, rather than waiting for it.
    with oauth_app.extensions["srht"].db.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE oauth_authorization_code SET expires = expires - interval '10 minutes'")
        )
    token = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 400
    assert token.json == {
        "error": "invalid_grant",
        "error_description": "This code has expired: codes must be exchanged within 10 minutes.",
    }


def test_a_refresh_cannot_widen_the_scope(oauth_app: Any, meta: Any) -> None:
    client_id = register(meta)
    token = approve(meta, client_id)
    wider = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client_id,
            "scope": f"{PROFILE} meta/keys:RW",
        },
    )
    assert wider.status_code == 400
    assert wider.json["error"] == "invalid_scope"
    same = meta.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": client_id,
        },
    )
    assert same.status_code == 200
    assert same.json["scope"] == PROFILE


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": 'co"de'}, "Only response_type=code is supported, not co?de."),
        ({"response_type": "token"}, "Only response_type=code is supported, not token."),
        ({"response_type": None}, "Only response_type=code is supported, not none."),
    ],
    ids=["quote", "implicit", "missing"],
)
def test_other_response_types_are_refused_to_the_client(
    oauth_app: Any, meta: Any, overrides: dict[str, Any], error: str
) -> None:
    client_id = register(meta)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": PROFILE,
        "state": 'st"\\',
        **overrides,
    }
    answer = meta.get(
        "/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})
    )
    assert answer.status_code == 302
    assert query(answer.headers["Location"]) == {
        "error": "unsupported_response_type",
        "error_description": error,
        "state": 'st"\\',
    }


def test_hostile_redirect_uris_get_a_page_not_a_redirect(oauth_app: Any, meta: Any) -> None:
    client_id = register(meta)
    for uri in ('http://127.0.0.1:9/"x', "http://127.0.0.1:9/caf\u00e9", "//evil.example/cb"):
        _verifier, challenge = verifier_and_challenge()
        page = meta.get(
            consent_url(client_id, challenge).replace(
                urlencode({"redirect_uri": REDIRECT_URI}), urlencode({"redirect_uri": uri})
            )
        )
        assert page.status_code == 400
        assert "Location" not in page.headers
        assert "is not registered for this client" in page.text
