"""Administration: only admins see it; they find users, suspend them (who
are then signed out everywhere and told why at login), lift suspensions and
delete accounts."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from srht_plugins.meta.models import AuditLogEntry, SSHKey, User

from .conftest import Browser, MetaSite, signed_out, text

pytestmark = pytest.mark.postgres

LISTED = r'href="/admin/users/[a-z0-9_-]+">~([a-z0-9_-]+)</a>'
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjKbDOtgWX5Bw5wlS94rh3vJcD17ehkzbIkO8LHg8Yx"
NOTICE = "Spam in the issue trackers; write to abuse@example.org."


def signed_in(site: MetaSite, username: str, user_type: str = "active") -> Browser:
    site.create_user(username, user_type=user_type)
    browser = site.browser()
    assert browser.login(username).status_code == 302
    return browser


def user_type(site: MetaSite, username: str) -> str | None:
    with site.db() as session:
        return session.scalar(sa.select(User.user_type).where(User.username == username))


ADMIN_PAGES = [
    ("GET", "/admin/"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users?q=a"),
    ("GET", "/admin/users/alice"),
    ("GET", "/admin/users/alice/delete"),
    ("POST", "/admin/users/alice/suspend"),
    ("POST", "/admin/users/alice/unsuspend"),
    ("POST", "/admin/users/alice/delete"),
    ("GET", "/admin/users/nobody"),
]


def test_admin_pages_do_not_exist_for_other_users(meta_site: MetaSite) -> None:
    signed_in(meta_site, "alice")
    mallory = signed_in(meta_site, "mallory")
    token = mallory.csrf_token()
    for method, path in ADMIN_PAGES:
        data = {"csrf_token": token, "notice": "x", "confirmed": "yes", "typed": "alice"}
        answer = mallory.client.open(path, method=method, data=data if method == "POST" else None)
        assert answer.status_code == 404, (method, path)
    assert user_type(meta_site, "alice") == "active"
    assert "/admin/" not in text(mallory.get("/"))


def test_admin_pages_send_anonymous_visitors_to_login(meta_site: MetaSite) -> None:
    answer = meta_site.browser().get("/admin/users")
    assert answer.status_code == 302 and "/login?return_to=" in answer.headers["Location"]


def test_admins_list_and_search_users(meta_site: MetaSite) -> None:
    admin = signed_in(meta_site, "boss", "admin")
    for name in ("alice", "alicia", "bob"):
        meta_site.create_user(
            name, email_address=f"{name}@{'corp' if name == 'bob' else 'home'}.example"
        )
    meta_site.create_user("under_score")
    everyone = text(admin.get("/admin/users"))
    assert re.findall(LISTED, everyone) == ["alice", "alicia", "bob", "boss", "under_score"]
    by_name = text(admin.get("/admin/users?q=ALI"))
    assert re.findall(LISTED, by_name) == ["alice", "alicia"]
    by_email = text(admin.get("/admin/users?q=corp.example"))
    assert re.findall(LISTED, by_email) == ["bob"]
    # LIKE wildcards in the query are plain characters.
    assert re.findall(LISTED, text(admin.get("/admin/users?q=_"))) == ["under_score"]
    assert re.findall(LISTED, text(admin.get("/admin/users?q=%25"))) == []
    assert "Admin" in text(admin.get("/"))


def test_the_user_list_is_paginated(meta_site: MetaSite) -> None:
    admin = signed_in(meta_site, "boss", "admin")
    with meta_site.db() as session:
        session.add_all(
            User(username=f"user{n:03}", email=f"user{n:03}@example.org", user_type="active")
            for n in range(60)
        )
    first = text(admin.get("/admin/users"))
    assert "Page 1 of 2" in first and 'rel="next"' in first
    assert re.findall(LISTED, first) == ["boss"] + [f"user{n:03}" for n in range(49)]
    second = text(admin.get("/admin/users?page=2"))
    assert re.findall(LISTED, second) == [f"user{n:03}" for n in range(49, 60)]


def test_a_suspended_user_is_signed_out_everywhere_and_told_why(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    assert alice.get("/profile").status_code == 200
    admin = signed_in(meta_site, "boss", "admin")

    empty = admin.submit("/admin/users/alice", {"notice": ""}, action="/admin/users/alice/suspend")
    assert empty.status_code == 400 and "Say why" in text(empty)
    assert user_type(meta_site, "alice") == "active"

    done = admin.submit(
        "/admin/users/alice", {"notice": NOTICE}, action="/admin/users/alice/suspend"
    )
    assert done.status_code == 302
    assert user_type(meta_site, "alice") == "suspended"

    # Her cookie no longer signs her in, here...
    assert alice.cookie() is not None
    assert alice.get("/profile").status_code == 302
    assert signed_out(alice)
    # ...nor on any other service: they hear of it through the broadcast.
    update = meta_site.broadcasts("user:update")[-1]
    assert update["service"] == "listener"
    assert (
        update["data"]["username"],
        update["data"]["user_type"],
        update["data"]["suspension_notice"],
    ) == ("alice", "suspended", NOTICE)
    # Logging in again shows the notice.
    refused = meta_site.browser().login("alice")
    assert refused.status_code == 400 and NOTICE in text(refused)
    assert meta_site.browser().get("/~alice.keys").status_code == 404

    lifted = admin.submit("/admin/users/alice", action="/admin/users/alice/unsuspend")
    assert lifted.status_code == 302 and user_type(meta_site, "alice") == "active"
    assert meta_site.broadcasts("user:update")[-1]["data"]["user_type"] == "active"
    assert meta_site.browser().login("alice").status_code == 302

    with meta_site.db() as session:
        events = session.scalars(sa.select(AuditLogEntry.event).order_by(AuditLogEntry.id)).all()
    assert "account suspended" in events and "admin: user suspended" in events


def test_admins_cannot_suspend_or_delete_themselves(meta_site: MetaSite) -> None:
    admin = signed_in(meta_site, "boss", "admin")
    page = text(admin.get("/admin/users/boss"))
    assert "This is your own account." in page
    token = admin.csrf_token()
    refused = admin.post(
        "/admin/users/boss/suspend",
        data={"csrf_token": token, "notice": "oops"},
        follow_redirects=True,
    )
    assert "You cannot suspend your own account." in text(refused)
    deleted = admin.post(
        "/admin/users/boss/delete",
        data={"csrf_token": token, "confirmed": "yes", "typed": "boss"},
        follow_redirects=True,
    )
    assert "You cannot delete your own account here." in text(deleted)
    assert user_type(meta_site, "boss") == "admin"


def test_deleting_a_user_needs_confirmation_and_reaches_every_service(meta_site: MetaSite) -> None:
    alice = signed_in(meta_site, "alice")
    alice.submit("/keys", {"ssh-key": ED25519}, action="/keys/ssh")
    admin = signed_in(meta_site, "boss", "admin")

    # The page says what goes with the account, and asks for its name.
    question = text(admin.get("/admin/users/alice/delete"))
    assert "Delete ~alice?" in question and "1 SSH keys" in question
    assert user_type(meta_site, "alice") == "active"
    unconfirmed = admin.submit("/admin/users/alice/delete", {})
    assert unconfirmed.status_code == 400 and "Type alice exactly" in text(unconfirmed)
    mistyped = admin.submit("/admin/users/alice/delete", {"typed": "alicia"})
    assert mistyped.status_code == 400 and "nothing was changed" in text(mistyped)
    assert user_type(meta_site, "alice") == "active"

    deleted = admin.submit("/admin/users/alice/delete", {"typed": "alice"})
    assert deleted.status_code == 302 and deleted.headers["Location"].endswith("/admin/users")
    assert user_type(meta_site, "alice") is None
    with meta_site.db() as session:
        assert session.scalar(sa.select(sa.func.count(SSHKey.id))) == 0
    gone = meta_site.broadcasts("user:delete")
    assert [(g["service"], g["data"]["username"]) for g in gone] == [("listener", "alice")]
    assert alice.get("/profile").status_code == 302
    assert admin.get("/admin/users/alice").status_code == 404
    assert "admin: user deleted" in text(admin.get("/audit-log"))


def test_the_user_page_counts_keys_and_live_tokens_under_their_names(meta_site: MetaSite) -> None:
    from srht_core import db_session
    from srht_plugins.meta.keys import add_ssh_key
    from srht_plugins.meta.models import PersonalAccessToken
    from srht_plugins.meta.tokens import issue_personal_token, revoke_personal_token

    meta_site.create_user("alice")
    with meta_site.app.app_context():
        alice = db_session.scalar(sa.select(User).where(User.username == "alice"))
        add_ssh_key(alice, ED25519)
        issue_personal_token(alice, "meta/profile:RO", comment="kept")
        issue_personal_token(alice, "meta/profile:RO", comment="revoked")
        revoke_personal_token(
            db_session.scalar(
                sa.select(PersonalAccessToken).where(PersonalAccessToken.comment == "revoked")
            )
        )
        db_session.commit()
    page = signed_in(meta_site, "boss", "admin").get("/admin/users/alice").get_data(as_text=True)
    assert "<dt>SSH keys</dt><dd>1</dd>" in page and "<dt>PGP keys</dt><dd>0</dd>" in page
    assert "<dt>Personal access tokens</dt><dd>1</dd>" in page  # the revoked one is not counted
