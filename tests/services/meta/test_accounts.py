"""Accounts from the outside: registering, confirming, logging in with a
second factor, tokens, and what meta refuses (closed registration, too many
failed logins, reused links, forged forms, redirects off the site)."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from srht_core import utcnow
from srht_plugins.meta.models import EmailToken, PersonalAccessToken, SSHKey, User

from .conftest import PASSWORD, MetaSite, signed_out, text

pytestmark = pytest.mark.postgres

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjKbDOtgWX5Bw5wlS94rh3vJcD17ehkzbIkO8LHg8Yx alice@laptop"
)


def totp_secret(page: str) -> str:
    found = re.search(r"secret=([A-Z2-7]+)", page)
    assert found, "no otpauth URI on the page"
    return found.group(1)


def location(response: Any) -> str:
    """Where a redirect goes, as a path on this site or a full URL elsewhere."""
    target = urlsplit(response.headers["Location"])
    if target.netloc in ("", "localhost"):
        return target.path + (f"?{target.query}" if target.query else "")
    return response.headers["Location"]


@pytest.mark.slow
def test_register_confirm_login_with_totp_then_token_and_revocation(meta_site: MetaSite) -> None:
    browser = meta_site.browser()
    page = browser.submit(
        "/register", {"username": "bob", "email": "bob@example.org", "password": PASSWORD}
    )
    assert page.status_code == 200 and "bob@example.org" in text(page)

    refused = browser.login("bob")
    assert refused.status_code == 400
    assert "Confirm your email address first" in text(refused)

    link = meta_site.last_link("bob@example.org", "/confirm/")
    # Opening the link (as a mail scanner does) only shows a button.
    for _ in range(2):
        shown = meta_site.browser().get(link)
        assert shown.status_code == 200 and "Confirm my account" in text(shown)
    assert browser.login("bob").status_code == 400
    confirmed = browser.submit(link)
    assert confirmed.status_code == 302 and browser.cookie() is not None
    used = meta_site.browser().get(link)
    assert used.status_code == 400 and "used already" in text(used)
    browser.submit("/logout", action="/logout")
    assert signed_out(browser)

    assert location(browser.login("bob")) == "/"
    assert "~bob" in text(browser.get("/"))

    # Turn on TOTP: a wrong code is refused, a current one turns it on and
    # shows ten recovery codes, once.
    setup = text(browser.get("/security/totp"))
    secret = totp_secret(setup)
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + drift) for drift in (-30, 0, 30)}
    wrong = next(c for c in ("123456", "654321", "111111") if c not in valid)
    assert browser.submit("/security/totp", {"code": wrong}).status_code == 400
    shown = browser.submit("/security/totp", {"code": totp.at(now - 30)})
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", text(shown))
    assert len(codes) == 10
    assert codes[0] not in text(browser.get("/security"))
    browser.submit("/logout", action="/logout")

    # Logging in now needs the second factor.
    step = browser.login("bob")
    assert location(step) == "/login/totp"
    assert signed_out(browser), "the password alone must not sign in"
    assert location(browser.submit("/login/totp", {"code": totp.at(time.time() + 30)})) == "/"
    browser.submit("/logout", action="/logout")

    # A recovery code works once.
    browser.login("bob")
    assert location(browser.submit("/login/totp", {"code": codes[0]})) == "/"
    browser.submit("/logout", action="/logout")
    browser.login("bob")
    again = browser.submit("/login/totp", {"code": codes[0]})
    assert again.status_code == 400 and "not right" in text(again)
    assert location(browser.submit("/login/totp", {"code": codes[1].upper()})) == "/"

    # A personal access token reaches the API until it is revoked.
    posted = browser.submit(
        "/tokens", {"comment": "laptop", "scopes": ["meta/profile:RO"], "expires": "30"}
    )
    # Post/redirect/get: the token is on a page of its own, shown once.
    assert location(posted) == "/tokens/new"
    created = browser.get("/tokens/new")
    assert created.status_code == 200
    token = re.search(r'<p class="token"><code>([^<]+)</code>', text(created))
    assert token
    reloaded = browser.get("/tokens/new")
    assert location(reloaded) == "/tokens" and token.group(1) not in text(reloaded)
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    client = meta_site.app.test_client()
    profile = client.get("/api/user", headers=bearer)
    assert profile.status_code == 200 and profile.json["username"] == "bob"
    listing = text(browser.get("/tokens"))
    assert token.group(1) not in listing and "laptop" in listing
    # A token for something else does not reveal who its owner is.
    keys_only = re.search(
        r'<p class="token"><code>([^<]+)</code>',
        text(
            browser.submit(
                "/tokens",
                {"comment": "keys", "scopes": ["meta/keys:RO"], "expires": "30"},
                follow_redirects=True,
            )
        ),
    )
    assert keys_only
    refused = client.get("/api/user", headers={"Authorization": f"Bearer {keys_only.group(1)}"})
    assert refused.status_code == 403 and "meta/profile:RO" in refused.json["errors"][0]["reason"]

    with meta_site.db() as session:
        pat_id = session.scalar(
            sa.select(PersonalAccessToken.id).where(PersonalAccessToken.comment == "laptop")
        )
    revoked = browser.submit(f"/tokens/{pat_id}/revoke")
    assert location(revoked) == "/tokens"
    answer = client.get("/api/user", headers=bearer)
    assert answer.status_code == 401 and "revoked" in answer.json["errors"][0]["reason"]

    log = text(browser.get("/audit-log"))
    for event in (
        "account created",
        "email confirmed",
        "two-factor authentication enabled",
        "recovery code used",
        "personal access token issued",
        "personal access token revoked",
    ):
        assert event in log
    assert log.index("personal access token revoked") < log.index("account created")


def test_closed_registration_refuses_the_page_and_the_form(meta_make_site: Any) -> None:
    site = meta_make_site(**{"meta::settings": {"registration": "no"}})
    browser = site.browser()
    page = browser.get("/register")
    assert page.status_code == 403 and "Registration is closed" in text(page)
    posted = browser.post(
        "/register",
        data={
            "csrf_token": browser.csrf_token(),
            "username": "mallory",
            "email": "mallory@example.org",
            "password": PASSWORD,
        },
    )
    assert posted.status_code == 403
    with site.db() as session:
        assert session.scalar(sa.select(sa.func.count(User.id))) == 0
    assert site.mail_to("mallory@example.org") == []
    assert "Register" not in text(browser.get("/login")).split("<main")[1]


def test_registration_refuses_reserved_and_oversized_names(meta_site: MetaSite) -> None:
    browser = meta_site.browser()
    reserved = browser.submit(
        "/register", {"username": "admin", "email": "a@example.org", "password": PASSWORD}
    )
    assert reserved.status_code == 400 and "Username is reserved." in text(reserved)
    long = browser.submit(
        "/register", {"username": "x" * 200, "email": "b@example.org", "password": PASSWORD}
    )
    assert long.status_code == 400
    assert "Field cannot be longer than 30 characters." in text(long)
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_failed_logins_are_limited_per_account(meta_make_site: Any) -> None:
    site = meta_make_site(meta={"login-attempts-per-account": 3, "login-attempts-per-address": 5})
    site.create_user("alice")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        wrong = site.browser(address).login("alice", "not the password")
        assert wrong.status_code == 400 and "Wrong username or password." in text(wrong)
    refused = site.browser("10.0.0.4").login("alice")
    assert refused.status_code == 400
    assert "Too many failed logins for this account; try again in 15 minutes" in text(refused)
    assert site.browser("10.0.0.4").cookie() is None
    # Another account is not affected.
    site.create_user("carol")
    assert location(site.browser("10.0.0.4").login("carol")) == "/"


def test_failed_logins_are_limited_per_address(meta_make_site: Any) -> None:
    site = meta_make_site(meta={"login-attempts-per-account": 3, "login-attempts-per-address": 5})
    site.create_user("alice")
    attacker = site.browser("192.0.2.7")
    for n in range(5):
        assert attacker.login(f"nobody{n}", "guess").status_code == 400
    refused = attacker.login("alice")
    assert refused.status_code == 400
    assert "Too many failed logins from your address" in text(refused)
    assert location(site.browser("192.0.2.8").login("alice")) == "/"


def test_a_login_hashes_the_password_whether_or_not_the_account_exists(
    meta_site: MetaSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 4: argon2 runs for an unknown name too (against a dummy
    hash with the same parameters), so a login's time does not tell whether
    the account exists. Counted, not timed."""
    from argon2 import PasswordHasher

    from srht_plugins.meta import passwords

    verified: list[str] = []
    real = passwords._hasher

    class Counting(PasswordHasher):
        """meta's hasher (argon2, its parameters), counting verifications."""

        def verify(self, password_hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(password_hash))
            return super().verify(password_hash, password)

    counting = Counting(
        time_cost=real.time_cost,
        memory_cost=real.memory_cost,
        parallelism=real.parallelism,
        hash_len=real.hash_len,
        salt_len=real.salt_len,
        type=real.type,
    )
    monkeypatch.setattr(passwords, "_hasher", counting)
    meta_site.create_user("alice")
    answers = {}
    for name in ("alice", "nobody", "nobody@example.org"):
        verified.clear()
        answer = meta_site.browser().login(name, "not the password")
        answers[name] = (answer.status_code, "Wrong username or password." in text(answer))
        assert len(verified) == 1, name  # one argon2 verification, account or not
        assert verified[0].startswith("$argon2id$"), name
        params = verified[0].split("$")[3]
        assert params == real.hash("x").split("$")[3], name  # the same cost as real hashes
    assert set(answers.values()) == {(400, True)}


def test_a_password_reset_lifts_the_lockout(meta_make_site: Any) -> None:
    """Issue 15 item 5: the lockout tells the user to reset the password;
    doing so lets them in at once."""
    site = meta_make_site(meta={"login-attempts-per-account": 3, "login-attempts-per-address": 5})
    site.create_user("alice")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert site.browser(address).login("alice", "not the password").status_code == 400
    browser = site.browser("10.0.0.4")
    locked = browser.login("alice")
    assert locked.status_code == 400
    assert "try again in 15 minutes, or reset your password" in text(locked)

    assert location(browser.submit("/forgot", {"email": "alice@example.org"})) == "/login"
    link = site.last_link("alice@example.org", "/reset/")
    new_password = "a brand new passphrase"
    assert location(browser.submit(link, {"password": new_password})) == "/login"
    after = browser.login("alice", new_password)
    assert after.status_code == 302, text(after)  # not "Too many failed logins"
    assert location(after) == "/" and browser.cookie() is not None


def test_password_reset_link_works_once(meta_site: MetaSite) -> None:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    sent = browser.submit("/forgot", {"email": "alice@example.org"})
    assert location(sent) == "/login"
    # Unknown addresses get the same answer, and no mail.
    assert location(browser.submit("/forgot", {"email": "who@example.org"})) == "/login"
    assert meta_site.mail_to("who@example.org") == []

    link = meta_site.last_link("alice@example.org", "/reset/")
    new_password = "a brand new passphrase"
    assert location(browser.submit(link, {"password": new_password})) == "/login"
    used = browser.submit(link, {"password": "yet another passphrase"})
    assert used.status_code == 400 and "has been used already" in text(used)

    assert browser.login("alice").status_code == 400
    assert location(browser.login("alice", new_password)) == "/"


def test_password_reset_link_expires(meta_site: MetaSite) -> None:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    browser.submit("/forgot", {"email": "alice@example.org"})
    link = meta_site.last_link("alice@example.org", "/reset/")
    with meta_site.db() as session:
        session.execute(sa.update(EmailToken).values(expires=utcnow() - timedelta(seconds=1)))
    expired = browser.submit(link, {"password": "a brand new passphrase"})
    assert expired.status_code == 400 and "This link has expired" in text(expired)
    assert location(browser.login("alice")) == "/"


UNSAFE_RETURN_TO = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "http://127.0.0.1.evil.example/",
    "https://user@evil.example",
    "/\t/evil.example",
]


@pytest.mark.parametrize("return_to", UNSAFE_RETURN_TO)
def test_login_never_redirects_off_the_site(meta_site: MetaSite, return_to: str) -> None:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    assert location(browser.login("alice", return_to=return_to)) == "/"
    # Signed in already: the login page sends straight on, still not away.
    assert location(browser.get("/login", query_string={"return_to": return_to})) == "/"
    out = browser.submit(
        f"/logout?return_to={return_to}", {"return_to": return_to}, action="/logout"
    )
    assert location(out) == "/login"


def test_login_returns_to_a_page_of_the_site(meta_site: MetaSite) -> None:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    assert location(browser.login("alice", return_to="/keys")) == "/keys"


@pytest.mark.parametrize("token", [None, "forged", "IjA0ZjQ.YWJj.ZGVm"])
def test_forms_without_a_valid_csrf_token_store_nothing(
    meta_site: MetaSite, token: str | None
) -> None:
    meta_site.create_user("alice")
    browser = meta_site.browser()
    browser.login("alice")
    extra = {} if token is None else {"csrf_token": token}
    attempts = [
        ("/keys/ssh", {"ssh-key": ED25519, **({} if token is None else {"ssh-csrf_token": token})}),
        ("/profile", {"name": "Mallory", **extra}),
        ("/tokens", {"comment": "stolen", "scopes": "meta/profile:RW", **extra}),
        (
            "/register",
            {"username": "mallory", "email": "m@example.org", "password": PASSWORD, **extra},
        ),
    ]
    for path, data in attempts:
        answer = browser.post(path, data=data)
        assert answer.status_code == 400, path
        assert "CSRF" in text(answer), path
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(SSHKey.id))) == 0
        assert session.scalar(sa.select(sa.func.count(PersonalAccessToken.id))) == 0
        assert session.scalar(sa.select(User.name).where(User.username == "alice")) is None
        assert session.scalar(sa.select(User.id).where(User.username == "mallory")) is None


def test_an_account_made_without_a_password_is_finished_through_a_one_time_link(
    meta_site: MetaSite,
) -> None:
    """What the installer does when nobody is at a terminal: the first admin
    gets a link, printed once, where they set their password."""
    from click.testing import CliRunner

    from srht_plugins.meta.cli import create_user_command, password_link_command

    runner = CliRunner()
    with meta_site.app.app_context():
        made = runner.invoke(
            create_user_command, ["boss", "--email", "boss@example.org", "--admin", "--no-password"]
        )
    assert made.exit_code == 0, made.output
    link = made.stdout.strip().splitlines()[-1]
    origin = meta_site.state.origin
    assert link.startswith(f"{origin}/reset/")
    browser = meta_site.browser()
    assert browser.login("boss", "").status_code == 400  # no password works yet

    path = link.removeprefix(origin)
    assert browser.submit(path, {"password": "a long new passphrase"}).status_code == 302
    assert browser.login("boss", "a long new passphrase").status_code == 302
    used = browser.submit(path, {"password": "another passphrase"})
    assert used.status_code == 400 and "used already" in text(used)

    with meta_site.app.app_context():
        again = runner.invoke(password_link_command, ["boss"])
        nobody = runner.invoke(password_link_command, ["nobody"])
    assert again.exit_code == 0 and again.stdout.strip().startswith(f"{origin}/reset/")
    assert nobody.exit_code == 2 and "no user 'nobody'" in nobody.output


def test_an_ssh_key_added_on_the_command_line(meta_site: MetaSite, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from srht_plugins.meta.cli import add_ssh_key_command

    meta_site.create_user("dave")
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dave@laptop", "-f", str(key)],
        check=True,
        timeout=30,
    )
    public = (tmp_path / "id_ed25519.pub").read_text()
    runner = CliRunner()
    with meta_site.app.app_context():
        added = runner.invoke(add_ssh_key_command, ["dave"], input=public)
        again = runner.invoke(add_ssh_key_command, ["dave"], input=public)
        junk = runner.invoke(add_ssh_key_command, ["dave"], input="ssh-ed25519 nonsense\n")
    assert added.exit_code == 0, added.output
    assert "added SHA256:" in added.output
    assert again.exit_code == 2 and "You have added this key already." in again.output
    assert junk.exit_code == 2
    fingerprint = added.output.split()[1]
    with meta_site.db() as session:
        assert (
            session.scalar(sa.select(SSHKey.comment).where(SSHKey.fingerprint == fingerprint))
            == "dave@laptop"
        )
