"""The authorization matrix: for each visibility (public, unlisted,
private) and each viewer (anonymous, another signed-in user, a member the
owner named, the owner), what they get from the pages, the API and the
downloads (raw messages, attachments, mboxes).

What a viewer may not see is 404 (never 403, which would tell it exists);
what they may see but not change is 403 (401 in the API without a token).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = pytest.mark.postgres

VIEWERS = ("anonymous", "other", "allowed", "owner")
SECRET = "the-text-only-readers-see"
PATCH = (
    "frob: be gentle\n---\n"
    "diff --git a/frob.c b/frob.c\n--- a/frob.c\n+++ b/frob.c\n@@ -1 +1 @@\n-hard\n+soft\n"
)


class World:
    """alice's list ``l`` of one visibility, with a thread (a question with
    an attachment, and an answer), a patch; bob (nobody in particular) and
    carol (a member of ``l``)."""

    def __init__(self, site: Any, visibility: str):
        self.site = site
        self.visibility = visibility
        self.alice = site.user("alice")
        self.bob = site.user("bob")
        self.carol = site.user("carol")
        self.list = site.mailing_list(self.alice, "l", visibility=visibility)
        site.member(self.list, self.carol)
        to = f"~alice/l@{DOMAIN}"
        question = message("Question", SECRET + "\n", sender="alice@example.org", to=to)
        question.add_attachment(
            b"\x00\x01secret bytes",
            maintype="application",
            subtype="octet-stream",
            filename="data.bin",
        )
        assert site.deliver(question, to).startswith("250")
        answer = message(
            "Re: Question",
            "Answer.\n",
            sender="alice@example.org",
            to=to,
            in_reply_to=str(question["Message-ID"]).strip("<>"),
        )
        assert site.deliver(answer, to).startswith("250")
        patch: EmailMessage = message(
            "[PATCH] frob: be gentle", PATCH, sender="alice@example.org", to=to
        )
        assert site.deliver(patch, to).startswith("250")
        first, _second, third = site.emails()
        self.message_id = str(question["Message-ID"]).strip("<>")
        self.email, self.thread = first.id, first.thread_id
        self.patchset = third.patchset_id

    def user(self, who: str) -> Any:
        return {"anonymous": None, "other": self.bob, "allowed": self.carol, "owner": self.alice}[
            who
        ]

    def browser(self, who: str) -> Any:
        return self.site.browser(self.user(who))

    def api(self, who: str) -> Any:
        return self.site.api(self.user(who))

    def sees(self, who: str) -> bool:
        return self.visibility != "private" or who in ("allowed", "owner")


@pytest.fixture(params=["public", "unlisted", "private"])
def world(request: pytest.FixtureRequest, site: Any) -> World:
    return World(site, request.param)


def test_reading_the_archive_on_pages_api_and_downloads(world: World) -> None:
    base = "/~alice/l"
    for who in VIEWERS:
        browser, api = world.browser(who), world.api(who)
        expected = 200 if world.sees(who) else 404
        checks = {
            "list page": browser.get(base),
            "search": browser.get(base + "?search=Question"),
            "patches page": browser.get(base + "/patches"),
            "thread page": browser.get(f"{base}/threads/{world.thread}"),
            "message page": browser.get(f"{base}/messages/{world.email}"),
            "patchset page": browser.get(f"{base}/patches/{world.patchset}"),
            "raw message": browser.get(f"{base}/messages/{world.email}/raw"),
            "attachment": browser.get(f"{base}/messages/{world.email}/attachments/1"),
            "list mbox": browser.get(base + "/mbox", buffered=True),
            "thread mbox": browser.get(f"{base}/threads/{world.thread}/mbox"),
            "patchset mbox": browser.get(f"{base}/patches/{world.patchset}/mbox"),
            "list API": api.get("/lists/alice/l"),
            "threads API": api.get("/lists/alice/l/threads"),
            "thread API": api.get(f"/lists/alice/l/threads/{world.thread}"),
            "thread messages API": api.get(f"/lists/alice/l/threads/{world.thread}/messages"),
            "messages API": api.get("/lists/alice/l/messages"),
            "message API": api.get(f"/lists/alice/l/messages/{world.email}"),
            "patchsets API": api.get("/lists/alice/l/patchsets"),
            "patchset API": api.get(f"/lists/alice/l/patchsets/{world.patchset}"),
            "patchset messages API": api.get(f"/lists/alice/l/patchsets/{world.patchset}/messages"),
        }
        for what, response in checks.items():
            assert response.status_code == expected, (world.visibility, who, what)
            shown = response.get_data()
            assert (SECRET.encode() in shown) is (
                world.sees(who)
                and what
                in (
                    "thread page",
                    "message page",
                    "raw message",
                    "list mbox",
                    "thread mbox",
                    "thread messages API",
                    "messages API",
                    "message API",
                )
            ), (world.visibility, who, what, shown[:300])
        by_id = browser.get(f"{base}/message-id/{world.message_id}")
        assert by_id.status_code == (302 if world.sees(who) else 404), (world.visibility, who)
        if world.sees(who):
            assert b"Question</a>" in checks["search"].get_data()
            assert checks["attachment"].get_data() == b"\x00\x01secret bytes"
            assert checks["attachment"].headers["Content-Disposition"] == (
                'attachment; filename="data.bin"'
            )
            assert "sandbox" in checks["raw message"].headers["Content-Security-Policy"]


def test_listing_shows_unlisted_lists_only_to_their_owner(world: World) -> None:
    for who in VIEWERS:
        listed = (
            world.visibility == "public"
            or who == "owner"
            or (world.visibility == "private" and who == "allowed")
        )
        page = html.unescape(world.browser(who).get("/~alice").get_data(as_text=True))
        assert ('href="/~alice/l"' in page) == listed, (world.visibility, who)
        names = [x["name"] for x in world.api(who).get("/users/alice/lists").json["results"]]
        assert ("l" in names) == listed, (world.visibility, who)
        index = html.unescape(world.browser(who).get("/").get_data(as_text=True))
        assert ("~alice/l<" in index) == (world.visibility == "public" or who == "owner")


def owner_only(world: World, who: str, *, page: bool, write: bool = False) -> int:
    if who == "owner":
        return 200
    if who == "anonymous" and page:
        return 302  # pages send anonymous visitors to log in
    if who == "anonymous" and write:
        return 401
    return 403 if world.sees(who) else 404


def test_settings_moderation_and_webhooks_are_the_owners(world: World) -> None:
    for who in VIEWERS:
        browser, api = world.browser(who), world.api(who)
        for path in (
            "/settings",
            "/settings/members",
            "/settings/webhooks",
            "/moderation",
            "/settings/delete",
        ):
            got = browser.get("/~alice/l" + path).status_code
            assert got == owner_only(world, who, page=True), (world.visibility, who, path)
        for path in ("/members", "/subscriptions", "/webhooks", "/webhook-deliveries"):
            got = api.get("/lists/alice/l" + path).status_code
            expected = owner_only(world, who, page=False)
            if who == "anonymous":
                expected = 403 if world.sees(who) else 404
            assert got == expected, (world.visibility, who, path)
        changed = api.patch(
            f"/lists/alice/l/patchsets/{world.patchset}", {"status": "needs_revision"}
        ).status_code
        assert changed == owner_only(world, who, page=False, write=True), (world.visibility, who)
        updated = api.patch("/lists/alice/l", {"description": f"by {who}"}).status_code
        assert updated == owner_only(world, who, page=False, write=True), (world.visibility, who)


def test_subscribing_needs_reading(world: World) -> None:
    for who in ("other", "allowed", "owner"):
        got = world.api(who).put("/lists/alice/l/subscription").status_code
        assert got == (200 if world.sees(who) else 404), (world.visibility, who)
    assert world.api("anonymous").put("/lists/alice/l/subscription").status_code == 401


def test_posting_by_mail_follows_the_visibility(world: World) -> None:
    """Mail from a stranger to a private list is "no such list": its
    existence does not leak through the bounce either."""
    to = f"~alice/l@{DOMAIN}"
    reply = world.site.deliver(message("Hi", sender="stranger@example.org", to=to), to)
    if world.visibility == "private":
        assert reply == f"550 5.1.1 <{to}>: no such list here"
    else:
        assert reply.startswith("250 2.0.0 archived at ")
    member = world.site.deliver(message("Hi", sender="carol@example.org", to=to), to)
    assert member.startswith("250 2.0.0 archived at ")
