"""meta's pages as every service's look: settings pages in the core's
layout with its side menu, forms that list every problem at once, a
question before every deletion and revocation (asking changes nothing; only
the page's button does), and error pages that say what is missing."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from srht_plugins.meta.models import LoginSession, PersonalAccessToken, PGPKey, SSHKey, User

from .conftest import PASSWORD, Browser, MetaSite, text
from .test_keys import ED25519, ED25519_FP, PGP_ALICE

pytestmark = pytest.mark.postgres

MENU = re.compile(r'<nav class="settings-menu" aria-label="Settings">(.*?)</nav>', re.S)


def signed_in(site: MetaSite, username: str = "alice", user_type: str = "active") -> Browser:
    site.create_user(username, user_type=user_type)
    browser = site.browser()
    assert browser.login(username).status_code == 302
    return browser


@pytest.mark.parametrize(
    "path, section",
    [
        ("/", "Account"),
        ("/profile", "Profile"),
        ("/security", "Security"),
        ("/security/totp", "Security"),
        ("/keys", "SSH &amp; PGP keys"),
        ("/tokens", "Access tokens"),
        ("/oauth2/clients", "OAuth clients"),
        ("/oauth2/clients/register", "OAuth clients"),
        ("/audit-log", "Audit log"),
        ("/admin/users", "Admin"),
        ("/admin/users/alice", "Admin"),
    ],
)
def test_settings_pages_use_the_cores_layout_and_menu(
    meta_site: MetaSite, path: str, section: str
) -> None:
    signed_in(meta_site, "alice")
    boss = signed_in(meta_site, "boss", "admin")
    page = boss.get(path).get_data(as_text=True)
    assert '<div class="settings">' in page and '<div class="settings-page">' in page
    menu = MENU.search(page)
    assert menu, page
    current = re.findall(r'<a href="[^"]+" aria-current="page">([^<]+)</a>', menu.group(1))
    assert current == [section]
    assert "meta-nav" not in page and "meta-settings" not in page


def test_the_admin_entry_is_only_in_an_admins_menu(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    menu = MENU.search(alice.get("/profile").get_data(as_text=True))
    assert menu and "Admin" not in menu.group(1) and "Audit log" in menu.group(1)


def test_registration_shows_every_problem_at_once(meta_site: MetaSite) -> None:
    meta_site.create_user("carol")
    answer = meta_site.browser().submit(
        "/register", {"username": "Bad Name!", "email": "carol@example.org", "password": "short"}
    )
    assert answer.status_code == 400
    page = text(answer)
    problems = page.split('class="flash error form-problems"')[1].split("</div>")[0]
    assert "Username must be 2 to 30 characters" in problems
    assert "An account with that email address exists already." in problems
    assert "Password must be at least 10 characters." in problems
    # A field the form itself finds at fault is not checked again.
    empty = meta_site.browser().submit(
        "/register", {"username": "", "email": "not an address", "password": "short"}
    )
    page = text(empty)
    assert empty.status_code == 400
    assert "Username: This field is required." in re.sub(r"<[^>]+>", "", page)
    assert "Invalid email address." in page and "Password must be at least 10" in page
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(User.id))) == 1


def test_the_token_form_shows_every_problem_at_once(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    answer = browser.submit("/tokens", {"comment": "c" * 300, "expires": "5000"})
    assert answer.status_code == 400
    page = text(answer)
    for problem in (
        "Field cannot be longer than 256 characters.",
        "Choose at least one scope.",
        "Number must be between 1 and 3650.",
    ):
        assert problem in page
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(PersonalAccessToken.id))) == 0


def test_a_password_change_shows_both_a_wrong_password_and_a_short_new_one(
    meta_site: MetaSite,
) -> None:
    browser = signed_in(meta_site)
    answer = browser.submit(
        "/security",
        {"password-current": "not it", "password-password": "short"},
        action="/security/password",
    )
    page = text(answer)
    assert answer.status_code == 400
    assert "That is not your current password." in page
    assert "Password must be at least 10 characters." in page


def ask_then_confirm(browser: Browser, path: str, question: str) -> None:
    """Open ``path``: a confirmation page that changes nothing; a POST
    without its button changes nothing either; then press the button."""
    shown = browser.get(path)
    assert shown.status_code == 200, path
    page = text(shown)
    assert '<section class="confirm"' in page and question in page, page
    assert '<input type="hidden" name="confirmed" value="yes">' in page
    assert '<button type="submit" class="danger">' in page
    token = browser.csrf_token(path)
    again = browser.post(path, data={"csrf_token": token})
    assert again.status_code == 200 and question in text(again)


def test_removing_keys_and_revoking_tokens_asks_first(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site)
    alice.submit("/keys", {"ssh-key": ED25519}, action="/keys/ssh")
    alice.submit("/keys", {"pgp-key": PGP_ALICE}, action="/keys/pgp")
    alice.submit("/tokens", {"comment": "laptop", "scopes": ["meta/profile:RO"]})
    with meta_site.db() as session:
        ssh_id = session.scalar(sa.select(SSHKey.id))
        pgp_id = session.scalar(sa.select(PGPKey.id))
        pat_id = session.scalar(sa.select(PersonalAccessToken.id))
    keys = alice.get("/keys").get_data(as_text=True)
    assert f'href="/keys/ssh/{ssh_id}/delete"' in keys and "<form" not in keys.split("<h3>")[0]

    ask_then_confirm(alice, f"/keys/ssh/{ssh_id}/delete", f"Remove the SSH key {ED25519_FP}?")
    ask_then_confirm(alice, f"/keys/pgp/{pgp_id}/delete", "Remove the PGP key")
    ask_then_confirm(alice, f"/tokens/{pat_id}/revoke", "Revoke the token “laptop”?")
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(SSHKey.id))) == 1
        assert session.scalar(sa.select(sa.func.count(PGPKey.id))) == 1
        assert session.scalar(sa.select(PersonalAccessToken.revoked_at)) is None

    for path in (f"/keys/ssh/{ssh_id}/delete", f"/keys/pgp/{pgp_id}/delete"):
        done = alice.submit(path)
        assert done.status_code == 302 and done.headers["Location"].endswith("/keys")
    revoked = alice.submit(f"/tokens/{pat_id}/revoke")
    assert revoked.status_code == 302
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(SSHKey.id))) == 0
        assert session.scalar(sa.select(sa.func.count(PGPKey.id))) == 0
        assert session.scalar(sa.select(PersonalAccessToken.revoked_at)) is not None
    # A revoked token has nothing left to ask about.
    assert alice.get(f"/tokens/{pat_id}/revoke").status_code == 302


def test_logging_out_asks_first_and_ends_the_session(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site)
    ask_then_confirm(alice, "/logout", "Log out?")
    with meta_site.db() as session:
        assert session.scalar(sa.select(LoginSession.revoked_at)) is None
    assert "Stay logged in" in text(alice.get("/logout"))
    assert alice.submit("/logout").status_code == 302
    with meta_site.db() as session:
        assert session.scalar(sa.select(LoginSession.revoked_at)) is not None
    assert alice.get("/profile").status_code == 302


def test_another_browser_is_logged_out_from_the_security_page(meta_site: MetaSite) -> None:
    meta_site.create_user("alice")
    laptop, phone = meta_site.browser("10.0.0.1"), meta_site.browser("10.0.0.2")
    for browser in (laptop, phone):
        assert browser.login("alice").status_code == 302
    page = text(laptop.get("/security"))
    assert "this browser" in page and "10.0.0.2" in page
    with meta_site.db() as session:
        phone_id = session.scalar(
            sa.select(LoginSession.id).where(LoginSession.address == "10.0.0.2")
        )
    path = f"/security/sessions/{phone_id}/end"
    ask_then_confirm(laptop, path, "Log out the browser at 10.0.0.2?")
    assert phone.get("/profile").status_code == 200
    assert laptop.submit(path).status_code == 302
    assert phone.get("/profile").status_code == 302  # to the login page
    assert laptop.get("/profile").status_code == 200
    assert "logged out elsewhere" in text(laptop.get("/audit-log"))
    # Nobody else's session can be ended, and a browser's own goes through /logout.
    bob = signed_in(meta_site, "bob")
    assert bob.get(path).status_code == 404
    with meta_site.db() as session:
        laptop_id = session.scalar(
            sa.select(LoginSession.id).where(LoginSession.address == "10.0.0.1")
        )
    assert laptop.get(f"/security/sessions/{laptop_id}/end").status_code == 302


def test_an_admin_deleting_a_user_is_asked_first(meta_site: MetaSite) -> None:
    signed_in(meta_site, "alice")
    boss = signed_in(meta_site, "boss", "admin")
    ask_then_confirm(boss, "/admin/users/alice/delete", "Delete ~alice?")
    with meta_site.db() as session:
        assert session.scalar(sa.select(User.id).where(User.username == "alice")) is not None


@pytest.mark.parametrize(
    "path, sentence",
    [
        ("/keys/ssh/424242/delete", "You have no SSH key 424242."),
        ("/keys/pgp/424242/delete", "You have no PGP key 424242."),
        ("/tokens/424242/revoke", "You have no personal access token 424242."),
        ("/security/sessions/424242/end", "You have no login session 424242."),
        ("/oauth2/clients/nope", "You have registered no OAuth client with that id."),
        ("/oauth2/authorizations/424242/revoke", "You granted no such access"),
        ("/admin/users/nobody", "No user ~nobody here."),
        ("/~nobody.keys", "No user ~nobody here."),
    ],
)
def test_missing_things_are_a_404_that_says_what_is_missing(
    meta_site: MetaSite, path: str, sentence: str
) -> None:
    boss = signed_in(meta_site, "boss", "admin")
    answer = boss.get(path)
    assert answer.status_code == 404 and sentence in text(answer)
    assert '<section class="error-page">' in text(answer)


def test_a_used_link_is_the_error_page_saying_why(meta_site: MetaSite) -> None:
    answer = meta_site.browser().get("/reset/not-a-token")
    assert answer.status_code == 200  # the form; the link is checked when it is used
    used = meta_site.browser().submit("/reset/not-a-token", {"password": PASSWORD})
    assert used.status_code == 400 and "This link is not valid." in text(used)
    assert '<section class="error-page">' in text(used)


# -- issue 21: what a person noticed -----------------------------------------------------


def test_a_visitor_is_told_what_the_site_is_and_a_member_sees_their_account(
    meta_site: MetaSite,
) -> None:
    visitor = meta_site.browser()
    welcome = visitor.get("/")
    page = text(welcome)
    assert welcome.status_code == 200 and 'class="welcome"' in page
    assert 'href="/login"' in page and 'href="/register"' in page
    header = page.split('<header class="site">', 1)[1].split("</header>", 1)[0]
    assert ">Register</a>" in header and ">Account</a>" not in header
    # On the login page, the header's Log in link does not nest return_to in itself.
    login = text(visitor.get("/login?return_to=/tokens"))
    link = re.search(r'<a href="([^"]*/login\?[^"]*)">Log in</a>', login)
    assert link and link.group(1).count("return_to") == 1 and "%2Ftokens" in link.group(1)

    alice = signed_in(meta_site)
    alice.submit("/keys", {"ssh-key": ED25519}, action="/keys/ssh")
    home = text(alice.get("/"))
    assert "alice@example.org" in home
    assert "1 SSH, 0 PGP" in home and "0 in use" in home and "Off" in home
    # A signed-in user is not shown the registration form.
    answer = alice.get("/register")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/")


def test_two_factor_setup_draws_a_qr_code_and_the_login_code_takes_letters(
    meta_site: MetaSite,
) -> None:
    alice = signed_in(meta_site)
    setup = text(alice.get("/security/totp"))
    svg = re.search(r'<p class="qr"><svg role="img" aria-label="QR code of the link"[^>]*>', setup)
    assert svg and "<path" in setup and "<script" not in setup

    from .test_totp import enable_totp

    enable_totp(meta_site, alice)
    alice.submit("/logout", action="/logout")
    alice.login("alice")
    field = re.search(r"<input[^>]*\bid=\"code\"[^>]*>", text(alice.get("/login/totp")))
    assert field and "inputmode" not in field.group(0)  # recovery codes have letters


def test_a_new_token_is_shown_once_after_a_redirect(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site)
    posted = alice.submit("/tokens", {"comment": "laptop", "scopes": ["meta/profile:RO"]})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/tokens/new")
    shown = text(alice.get("/tokens/new"))
    token = re.search(r'<p class="token"><code>([^<]+)</code>', shown)
    assert token
    again = alice.get("/tokens/new")
    assert again.status_code == 302 and token.group(1) not in text(alice.get("/tokens"))
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(PersonalAccessToken.id))) == 1


def test_a_failed_key_form_leaves_a_url_that_comes_back_to_the_keys(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site)
    bad = alice.submit("/keys", {"ssh-key": "ssh-rsa nonsense"}, action="/keys/ssh")
    assert bad.status_code == 400
    for path in ("/keys/ssh", "/keys/pgp"):
        answer = alice.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/keys")
