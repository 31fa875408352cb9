"""The authorization matrix: for each object kind (tracker, ticket,
comment, label, webhook, access list) and each visibility (public,
unlisted, private), what an anonymous visitor, another signed-in user, a
user the owner named, and the owner get, on the pages and in the API.

What a viewer may not see is 404 (never 403, which would tell it exists);
what they may see but not change is 403 (401 in the API without a token).
"""

from __future__ import annotations

import html
from typing import Any

import pytest

pytestmark = pytest.mark.postgres

VIEWERS = ("anonymous", "other", "allowed", "owner")
SECRET = "the-comment-only-viewers-read"


class World:
    """alice's tracker ``t`` of one visibility, with a ticket, a comment, a
    label and a webhook; bob (nobody in particular); carol, named on ``t``
    with browse, submit and comment; and ``open``, a public tracker anyone
    may submit to, whose page gives every viewer a CSRF token."""

    def __init__(self, site: Any, visibility: str):
        self.site = site
        self.visibility = visibility
        self.alice = site.user("alice")
        self.bob = site.user("bob")
        self.carol = site.user("carol")
        self.tracker = site.tracker(self.alice, "t", visibility=visibility)
        site.tracker(self.alice, "open", anonymous_access=1 | 2 | 4)
        site.grant(self.tracker, self.carol, "browse", "submit", "comment")
        site.ticket(self.alice, "t", "First ticket")
        owner = site.api(self.alice)
        assert (
            owner.post("/trackers/alice/t/tickets/1/comments", {"text": SECRET}).status_code == 201
        )
        label = owner.post("/trackers/alice/t/labels", {"name": "bug", "color": "#d73a4a"})
        self.label_id = label.json["id"]
        hook = owner.post(
            "/trackers/alice/t/webhooks",
            {"url": "http://127.0.0.1:9/", "events": ["ticket:create"]},
        )
        self.webhook_id = hook.json["id"]

    def user(self, who: str) -> Any:
        return {"anonymous": None, "other": self.bob, "allowed": self.carol, "owner": self.alice}[
            who
        ]

    def browser(self, who: str) -> Any:
        browser = self.site.browser(self.user(who))
        browser.token = browser.csrf_token("/~alice/open")
        return browser

    def api(self, who: str) -> Any:
        return self.site.api(self.user(who))

    def sees(self, who: str) -> bool:
        return self.visibility != "private" or who in ("allowed", "owner")


@pytest.fixture(params=["public", "unlisted", "private"])
def world(request: pytest.FixtureRequest, site: Any) -> World:
    return World(site, request.param)


def read(world: World, who: str) -> int:
    return 200 if world.sees(who) else 404


def owner_only(world: World, who: str, *, page: bool, write: bool = False) -> int:
    if who == "owner":
        return 200
    if who == "anonymous" and page:
        return 401 if write else 302  # pages send anonymous visitors to log in
    if who == "anonymous" and write:
        return 401
    return 403 if world.sees(who) else 404


def test_reading_trackers_tickets_comments_and_labels(world: World) -> None:
    for who in VIEWERS:
        browser, api, expected = world.browser(who), world.api(who), read(world, who)
        checks = {
            "tracker page": browser.get("/~alice/t"),
            "ticket page": browser.get("/~alice/t/1"),
            "labels page": browser.get("/~alice/t/labels"),
            "tracker API": api.get("/trackers/alice/t"),
            "ticket list API": api.get("/trackers/alice/t/tickets"),
            "ticket API": api.get("/trackers/alice/t/tickets/1"),
            "comments API": api.get("/trackers/alice/t/tickets/1/comments"),
            "labels API": api.get("/trackers/alice/t/labels"),
            "label API": api.get(f"/trackers/alice/t/labels/{world.label_id}"),
        }
        for what, response in checks.items():
            assert response.status_code == expected, (world.visibility, who, what)
        ticket_page = html.unescape(checks["ticket page"].get_data(as_text=True))
        assert (SECRET in ticket_page) == world.sees(who)
        if world.sees(who):
            assert checks["comments API"].json["results"][0]["text"] == SECRET
            assert "<style>.label-" in ticket_page
        else:
            assert SECRET not in checks["comments API"].get_data(as_text=True)
            assert "bug" not in checks["labels API"].get_data(as_text=True)


def test_listing_shows_unlisted_trackers_only_to_their_owner(world: World) -> None:
    for who in VIEWERS:
        listed = (
            world.visibility == "public"
            or who == "owner"
            or (world.visibility == "private" and who == "allowed")
        )
        page = html.unescape(world.browser(who).get("/~alice").get_data(as_text=True))
        assert ('href="/~alice/t"' in page) == listed, (world.visibility, who)
        names = [t["name"] for t in world.api(who).get("/users/alice/trackers").json["results"]]
        assert ("t" in names) == listed, (world.visibility, who)
        index = html.unescape(world.browser(who).get("/").get_data(as_text=True))
        assert ("~alice/t<" in index) == (world.visibility == "public" or who == "owner")


def test_submitting_and_commenting(world: World) -> None:
    """Defaults: signed-in users may submit and comment, anonymous
    visitors only browse; carol is named with submit and comment."""
    for who in VIEWERS:
        browser, api = world.browser(who), world.api(who)
        may = world.sees(who) and who != "anonymous"
        page_status = 302 if may else (403 if world.sees(who) else 404)
        api_status = 201 if may else (401 if who == "anonymous" else 404)

        submitted = browser.post(
            "/~alice/t/submit", data={"csrf_token": browser.token, "title": f"From {who}"}
        )
        assert submitted.status_code == page_status, (world.visibility, who)
        commented = browser.post(
            "/~alice/t/1/comment",
            data={"csrf_token": browser.token, "text": f"Comment from {who}", "action": "comment"},
        )
        assert commented.status_code == page_status, (world.visibility, who)
        assert (
            api.post("/trackers/alice/t/tickets", {"title": f"API {who}"}).status_code == api_status
        ), (world.visibility, who)
        assert (
            api.post("/trackers/alice/t/tickets/1/comments", {"text": "x"}).status_code
            == api_status
        ), (world.visibility, who)
    titles = [
        t["title"] for t in world.api("owner").get("/trackers/alice/t/tickets").json["results"]
    ]
    for who in VIEWERS:
        may = world.sees(who) and who != "anonymous"
        assert (f"From {who}" in titles) == may
        assert (f"API {who}" in titles) == may


def test_triage_needs_triage_access(world: World) -> None:
    for who in VIEWERS:
        browser, api = world.browser(who), world.api(who)
        if who == "owner":
            page_status, api_status = 302, 200
        elif not world.sees(who):
            page_status, api_status = 404, (401 if who == "anonymous" else 404)
        else:
            page_status, api_status = 403, (401 if who == "anonymous" else 403)
        closed = browser.post(
            "/~alice/t/1/comment",
            data={
                "csrf_token": browser.token,
                "text": "",
                "action": "close",
                "resolution": "fixed",
            },
        )
        assert closed.status_code == page_status, (world.visibility, who)
        labelled = browser.post(
            "/~alice/t/1/labels", data={"csrf_token": browser.token, "label": str(world.label_id)}
        )
        assert labelled.status_code == page_status, (world.visibility, who)
        assert (
            api.patch("/trackers/alice/t/tickets/1", {"status": "open", "labels": []}).status_code
            == api_status
        ), (world.visibility, who)
        assert api.post(
            "/trackers/alice/t/labels", {"name": f"l-{who}", "color": "#000000"}
        ).status_code == (201 if who == "owner" else api_status)


def test_named_access_replaces_the_defaults(site: Any) -> None:
    """A named entry with browse only shuts a user out of what every other
    signed-in user may do."""
    alice, mallory = site.user("alice"), site.user("mallory")
    tracker = site.tracker(alice, "t")
    site.grant(tracker, mallory, "browse")
    api = site.api(mallory)
    assert api.get("/trackers/alice/t").status_code == 200
    assert api.post("/trackers/alice/t/tickets", {"title": "spam"}).status_code == 403
    bob = site.user("bob")
    assert site.api(bob).post("/trackers/alice/t/tickets", {"title": "ok"}).status_code == 201


def test_settings_webhooks_and_access_lists_are_the_owners(world: World) -> None:
    for who in VIEWERS:
        browser, api = world.browser(who), world.api(who)
        page = owner_only(world, who, page=True)
        for path in (
            "/~alice/t/settings",
            "/~alice/t/settings/webhooks",
            "/~alice/t/settings/access",
            "/~alice/t/settings/delete",
        ):
            assert browser.get(path).status_code == page, (world.visibility, who, path)
        posted = browser.post(
            "/~alice/t/settings/webhooks",
            data={
                "csrf_token": browser.token,
                "url": "http://127.0.0.1:9/x",
                "events": "ticket:update",
            },
        )
        assert posted.status_code == (
            302 if who == "owner" else owner_only(world, who, page=True, write=True)
        ), who
        for path in (
            "/trackers/alice/t/webhooks",
            f"/trackers/alice/t/webhooks/{world.webhook_id}",
            "/trackers/alice/t/webhook-deliveries",
            "/trackers/alice/t/access",
        ):
            assert api.get(path).status_code == owner_only(world, who, page=False), (
                world.visibility,
                who,
                path,
            )
        changed = api.patch("/trackers/alice/t", {"description": f"by {who}"})
        assert changed.status_code == owner_only(world, who, page=False, write=True), who
        granted = api.put("/trackers/alice/t/access/bob", {"access": ["browse"]})
        assert granted.status_code == owner_only(world, who, page=False, write=True), who
        if who != "owner":
            deleted = api.delete("/trackers/alice/t")
            assert deleted.status_code == owner_only(world, who, page=False, write=True)
            assert browser.post(
                "/~alice/t/settings/delete", data={"csrf_token": browser.token, "confirm": "t"}
            ).status_code == owner_only(world, who, page=True, write=True)
    assert world.api("owner").get("/trackers/alice/t").status_code == 200
