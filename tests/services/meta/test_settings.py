"""Account settings: profile, password, email address, tokens and the audit
log, as the signed-in user uses them, and what they refuse."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from srht_plugins.meta.models import AuditLogEntry, EmailToken, PersonalAccessToken, User

from .conftest import PASSWORD, Browser, MetaSite, signed_out, text

pytestmark = pytest.mark.postgres


def signed_in(site: MetaSite, username: str = "alice", **kwargs: Any) -> Browser:
    site.create_user(username, **kwargs)
    browser = site.browser()
    assert browser.login(username).status_code == 302
    return browser


def user_row(site: MetaSite, username: str) -> User:
    with site.db() as session:
        user = session.scalar(sa.select(User).where(User.username == username))
        assert user is not None
        session.expunge(user)
        return user


@pytest.mark.parametrize(
    "path", ["/profile", "/security", "/security/totp", "/tokens", "/audit-log", "/keys"]
)
def test_settings_send_anonymous_visitors_to_login(meta_site: MetaSite, path: str) -> None:
    answer = meta_site.browser().get(path)
    assert answer.status_code == 302
    assert "/login?return_to=" in answer.headers["Location"]


def test_anonymous_posts_are_refused(meta_site: MetaSite) -> None:
    browser = meta_site.browser()
    token = browser.csrf_token()
    answer = browser.post("/profile", data={"csrf_token": token, "name": "Nobody"})
    assert answer.status_code == 401


def test_profile_is_saved_rendered_and_broadcast(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    saved = browser.submit(
        "/profile",
        {
            "name": "Alice Liddell",
            "url": "https://alice.example.org",
            "location": "Oxford",
            "bio": "I *like* rabbits.\n\n<script>alert(1)</script>",
        },
    )
    assert saved.status_code == 302
    alice = user_row(meta_site, "alice")
    assert (alice.name, alice.url, alice.location) == (
        "Alice Liddell",
        "https://alice.example.org",
        "Oxford",
    )
    page = browser.get("/").get_data(as_text=True)
    assert "<em>like</em>" in page and "<script>alert(1)</script>" not in page
    assert "Alice Liddell" in page

    update = meta_site.broadcasts("user:update")[-1]
    assert update["service"] == "listener"
    assert update["data"]["name"] == "Alice Liddell" and update["data"]["username"] == "alice"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("url", "javascript://example.org/%0aalert(1)", "must start with https:// or http://"),
        ("url", "not a url", "Enter a web address"),
        ("name", "n" * 257, "Field cannot be longer than 256 characters."),
        ("location", "l" * 257, "Field cannot be longer than 256 characters."),
        ("bio", "b" * 4097, "Field cannot be longer than 4096 characters."),
    ],
)
def test_profile_refuses_bad_values_and_stores_nothing(
    meta_site: MetaSite, field: str, value: str, message: str
) -> None:
    browser = signed_in(meta_site)
    answer = browser.submit("/profile", {"name": "Alice", field: value})
    assert answer.status_code == 400 and message in text(answer)
    alice = user_row(meta_site, "alice")
    assert (alice.name, alice.url, alice.location, alice.bio) == (None, None, None, None)
    assert meta_site.broadcasts("user:update") == []


def test_password_change_needs_the_current_password(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    wrong = browser.submit(
        "/security",
        {"password-current": "not it", "password-password": "a new passphrase"},
        action="/security/password",
    )
    assert wrong.status_code == 400 and "That is not your current password." in text(wrong)
    short = browser.submit(
        "/security",
        {"password-current": PASSWORD, "password-password": "short"},
        action="/security/password",
    )
    assert short.status_code == 400 and "Password must be at least 10 characters." in text(short)

    done = browser.submit(
        "/security",
        {"password-current": PASSWORD, "password-password": "a new passphrase"},
        action="/security/password",
    )
    assert done.status_code == 302
    fresh = meta_site.browser()
    assert fresh.login("alice").status_code == 400
    assert fresh.login("alice", "a new passphrase").status_code == 302
    notice = meta_site.mail_to("alice@example.org")[-1]
    assert "password was changed" in notice["Subject"]
    log = text(browser.get("/audit-log"))
    assert "password changed" in log and "wrong current password" in log


def test_email_change_is_confirmed_by_the_new_address(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    meta_site.browser().submit("/forgot", {"email": "alice@example.org"})
    reset = meta_site.last_link("alice@example.org", "/reset/")
    asked = browser.submit(
        "/security",
        {"email-email": "alice@new.example", "email-password": PASSWORD},
        action="/security/email",
    )
    assert asked.status_code == 302
    assert user_row(meta_site, "alice").email == "alice@example.org"
    old_mail = meta_site.mail_to("alice@example.org")
    assert any("alice@new.example" in m.get_content() for m in old_mail)  # type: ignore[attr-defined]
    assert meta_site.broadcasts("user:update") == []

    link = meta_site.last_link("alice@new.example", "/security/email/")
    shown = meta_site.browser().get(link)  # as a mail scanner opens it: nothing changes
    assert shown.status_code == 200 and "Make alice@new.example the address" in text(shown)
    assert user_row(meta_site, "alice").email == "alice@example.org"
    followed = meta_site.browser().submit(link)  # in any browser: the mailbox is the proof
    assert followed.status_code == 302
    assert user_row(meta_site, "alice").email == "alice@new.example"
    assert meta_site.broadcasts("user:update")[-1]["data"]["email"] == "alice@new.example"
    assert "now alice@new.example" in meta_site.mail_to("alice@example.org")[-1].get_content()  # type: ignore[attr-defined]

    again = meta_site.browser().get(link)
    assert again.status_code == 400 and "used already" in text(again)
    replayed = meta_site.browser().post(link, data={"csrf_token": "forged"})
    assert replayed.status_code == 400
    # A reset link mailed to the old address died with it.
    stale = meta_site.browser().submit(reset, {"password": "a brand new passphrase"})
    assert stale.status_code == 400 and "used already" in text(stale)
    # The old address no longer finds the account; the new one does.
    fresh = meta_site.browser()
    assert fresh.login("alice@example.org").status_code == 400
    assert fresh.login("alice@new.example").status_code == 302


def test_email_change_refuses_a_taken_address_and_a_wrong_password(meta_site: MetaSite) -> None:
    meta_site.create_user("bob")
    browser = signed_in(meta_site)
    taken = browser.submit(
        "/security",
        {"email-email": "BOB@example.org", "email-password": PASSWORD},
        action="/security/email",
    )
    assert taken.status_code == 400 and "Another account uses that address." in text(taken)
    wrong = browser.submit(
        "/security",
        {"email-email": "alice@new.example", "email-password": "nope"},
        action="/security/email",
    )
    assert wrong.status_code == 400 and "That is not your current password." in text(wrong)
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(EmailToken.id))) == 0
    assert meta_site.mail_to("alice@new.example") == []


def test_token_scopes_expiry_and_validation(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    none = browser.submit("/tokens", {"comment": "empty"})
    assert none.status_code == 400 and "Choose at least one scope." in text(none)
    unknown = browser.submit("/tokens", {"scopes": ["todo/tickets:RW"]})
    assert unknown.status_code == 400 and "is not one of the options" in text(unknown)
    too_long = browser.submit("/tokens", {"scopes": ["meta/keys:RO"], "expires": "5000"})
    assert too_long.status_code == 400 and "between 1 and 3650" in text(too_long)
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(PersonalAccessToken.id))) == 0

    made = browser.submit(
        "/tokens",
        {"comment": "ci", "scopes": ["meta/keys:RO", "meta/keys:RW", "meta/profile:RO"]},
        follow_redirects=True,
    )
    assert made.status_code == 200
    assert "never" in text(made)
    with meta_site.db() as session:
        pat = session.scalar(sa.select(PersonalAccessToken))
        assert pat is not None
        assert (pat.scopes, pat.expires, pat.comment) == (
            "meta/keys:RW meta/profile:RO",
            None,
            "ci",
        )


def test_another_users_token_cannot_be_revoked(meta_site: MetaSite) -> None:
    bob = signed_in(meta_site, "bob")
    bob.submit("/tokens", {"scopes": ["meta/profile:RO"], "comment": "bob's"})
    with meta_site.db() as session:
        pat_id = session.scalar(sa.select(PersonalAccessToken.id))
    alice = signed_in(meta_site, "alice")
    answer = alice.post(f"/tokens/{pat_id}/revoke", data={"csrf_token": alice.csrf_token()})
    assert answer.status_code == 404
    assert (
        alice.post("/tokens/999999/revoke", data={"csrf_token": alice.csrf_token()}).status_code
        == 404
    )
    with meta_site.db() as session:
        assert session.scalar(sa.select(PersonalAccessToken.revoked_at)) is None
    assert "bob's" not in text(alice.get("/tokens"))


def test_audit_log_is_newest_first_and_paginated(meta_site: MetaSite) -> None:
    browser = signed_in(meta_site)
    alice_id = user_row(meta_site, "alice").id
    with meta_site.db() as session:
        session.add_all(AuditLogEntry(user_id=alice_id, event=f"event {n:03}") for n in range(60))
    bob = signed_in(meta_site, "bob")
    first = text(browser.get("/audit-log"))
    shown = re.findall(r"event \d{3}", first)
    assert shown[0] == "event 059" and len(shown) == 50
    assert 'rel="next"' in first and "Page 1 of 2" in first
    second = text(browser.get("/audit-log?page=2"))
    assert "account created" in second and "event 000" in second
    assert re.findall(r"event \d{3}", text(bob.get("/audit-log"))) == []


def test_logging_out_or_changing_the_password_ends_other_copies_of_a_session(
    meta_site: MetaSite,
) -> None:
    """The login cookie names a session meta can end: logging out ends it
    for every copy of the cookie (another tab's, a thief's), and a password
    change ends every other session of the account."""
    meta_site.create_user("alice")
    laptop, phone, tablet = (meta_site.browser() for _ in range(3))
    for browser in (laptop, phone, tablet):
        assert browser.login("alice").status_code == 302
    stolen = meta_site.browser()
    stolen.client.set_cookie("srht-login", laptop.cookie())
    assert "~alice" in text(stolen.get("/"))

    laptop.submit("/logout", action="/logout")
    assert signed_out(stolen)  # to the login page: signed out
    assert "~alice" in text(phone.get("/"))

    changed = phone.submit(
        "/security",
        {"password-current": PASSWORD, "password-password": "a new passphrase"},
        action="/security/password",
    )
    assert changed.status_code == 302
    assert "~alice" in text(phone.get("/"))  # the browser that changed it stays in
    assert signed_out(tablet)
