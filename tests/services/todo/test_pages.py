"""todo's pages as a person uses them: forms posted with the CSRF token
the page gave, no JavaScript anywhere, and a query count that does not grow
with the number of tickets."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

pytestmark = pytest.mark.postgres


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_create_a_tracker_and_a_ticket_through_the_forms(site: Any) -> None:
    alice = site.user("alice")
    browser = site.browser(alice)

    created = browser.submit(
        "/trackers/create", {"name": "bugs", "description": "Our *bugs*", "visibility": "public"}
    )
    assert created.status_code == 302
    assert created.headers["Location"].endswith("/~alice/bugs")
    page = browser.get("/~alice/bugs")
    assert page.status_code == 200
    assert "<em>bugs</em>" in page.get_data(as_text=True)

    submitted = browser.submit(
        "/~alice/bugs",
        {"title": "It crashes", "description": "On **start**"},
        action="/~alice/bugs/submit",
    )
    assert submitted.status_code == 302
    assert submitted.headers["Location"].endswith("/~alice/bugs/1")
    ticket = browser.get("/~alice/bugs/1")
    assert "#1 It crashes" in text(ticket)
    assert "<strong>start</strong>" in ticket.get_data(as_text=True)

    commented = browser.submit(
        "/~alice/bugs/1",
        {"text": "Seen it too", "action": "comment"},
        action="/~alice/bugs/1/comment",
    )
    assert commented.status_code == 302
    closed = browser.submit(
        "/~alice/bugs/1",
        {"text": "", "action": "close", "resolution": "fixed"},
        action="/~alice/bugs/1/comment",
    )
    assert closed.status_code == 302
    shown = text(browser.get("/~alice/bugs/1"))
    assert "Seen it too" in shown
    assert "closed as fixed" in shown
    listed = text(browser.get("/~alice/bugs?search=status:closed"))
    assert "It crashes" in listed
    open_list = text(browser.get("/~alice/bugs"))
    assert "It crashes" not in open_list
    # The tracker page: New ticket first, tabs with counts, notifications last.
    assert open_list.index(">New ticket</a>") < open_list.index("Search tickets")
    assert ">Open (0)</a>" in open_list and ">Closed (1)</a>" in open_list
    assert ">All (1)</a>" in open_list
    assert open_list.index("Submit a ticket") < open_list.index("Notifications")
    # The resolution is asked where a ticket is closed, not under a comment.
    reopened = browser.submit(
        "/~alice/bugs/1", {"text": "", "action": "reopen"}, action="/~alice/bugs/1/comment"
    )
    assert reopened.status_code == 302
    ticket_page = text(browser.get("/~alice/bugs/1"))
    closing = ticket_page.split('<fieldset class="close-ticket">', 1)[1].split("</fieldset>")[0]
    assert 'id="resolution"' in closing and "Comment and close" in closing


def test_a_form_without_its_csrf_token_is_refused(site: Any) -> None:
    alice = site.user("alice")
    browser = site.browser(alice)
    response = browser.post("/trackers/create", data={"name": "bugs"})
    assert response.status_code == 400
    assert browser.get("/~alice/bugs").status_code == 404


def fill(site: Any, owner: Any, tracker: str, tickets: int, comments: int = 0) -> None:
    """``tickets`` tickets with two labels each, an assignee and ``comments``
    comments on ticket 1, inserted in bulk."""
    import sqlalchemy as sa

    found = site.tracker(owner, tracker)
    api = site.api(owner)
    for name in ("bug", "ui"):
        api.post(f"/trackers/{owner.username}/{tracker}/labels", {"name": name, "color": "#d73a4a"})
    with site.session() as session:
        params = {"t": found.id, "u": owner.id, "n": tickets}
        session.execute(
            sa.text(
                "INSERT INTO ticket (tracker_id, number, submitter_id, title, description, status,"
                " created, updated) SELECT :t, n, :u, 'Ticket ' || n, '', 'open', now(), now() "
                "FROM generate_series(1, :n) AS n"
            ),
            params,
        )
        session.execute(
            sa.text(
                "INSERT INTO ticket_label (ticket_id, label_id) SELECT ticket.id, label.id "
                "FROM ticket JOIN label ON label.tracker_id = ticket.tracker_id "
                "WHERE ticket.tracker_id = :t"
            ),
            params,
        )
        session.execute(
            sa.text(
                "INSERT INTO ticket_assignee (ticket_id, user_id) SELECT id, :u FROM ticket "
                "WHERE tracker_id = :t"
            ),
            params,
        )
        session.execute(
            sa.text(
                "INSERT INTO comment (ticket_id, author_id, text, created, updated) "
                "SELECT ticket.id, :u, 'Comment ' || n, now(), now() FROM ticket, "
                "generate_series(1, :c) AS n WHERE ticket.tracker_id = :t AND ticket.number = 1"
            ),
            {**params, "c": comments},
        )


def listcache_clear(site: Any) -> None:
    site.app.extensions.pop("todo.list_cache", None)


def statements(site: Any, browser: Any, path: str) -> int:
    with site.db.count_statements() as counted:
        response = browser.get(path)
    assert response.status_code == 200, path
    return counted[0]


def test_query_counts_do_not_grow_with_the_number_of_items(site: Any) -> None:
    alice = site.user("alice")
    fill(site, alice, "small", 5, comments=5)
    fill(site, alice, "large", 100, comments=100)
    for viewer in (alice, None):
        browser = site.browser(viewer)
        browser.get("/")  # the first request of a client may mirror the user
        listcache_clear(site)
        small = statements(site, browser, "/~alice/small")
        large = statements(site, browser, "/~alice/large")
        assert small == large, (viewer, small, large)
        # 9: with the labels' colours, which a second request (labels.css) read before.
        assert large <= 9, large
        searched = statements(site, browser, "/~alice/large?search=status:open+label:bug")
        assert searched == small - 1  # the labels' colours are kept from the view before
        # Seen again, unchanged: the list comes from the cache, no ticket queries.
        again = statements(site, browser, "/~alice/large")
        assert again == statements(site, browser, "/~alice/small") < small
        assert again <= 3, again
        assert statements(site, browser, "/~alice/small/1") == statements(
            site, browser, "/~alice/large/1"
        )
        assert statements(site, browser, "/~alice/small/labels") == statements(
            site, browser, "/~alice/large/labels"
        )
        assert statements(site, browser, "/~alice") <= 4
    page = text(site.browser(alice).get("/~alice/large"))
    assert "100 tickets" in page
    assert "Ticket 100" in page and "Ticket 76" in page and "Ticket 75" not in page
    assert "Comment 100" in text(site.browser(alice).get("/~alice/large/1"))


def test_pages_work_without_javascript_and_label_their_controls(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    site.ticket(alice, "bugs", "Crash")
    browser = site.browser(alice)
    for path in (
        "/",
        "/trackers/create",
        "/~alice",
        "/~alice/bugs",
        "/~alice/bugs/1",
        "/~alice/bugs/1/edit",
        "/~alice/bugs/labels",
        "/~alice/bugs/settings",
        "/~alice/bugs/settings/access",
        "/~alice/bugs/settings/webhooks",
        "/~alice/bugs/settings/delete",
    ):
        response = browser.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert "<script" not in body, path
        assert " onclick=" not in body and 'style="' not in body, path
        # Every input, select and textarea has a label (or is hidden).
        fields = re.findall(r"<(?:input|select|textarea)\b([^>]*)>", body)
        for attributes in fields:
            if 'type="hidden"' in attributes or 'type="submit"' in attributes:
                continue
            found = re.search(r'\bid="([^"]+)"', attributes)
            assert found, (path, attributes)
            assert f'for="{found.group(1)}"' in body, (path, attributes)
        assert 'tabindex="-1"' not in body, path


def test_editing_assigning_and_tracker_settings_through_the_pages(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.tracker(alice, "bugs")
    site.ticket(alice, "bugs", "Crash", actor=bob)
    alice_browser, bob_browser = site.browser(alice), site.browser(bob)

    edited = bob_browser.submit(
        "/~alice/bugs/1/edit", {"title": "Crash on start", "description": "Details"}
    )
    assert edited.status_code == 302  # the submitter may edit their ticket
    assert "Crash on start" in text(bob_browser.get("/~alice/bugs/1"))
    assign = alice_browser.submit(
        "/~alice/bugs/1", {"username": "~bob"}, action="/~alice/bugs/1/assignees"
    )
    assert assign.status_code == 302
    assert "assigned ~bob" in text(alice_browser.get("/~alice/bugs/1"))
    unknown = alice_browser.submit(
        "/~alice/bugs/1", {"username": "nobody"}, action="/~alice/bugs/1/assignees"
    )
    assert unknown.status_code == 400
    assert "No user ~nobody" in text(unknown)

    saved = alice_browser.submit(
        "/~alice/bugs/settings",
        {
            "description": "d",
            "visibility": "private",
            "anonymous_access": [],
            "user_access": ["browse"],
        },
    )
    assert saved.status_code == 302
    assert bob_browser.get("/~alice/bugs").status_code == 404
    granted = alice_browser.submit(
        "/~alice/bugs/settings/access", {"username": "bob", "access": ["browse", "comment"]}
    )
    assert granted.status_code == 302
    assert bob_browser.get("/~alice/bugs").status_code == 200
    assert "browse, comment" in text(alice_browser.get("/~alice/bugs/settings/access"))
    refused = alice_browser.submit("/~alice/bugs/settings/delete", {"typed": "nope"})
    assert refused.status_code == 400
    assert "Type bugs exactly to confirm; nothing was changed." in text(refused)
    assert alice_browser.get("/~alice/bugs").status_code == 200
    deleted = alice_browser.submit("/~alice/bugs/settings/delete", {"typed": "bugs"})
    assert deleted.status_code == 302
    assert alice_browser.get("/~alice/bugs").status_code == 404


def test_nul_characters_are_refused_not_a_server_error(site: Any) -> None:
    """PostgreSQL cannot store NUL: such input is a 400, on pages and API."""
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    browser = site.browser(alice)
    for path in ("/~al%00ice", "/~alice/bu%00gs", "/~alice/bugs?search=label:%00"):
        assert browser.get(path).status_code == 400, path
    token = browser.csrf_token("/~alice/bugs")
    assert (
        browser.post(
            "/~alice/bugs/submit", data={"csrf_token": token, "title": "a\x00b"}
        ).status_code
        == 400
    )
    api = site.api(alice)
    answer = api.post("/trackers/alice/bugs/tickets", {"title": "a\x00b"})
    assert answer.status_code == 400
    assert answer.json == {
        "errors": [{"field": "title", "reason": "NUL characters are not accepted"}]
    }
    assert api.get("/trackers/alice/bugs/tickets?search=%00").status_code == 400


def test_the_cached_ticket_list_follows_every_change(site: Any) -> None:
    """The list (and, for visitors without cookies, the whole page) is
    cached per tracker revision; each kind of change that shows on it must
    show at once (tracker, ticket, comment count, label, status, a
    submitter's new name)."""
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    site.ticket(alice, "bugs", "First crash")
    api = site.api(alice)
    browser = site.browser(None)

    def listed(path: str = "/~alice/bugs") -> str:
        return text(browser.get(path))

    assert "First crash" in listed()
    # The page is kept whole for visitors without cookies: it gives them none.
    assert "Set-Cookie" not in browser.get("/~alice/bugs").headers
    api.patch("/trackers/alice/bugs", {"description": "Crashes *only*."})
    assert "Crashes <em>only</em>." in listed()
    site.ticket(alice, "bugs", "Second crash")
    assert "Second crash" in listed() and "2 tickets" in listed()

    api.post("/trackers/alice/bugs/tickets/1/comments", {"text": "me too"})
    assert re.search(
        r"First crash.*?<td>1</td>",
        html.unescape(browser.get("/~alice/bugs").get_data(as_text=True)),
        re.S,
    )

    label = api.post("/trackers/alice/bugs/labels", {"name": "regression", "color": "#d73a4a"})
    api.patch("/trackers/alice/bugs/tickets/2", {"labels": ["regression"]})
    assert "regression" in listed()
    api.patch(f"/trackers/alice/bugs/labels/{label.json['id']}", {"name": "crasher"})
    assert "crasher" in listed() and "regression" not in listed()

    api.patch("/trackers/alice/bugs/tickets/2", {"status": "closed", "resolution": "fixed"})
    assert "Second crash" not in listed()
    assert "Second crash" in listed("/~alice/bugs?search=status:closed")

    with site.session() as session:  # meta renamed alice; her mirror follows
        session.get(type(alice), alice.id).username = "alicia"
    assert "~alicia" in listed("/~alicia/bugs")


def test_a_kept_tracker_page_follows_changes_written_elsewhere(site: Any) -> None:
    """A visitor without cookies gets the kept page with no query at all;
    a change written by another worker (here, another connection) drops it
    when PostgreSQL's notification arrives, and a tracker made private is
    404 from then on. The kept page keeps what its Content-Security-Policy
    allows (its labels' colours, inline)."""
    import sqlalchemy as sa
    from support import wait_until

    alice = site.user("alice")
    site.tracker(alice, "bugs")
    site.ticket(alice, "bugs", "First crash")
    site.api(alice).post("/trackers/alice/bugs/labels", {"name": "crash", "color": "#d73a4a"})
    browser = site.browser(None)
    assert site.db.row_feed().wait_live()
    first = browser.get("/~alice/bugs")
    assert "First crash" in text(first)

    def kept_without_a_query() -> Any:
        # PostgreSQL's notices of the writes above (alice's row among them:
        # users are watched) may arrive after the first view and drop it once.
        with site.db.count_statements() as statements:
            again = browser.get("/~alice/bugs")
        return again if statements[0] == 0 else None

    kept = wait_until(kept_without_a_query, what="a view answered from the kept page")
    assert "First crash" in text(kept)
    assert "<style>.label-" in text(kept)
    policy = kept.headers["Content-Security-Policy"]
    assert "'sha256-" in policy and policy == first.headers["Content-Security-Policy"]

    elsewhere = sa.create_engine(site.db.url)
    try:
        with elsewhere.begin() as connection:
            connection.execute(sa.text("UPDATE ticket SET title = 'Renamed crash'"))
            connection.execute(sa.text("UPDATE tracker SET revision = revision + 1"))
        wait_until(
            lambda: "Renamed crash" in text(browser.get("/~alice/bugs")),
            what="the page to follow the renamed ticket",
        )
        with elsewhere.begin() as connection:
            connection.execute(sa.text("UPDATE tracker SET visibility = 'private'"))
        wait_until(
            lambda: browser.get("/~alice/bugs").status_code == 404,
            what="the tracker made private to be 404",
        )
    finally:
        elsewhere.dispose()


def test_the_webhook_settings_show_the_key_that_checks_signatures(site: Any) -> None:
    """A receiver needs the site's public key to check a delivery
    (docs/webhooks.md); the page where webhooks are set up shows it."""
    from srht_core.keys import webhook_public_key

    alice = site.user("alice")
    site.tracker(alice, "bugs")
    page = text(site.browser(alice).get("/~alice/bugs/settings/webhooks"))
    key = webhook_public_key(site.state.config["webhooks"]["private-key"])
    assert "with this public key, then refuse a timestamp more than 5 minutes off" in page
    assert key in page
