"""Tickets: search syntax served by indexes, references between tickets,
label colours, and Markdown rendered safely."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Any

import pytest
import sqlalchemy as sa

from srht_plugins.todo.models import SEARCH_INDEX, contrast, text_color
from srht_plugins.todo.references import Reference, find_references
from srht_plugins.todo.search import SearchError, parse


def test_search_syntax_is_read_into_filters_and_words() -> None:
    search = parse(
        'status:closed label:bug label:"needs info" assigned:~bob '
        "submitter:carol resolution:fixed crash on-start"
    )
    assert search.status == "closed"
    assert search.labels == ["bug", "needs info"]
    assert search.assigned == "bob"
    assert search.submitter == "carol"
    assert search.resolution == "fixed"
    assert search.words == ["crash", "on", "start"]
    assert parse("status:any").status is None
    assert parse("http://example.org/x").words == ["http", "example", "org", "x"]
    for bad in ("status:maybe", "resolution:whenever"):
        with pytest.raises(SearchError):
            parse(bad)


def test_label_text_is_black_or_white_whichever_contrasts_more() -> None:
    for background in (
        "#ffffff",
        "#ffee00",
        "#d73a4a",
        "#0b5cad",
        "#000000",
        "#7f7f7f",
        "#00ff00",
        "#1f7a3a",
    ):
        chosen = text_color(background)
        other = "#ffffff" if chosen == "#000000" else "#000000"
        assert contrast(background, chosen) >= contrast(background, other)
        assert contrast(background, chosen) >= 4.5 or background == "#7f7f7f"
    assert text_color("#ffee00") == "#000000"
    assert text_color("#0b5cad") == "#ffffff"


def test_references_are_found_outside_code() -> None:
    text = (
        "See #12 and ~bob/web#3, not `#99` nor\n```\n#98\n```\n"
        "nor page.html#7 nor &#39; nor [x](#5); also (#4)."
    )
    assert find_references(text) == [
        Reference(None, None, 12),
        Reference("bob", "web", 3),
        Reference(None, None, 4),
    ]


@pytest.mark.postgres
def test_search_through_the_page_and_the_api(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.tracker(alice, "bugs")
    api = site.api(alice)
    api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "#d73a4a"})
    api.post("/trackers/alice/bugs/labels", {"name": "needs info", "color": "#ffee00"})
    site.ticket(alice, "bugs", "Crash on start", "The window flickers")
    site.ticket(alice, "bugs", "Typo in footer", "", actor=bob)
    site.ticket(alice, "bugs", "Crashes when saving", "disk full")
    api.patch(
        "/trackers/alice/bugs/tickets/1", {"labels": ["bug", "needs info"], "assignees": ["bob"]}
    )
    api.patch("/trackers/alice/bugs/tickets/3", {"status": "closed", "labels": ["bug"]})

    def numbers(query: str) -> list[int]:
        answer = api.get("/trackers/alice/bugs/tickets", query_string={"search": query})
        assert answer.status_code == 200, answer.json
        return [t["number"] for t in answer.json["results"]]

    assert numbers("") == [3, 2, 1]
    assert numbers("status:open") == [2, 1]
    assert numbers("status:closed") == [3]
    assert numbers("label:bug") == [3, 1]
    assert numbers('label:bug label:"needs info"') == [1]
    assert numbers("status:open label:bug crash") == [1]
    assert numbers("crash") == [3, 1]
    assert numbers("flick") == [1]
    assert numbers("disk full") == [3]
    assert numbers("assigned:bob") == [1]
    assert numbers("submitter:~bob") == [2]
    assert numbers("resolution:fixed") == [3]
    assert numbers("label:nonesuch") == []
    assert numbers("'); drop table ticket; --") == []

    page = html.unescape(
        site.browser(alice)
        .get("/~alice/bugs", query_string={"search": "status:open label:bug"})
        .get_data(as_text=True)
    )
    assert "Crash on start" in page and "Typo in footer" not in page
    assert "1 ticket found<" in page  # a search beyond the status tabs says so
    default = html.unescape(site.browser(alice).get("/~alice/bugs").get_data(as_text=True))
    assert 'value="status:open"' in default and "Crashes when saving" not in default
    wrong = site.browser(alice).get("/~alice/bugs?search=status:maybe")
    assert wrong.status_code == 200
    assert "status:maybe is not open, closed or any" in html.unescape(wrong.get_data(as_text=True))


@pytest.mark.postgres
def test_searches_are_served_by_indexes(site: Any) -> None:
    """The indexes exist, and PostgreSQL's plan for each kind of filter, on
    a tracker of 3,000 tickets with fresh statistics, uses one. Sequential
    scans are disabled for the plan: on tables this small they are cheaper
    than any index, which says nothing about a real tracker."""
    alice = site.user("alice")
    people = [site.user(f"user{n}") for n in range(10)]
    site.tracker(alice, "bugs")
    api = site.api(alice)
    for n in range(20):
        api.post("/trackers/alice/bugs/labels", {"name": f"label{n}", "color": "#d73a4a"})
    with site.session() as session:
        session.execute(
            sa.text(
                "INSERT INTO ticket (tracker_id, number, title, description, status, created, "
                "updated) SELECT 1, n, 'Ticket ' || n, CASE WHEN n = 7 THEN 'a widget' ELSE "
                "'text ' || n END, CASE WHEN n % 100 = 0 THEN 'open' ELSE 'closed' END, now(), "
                "now() FROM generate_series(1, 3000) AS n"
            )
        )
        session.execute(
            sa.text(
                "INSERT INTO ticket_label (ticket_id, label_id) "
                "SELECT id, 1 + number % 20 FROM ticket"
            )
        )
        session.execute(
            sa.text(
                "INSERT INTO ticket_assignee (ticket_id, user_id) "
                "SELECT id, :first + number % 10 FROM ticket"
            ),
            {"first": people[0].id},
        )
    with site.db.engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))
    inspector = sa.inspect(site.db.engine)
    ticket_indexes = {i["name"] for i in inspector.get_indexes("ticket")}
    assert {SEARCH_INDEX, "ix_ticket_tracker_id_status_number"} <= ticket_indexes
    assert "ix_ticket_label_label_id_ticket_id" in {
        i["name"] for i in inspector.get_indexes("ticket_label")
    }
    assert "ix_ticket_assignee_user_id_ticket_id" in {
        i["name"] for i in inspector.get_indexes("ticket_assignee")
    }

    from srht_core import db_session
    from srht_plugins.todo.models import Ticket
    from srht_plugins.todo.search import filtered

    def plan(query: str) -> str:
        """EXPLAIN of the query a page of the list runs."""
        with site.context():
            stmt = (
                filtered(
                    sa.select(Ticket.id).where(Ticket.tracker_id == 1),
                    parse(query),
                    1,
                    "postgresql",
                )
                .order_by(Ticket.number.desc())
                .limit(26)
            )
            compiled = stmt.compile(site.db.engine, compile_kwargs={"literal_binds": True})
            db_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
            explained = "\n".join(db_session.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
            db_session.rollback()
            return explained

    for query, index in [
        ("widget", SEARCH_INDEX),
        ("status:open", "ix_ticket_tracker_id_status_number"),
        ("label:label3", "ix_ticket_label_label_id_ticket_id"),
        ("assigned:user3", "ix_ticket_assignee_user_id_ticket_id"),
    ]:
        explained = plan(query)
        assert index in explained, f"{query}:\n{explained}"


@pytest.mark.postgres
def test_references_become_links_and_are_listed_on_the_target(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.tracker(alice, "bugs")
    site.tracker(bob, "web")
    site.tracker(bob, "secret", visibility="private")
    site.ticket(alice, "bugs", "Target")
    site.ticket(bob, "web", "Also broken", "Same as ~alice/bugs#1, see `#2`")
    site.ticket(bob, "secret", "Hidden", "Caused by ~alice/bugs#1")
    site.ticket(alice, "bugs", "Duplicate", "Like #1 and ~bob/secret#1")

    shown = site.browser(bob).get("/~bob/web/1").get_data(as_text=True)
    assert re.search(r'<a href="/~alice/bugs/1"[^>]*>~alice/bugs#1</a>', shown)
    assert "<code>#2</code>" in shown
    duplicate = site.browser(alice).get("/~alice/bugs/2").get_data(as_text=True)
    assert re.search(r'<a href="/~alice/bugs/1"[^>]*>#1</a>', duplicate)

    def referrers(viewer: Any) -> str:
        page = site.browser(viewer).get("/~alice/bugs/1").get_data(as_text=True)
        return html.unescape(page.split("Referenced by", 1)[1]) if "Referenced by" in page else ""

    for_alice = referrers(alice)
    assert "~bob/web#1" in for_alice and "~alice/bugs#2" in for_alice
    assert "~bob/secret#1" not in for_alice  # alice may not see bob's private tracker
    assert "~bob/secret#1" in referrers(bob)
    assert "~bob/web#1" in referrers(None)
    # alice could not see ~bob/secret#1, so her mention of it was not recorded.
    assert "Referenced by" not in site.browser(bob).get("/~bob/secret/1").get_data(as_text=True)


@pytest.mark.postgres
def test_markdown_is_rendered_safely(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    site.ticket(
        alice,
        "bugs",
        "<script>alert(1)</script>",
        "<script>alert(2)</script> [x](javascript:alert(3)) <img src=x onerror=y> **bold**",
    )
    page = site.browser(None).get("/~alice/bugs/1").get_data(as_text=True)
    assert "<script>" not in page
    assert 'href="javascript' not in page
    assert "<img" not in page  # shown as text, not as an element
    assert "<strong>bold</strong>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.postgres
def test_labels_through_the_pages(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    browser = site.browser(alice)
    bad = browser.submit("/~alice/bugs/labels", {"name": "bug", "color": "red"})
    assert bad.status_code == 400
    assert "Use a colour like #1f7a3a" in html.unescape(bad.get_data(as_text=True))
    good = browser.submit("/~alice/bugs/labels", {"name": "bug", "color": "#FFEE00"})
    assert good.status_code == 302
    taken = browser.submit("/~alice/bugs/labels", {"name": "bug", "color": "#000000"})
    assert taken.status_code == 400
    site.ticket(alice, "bugs", "Crash")
    labelled = browser.submit("/~alice/bugs/1", {"label": "1"}, action="/~alice/bugs/1/labels")
    assert labelled.status_code == 302
    answer = browser.get("/~alice/bugs/1")
    page = answer.get_data(as_text=True)
    assert 'class="label label-1"' in page
    # The colours come with the page (no second stylesheet to fetch), in a
    # <style> the page's Content-Security-Policy allows by its hash alone.
    css = ".label-1 { background-color: #ffee00; color: #000000; }"
    assert f"<style>{css}</style>" in page
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    policy = answer.headers["Content-Security-Policy"]
    assert f"style-src 'self' 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy
    assert 'style="' not in page  # no inline style attributes either
