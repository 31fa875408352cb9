"""Activity as the other services post it: signed deliveries to a URL of
the resource's own, summarized in feeds that show only what the viewer
may see."""

from __future__ import annotations

import pytest
from support import wait_until

pytestmark = [pytest.mark.postgres]

PUSH = {
    "repository": {"name": "hello", "visibility": "public"},
    "pusher": "~alice",
    "refs": [{"name": "refs/heads/main", "old": None, "new": "abc"}],
}


def test_a_push_shows_in_the_project_profile_and_dashboard(
    make_user, browser, attach_source, deliver, app, token
):
    alice = make_user("alice")
    browser(alice).submit("/projects/create", {"name": "hello", "visibility": "public"})
    source = attach_source(1, "~alice/hello")
    answer = deliver(source, "repo:push", PUSH)
    assert answer.status_code == 200 and answer.json == {"recorded": True}
    for who, path in ((None, "/~alice/hello"), (None, "/~alice"), (alice, "/")):
        assert "pushed main to ~alice/hello" in browser(who).get(path).text, path
    feed = app.test_client().get("/api/projects/alice/hello/feed").json["results"]
    assert [(e["event"], e["actor"], e["summary"]) for e in feed] == [
        ("repo:push", "~alice", "pushed main to ~alice/hello")
    ]


def test_a_delivery_not_signed_by_the_site_or_to_a_wrong_key_is_refused(
    make_user, browser, attach_source, deliver, app
):
    browser(make_user("alice")).submit("/projects/create", {"name": "h", "visibility": "public"})
    source = attach_source(1, "~alice/hello")
    forged = app.test_client().post(
        f"/webhooks/{source.id}/{source.hook_key}", json={"event": "repo:push", "data": PUSH}
    )
    assert forged.status_code == 400 and "refused" in forged.text
    assert deliver(source, "repo:push", PUSH, key="guessed").status_code == 404
    assert "pushed" not in browser(None).get("/~alice/h").text


def test_a_private_resource_on_a_public_project_is_its_owners_alone(
    make_user, browser, attach_source, deliver, app, token
):
    alice, bob = make_user("alice"), make_user("bob")
    browser(alice).submit("/projects/create", {"name": "hello", "visibility": "public"})
    source = attach_source(1, "~alice/secret", visibility="private")
    deliver(source, "repo:push", {**PUSH, "repository": {"visibility": "private"}})
    assert "~alice/secret" in browser(alice).get("/~alice/hello").text
    for who in (browser(bob), browser(None)):
        for path in ("/~alice/hello", "/~alice", "/explore", "/"):
            assert "~alice/secret" not in who.get(path).text, path
    client = app.test_client()
    for headers in ({}, token(bob)):
        for path in ("resources", "feed"):
            listed = client.get(f"/api/projects/alice/hello/{path}", headers=headers).json
            assert listed["results"] == [], (path, listed)
    mine = client.get("/api/projects/alice/hello/resources", headers=token(alice)).json
    assert [r["title"] for r in mine["results"]] == ["~alice/secret"]


def test_a_resource_made_private_takes_its_events_out_of_public_views(
    make_user, browser, attach_source, deliver
):
    browser(make_user("alice")).submit(
        "/projects/create", {"name": "hello", "visibility": "public"}
    )
    source = attach_source(1, "~alice/hello")
    deliver(source, "repo:push", PUSH)
    assert "pushed main" in browser(None).get("/~alice/hello").text
    deliver(source, "repo:push", {**PUSH, "repository": {"visibility": "private"}})
    assert "pushed main" not in browser(None).get("/~alice/hello").text
    assert "pushed main" not in browser(None).get("/~alice").text


def test_a_deleted_tracker_leaves_the_project(make_user, browser, attach_source, deliver):
    browser(make_user("alice")).submit(
        "/projects/create", {"name": "hello", "visibility": "public"}
    )
    source = attach_source(1, "~alice/bugs")
    deliver(source, "ticket:create", {"actor": "~bob", "ticket": {"number": 1, "title": "Hi"}})
    assert "opened ~alice/bugs#1: Hi" in browser(None).get("/~alice/hello").text
    assert deliver(source, "tracker:delete", {}).json == {"recorded": False}
    page = browser(None).get("/~alice/hello").text
    assert "~alice/bugs" not in page and "No resources attached." in page


def test_a_kept_project_page_runs_no_query_and_follows_every_change(
    make_user, browser, attach_source, deliver, app
):
    from srht_core import state_of

    alice = make_user("alice")
    browser(alice).submit("/projects/create", {"name": "hello", "visibility": "public"})
    source = attach_source(1, "~alice/hello")
    db = state_of(app).db
    assert db.row_feed().wait_live(), "the row feed never listened"
    visitor = browser(None)

    def kept() -> bool:
        # Until PostgreSQL's notices of the rows just written have come, a
        # kept page may still be dropped for them.
        with db.count_statements() as statements:
            page = visitor.get("/~alice/hello")
        return page.status_code == 200 and statements[0] == 0

    wait_until(kept, what="the project page kept, answered with no query")

    # A new event, a resource made private, the project made private: each
    # shows on the visitor's very next request.
    deliver(source, "repo:push", PUSH)
    page = visitor.get("/~alice/hello").text
    assert "pushed main to ~alice/hello" in page and "git.example.org/~alice/hello" in page
    deliver(source, "repo:push", {**PUSH, "repository": {"visibility": "private"}})
    page = visitor.get("/~alice/hello").text
    assert "pushed main" not in page and "git.example.org/~alice/hello" not in page
    browser(alice).submit("/~alice/hello/settings", {"name": "hello", "visibility": "private"})
    assert visitor.get("/~alice/hello").status_code == 404
