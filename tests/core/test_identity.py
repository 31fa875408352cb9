"""Identity in a service other than meta, when meta cannot be reached (its
name does not resolve on this host, as on a second host without DNS for
it): a signed-in visitor is told so with a 503 that names meta and the URL
tried (a page; JSON under /api), never treated as signed out (meta's login
would send them straight back, forever); ``/healthz`` fails naming meta.
Anonymous visitors are served as usual: nothing asks meta about them."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from srht_core import TokenGrant, seal_grant
from srht_core.globals import state_of
from srht_core.testing import sign_in

pytestmark = pytest.mark.postgres

#: ``.invalid`` never resolves (RFC 2606).
META = "http://meta.invalid"
UNRESOLVED = "Name or service not known"


@pytest.fixture
def chores(chores_plugin: Any, register_plugin: Any, chores_config: Any, make_app: Any) -> Any:
    import srht_plugins.meta

    register_plugin(srht_plugins.meta, "meta")  # its section must be known to chores
    return make_app("chores", chores_config(meta={"origin": META}))


def signed_in(app: Any, user_id: int = 1) -> Any:
    """A browser holding the login cookie meta would have set."""
    browser = app.test_client()
    sign_in(browser, user_id)
    return browser


def no_revocations(app: Any) -> None:
    """As if meta had answered that nothing is revoked."""
    state_of(app).revoked = lambda kind, token_id: False


def test_a_signed_in_visitor_is_told_that_meta_cannot_be_reached(chores: Any) -> None:
    page = signed_in(chores).get("/")

    assert page.status_code == 503
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Retry-After"] == "30"
    text = page.get_data(as_text=True)
    assert "<h1>503 Service Unavailable</h1>" in text
    assert f"chores cannot reach meta, the site&#39;s identity service, at {META}" in text
    assert f"{META}/internal/tokens/revoked (" in text and UNRESOLVED in text
    # Not sent to sign in at meta (which would send the visitor back here).
    assert "Location" not in page.headers
    # Anonymous visitors are served: nothing asks meta about them.
    assert chores.test_client().get("/").status_code == 200


def test_a_user_seen_for_the_first_time_is_not_signed_out_when_meta_is_away(
    chores: Any, caplog: pytest.LogCaptureFixture
) -> None:
    no_revocations(chores)
    with caplog.at_level(logging.ERROR, logger="srht.identity"):
        page = signed_in(chores, user_id=7).get("/whoami")

    assert page.status_code == 503
    text = page.get_data(as_text=True)
    assert f"at {META}/internal/users/7 (" in text and UNRESOLVED in text
    # The journal says it as an error, naming meta's URL.
    (logged,) = [m for m in caplog.messages if "cannot reach meta" in m]
    assert logged.startswith(f"chores cannot reach meta at {META}/internal/users/7: ")
    assert UNRESOLVED in logged


def test_the_api_answers_json_503_naming_meta(chores: Any) -> None:
    with chores.app_context():
        token = seal_grant(
            TokenGrant("pat", 1, 7, frozenset({"chores/chores:RO"}), None), state_of(chores)
        )
    api = chores.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    revocations = api.get("/api/me", headers=headers)
    assert revocations.status_code == 503
    (error,) = revocations.json["errors"]
    assert error["reason"].startswith("token revocations cannot be checked right now: meta")
    assert f"at {META}/internal/tokens/revoked (" in error["reason"]
    assert UNRESOLVED in error["reason"]

    no_revocations(chores)
    profile = api.get("/api/me", headers=headers)
    assert profile.status_code == 503
    assert profile.headers["Content-Type"] == "application/json"
    (error,) = profile.json["errors"]
    assert f"chores cannot reach meta, the site's identity service, at {META}" in error["reason"]
    assert f"{META}/internal/users/7 (" in error["reason"] and UNRESOLVED in error["reason"]


def test_healthz_fails_naming_meta_and_asks_it_once_per_interval(
    chores: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = chores.test_client()
    with caplog.at_level(logging.ERROR, logger="srht.identity"):
        first = client.get("/healthz")
        again = client.get("/healthz")

    assert first.status_code == 503
    health = first.json
    assert health["meta"].startswith(
        f"error: cannot reach meta at {META}/internal/tokens/revoked: "
    )
    assert UNRESOLVED in health["meta"]
    assert health == {
        "service": "chores",
        "version": health["version"],
        "database": "ok",
        "meta": health["meta"],
    }
    assert (again.status_code, again.json) == (503, health)
    # The second probe was answered from the first: meta was asked once.
    assert sum("cannot reach meta" in m for m in caplog.messages) == 1


def test_healthz_keeps_a_good_answer_longer_than_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probes must not each cost a call to meta, but once an administrator
    mends the path to meta the check must say so within seconds."""
    from srht_core.identity import MetaProbe

    answers = iter(["error: cannot reach meta", "ok", "error: later"])
    clock = [1000.0]
    monkeypatch.setattr(MetaProbe, "_ask", staticmethod(lambda: next(answers)))
    monkeypatch.setattr("srht_core.identity.time.monotonic", lambda: clock[0])
    probe = MetaProbe(ttl=10, failed_ttl=2)

    assert probe.status() == "error: cannot reach meta"
    clock[0] += 1.9
    assert probe.status() == "error: cannot reach meta"
    clock[0] += 0.2
    assert probe.status() == "ok"
    clock[0] += 9.9
    assert probe.status() == "ok"
    clock[0] += 0.2
    assert probe.status() == "error: later"
