"""Bearer tokens, the verifying side, in a service other than meta: sealed
grants checked without a round trip, revocations learned from a real meta
(gunicorn) within the documented interval, and a bounded grace when meta
cannot be reached."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from srht_core import revocation, state_of
from srht_core.config import Config, dump_ini
from srht_core.testing import free_port, serve_service, site_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def site(
    tmp_path: Path, srht_postgres: Any, chores_plugin: Any, register_plugin: Any, make_app: Any
) -> Any:
    import srht_plugins.meta

    register_plugin(srht_plugins.meta, "meta")  # its section must be known to chores
    meta_port = free_port()
    data = site_config(
        tmp_path / "data",
        {
            "meta": {
                "origin": f"http://127.0.0.1:{meta_port}",
                "connection-string": srht_postgres.create_database(),
            },
            "chores": {
                "connection-string": srht_postgres.create_database(),
                "hold-dir": str(tmp_path),
            },
        },
    )
    path = tmp_path / "config.ini"
    path.write_text(dump_ini(data), encoding="utf-8")
    config = Config.from_string(path.read_text(), str(path))
    chores = make_app("chores", config)
    # meta runs in its own process; its config must not name chores, which is
    # only registered in this test process.
    meta_config = tmp_path / "meta.ini"
    meta_config.write_text(dump_ini({k: v for k, v in data.items() if k != "chores"}))

    def srht(*args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "srht_core.cli", "--config", str(meta_config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    srht("migrate")
    srht(
        "meta",
        "create-user",
        "alice",
        "--email",
        "alice@example.org",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    return {"chores": chores, "srht": srht, "meta_config": meta_config, "port": meta_port}


def me(app: Any, token: str) -> Any:
    return app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"})


def test_revocation_reaches_a_service_within_the_interval(site: Any) -> None:
    chores, srht = site["chores"], site["srht"]
    with serve_service("meta", site["meta_config"], port=site["port"]):
        # meta's CLI knows only meta's scopes (chores is not installed for it),
        # so the token carries meta/profile; chores wants chores/chores.
        wrong = srht("meta", "token", "alice", "--scopes", "meta/profile:RO").strip()
        answer = me(chores, wrong)
        assert answer.status_code == 403
        assert answer.json == {"errors": [{"reason": "the token lacks the scope chores/chores:RO"}]}

        from srht_core import TokenGrant, seal_grant

        with chores.app_context():
            state = chores.extensions["srht"]
            # A grant as meta would issue it for a token meta knows (id 1,
            # the PAT above), with the scope chores needs.
            token = seal_grant(
                TokenGrant("pat", 1, 1, frozenset({"chores/chores:RO"}), None), state
            )
        first = me(chores, token)
        assert first.status_code == 200, first.json
        assert first.json["username"] == "alice"  # mirrored from meta on first sight
        health = chores.test_client().get("/healthz")
        assert (health.status_code, health.json["meta"]) == (200, "ok")

        cache = state_of(chores).revocations
        asked = cache.checked
        assert me(chores, token).status_code == 200
        assert cache.checked == asked  # no round trip per request

        revoke = (
            "from srht_core import create_app, db_session\n"
            "from srht_plugins.meta.models import PersonalAccessToken\n"
            "from srht_plugins.meta.tokens import revoke_personal_token\n"
            f"app = create_app('meta', {str(site['meta_config'])!r})\n"
            "with app.app_context():\n"
            "    revoke_personal_token(db_session.get(PersonalAccessToken, 1))\n"
            "    db_session.commit()\n"
        )
        subprocess.run([sys.executable, "-c", revoke], check=True, timeout=60)
        # Until the interval passes the service has not asked; once it has
        # (moved back here instead of waiting 30 s), the token is refused.
        cache.checked -= revocation.REVOCATION_INTERVAL + 1
        cache.tried -= revocation.REVOCATION_INTERVAL + 1
        refused = me(chores, token)
        assert refused.status_code == 401
        assert refused.json == {"errors": [{"reason": "the token has been revoked"}]}

    # meta is gone now: tokens keep working for the grace period...
    fresh_token = None
    with chores.app_context():
        from srht_core import TokenGrant, seal_grant

        fresh_token = seal_grant(
            TokenGrant("pat", 2, 1, frozenset({"chores/chores:RO"}), None),
            chores.extensions["srht"],
        )
    cache.checked -= revocation.REVOCATION_INTERVAL + 1
    cache.tried -= revocation.REVOCATION_INTERVAL + 1
    assert me(chores, fresh_token).status_code == 200
    tried = cache.tried
    assert me(chores, fresh_token).status_code == 200
    assert cache.tried == tried  # one attempt per retry interval, not per request
    # ...and are refused once meta has been silent longer than that.
    cache.checked -= revocation.GRACE
    cache.tried -= revocation.RETRY_INTERVAL + 1
    late = me(chores, fresh_token)
    assert late.status_code == 503
    assert "cannot be checked right now" in late.json["errors"][0]["reason"]


def test_a_tampered_or_expired_token_is_refused_without_asking_meta(chores_app: Any) -> None:
    from srht_core import TokenGrant, seal_grant

    with chores_app.app_context():
        state = chores_app.extensions["srht"]
        expired = seal_grant(
            TokenGrant("pat", 9, 1, frozenset({"chores/chores:RO"}), time.time() - 1), state
        )
    assert me(chores_app, expired).json == {"errors": [{"reason": "the token has expired"}]}
    tampered = expired[:-6] + ("A" if expired[-6] != "A" else "B") + expired[-5:]
    assert me(chores_app, tampered).status_code == 401
    missing = chores_app.test_client().get("/api/me")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json["errors"][0]["reason"]
    assert state_of(chores_app).revocations.tried < 0  # never asked meta


def test_a_login_session_meta_ends_is_refused_by_a_service(site: Any) -> None:
    """Logging out at meta ends the session for every service: the login
    cookie's session id reaches them through the same revocation poll as
    tokens."""
    chores, meta_config = site["chores"], str(site["meta_config"])
    in_meta = (
        "from srht_core import create_app, db_session\n"
        "from srht_plugins.meta.models import LoginSession\n"
        "from srht_plugins.meta.accounts import end_session\n"
        f"app = create_app('meta', {meta_config!r})\n"
        "with app.app_context():\n"
    )
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            in_meta + "    login = LoginSession(user_id=1)\n"
            "    db_session.add(login)\n    db_session.commit()\n    print(login.id)\n",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    session_id = int(started.stdout.strip().splitlines()[-1])
    from srht_core.identity import LOGIN_COOKIE, seal

    with chores.app_context():
        cookie = seal({"u": 1, "s": session_id, "t": int(time.time())}, chores.extensions["srht"])
    browser = chores.test_client()
    browser.set_cookie(LOGIN_COOKIE, cookie)
    with serve_service("meta", site["meta_config"], port=site["port"]):
        assert browser.get("/whoami").json["user"] == "alice"
        subprocess.run(
            [
                sys.executable,
                "-c",
                in_meta + f"    end_session({session_id})\n    db_session.commit()\n",
            ],
            check=True,
            timeout=60,
        )
        cache = state_of(chores).revocations
        cache.checked -= revocation.REVOCATION_INTERVAL + 1
        cache.tried -= revocation.REVOCATION_INTERVAL + 1
        assert browser.get("/whoami").json["user"] is None


def test_the_cache_forgets_a_revocation_once_what_it_revoked_has_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A revoked token or session that has expired anyway cannot be
    presented any more, so the cache drops it (bounded memory on a site that
    revokes for years); one that never expires is kept. Answers as meta
    sends them (``revoked_since``), and as an older meta sent them (no
    expiry: kept)."""
    now = time.time()
    answer = {
        "now": now,
        "revoked": [
            ["pat", 1, None],
            ["pat", 2, now - revocation.CLOCK_SKEW - 60],
            ["oauth", 3, now + 3600],
            ["session", 4, now - 60],
            ["session", 5],
        ],
    }
    cache = revocation.RevocationCache(lambda since: answer)
    cache.refresh()
    assert set(cache.revoked) == {("pat", 1), ("oauth", 3), ("session", 4), ("session", 5)}
    cache.forget_expired(now + 3600 + revocation.CLOCK_SKEW + 1)
    assert set(cache.revoked) == {("pat", 1), ("session", 5)}


def test_a_service_with_its_own_records_answers_revocation_itself(
    register_plugin: Any, chores_config: Any, make_app: Any
) -> None:
    """A service implementing the ``is_revoked`` hook (meta does) is asked
    directly, on every request; the revocation cache, which would ask meta,
    is never used."""
    import types

    import srht_test_chores

    from srht_core import TokenGrant, hookimpl, seal_grant

    asked: list[tuple[str, int]] = []

    @hookimpl
    def is_revoked(kind: str, ident: int) -> bool:
        asked.append((kind, ident))
        return ident == 7

    hooks = {
        name: getattr(srht_test_chores, name)
        for name in dir(srht_test_chores)
        if hasattr(getattr(srht_test_chores, name), "srht_impl")
    }
    plugin = types.SimpleNamespace(**hooks, is_revoked=is_revoked)
    assert register_plugin(plugin, "chores").ok
    chores = make_app("chores", chores_config())
    with chores.app_context():
        with state_of(chores).db.session() as session:
            session.add(srht_test_chores.models.User(id=1, username="alice", email="a@x.org"))

        def token(ident: int) -> str:
            grant = TokenGrant("pat", ident, 1, frozenset({"chores/chores:RO"}), None)
            return seal_grant(grant, state_of(chores))

    assert me(chores, token(7)).json == {"errors": [{"reason": "the token has been revoked"}]}
    assert me(chores, token(8)).json == {"id": 1, "username": "alice"}
    assert asked == [("pat", 7), ("pat", 8)]
    assert state_of(chores).revocations.tried < 0  # meta was never asked
