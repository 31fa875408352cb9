"""hub's pages as a person uses them: the forms are submitted as the pages
show them, CSRF token included."""

from __future__ import annotations

import pytest
from support import wait_until

from srht_core.testing import page_kind_problems

pytestmark = [pytest.mark.postgres]


def test_the_front_door_says_what_the_site_is_and_how_to_join(browser):
    page = browser(None).get("/")
    assert page.status_code == 200
    assert "Where <em>Example</em> people share their work." in page.text
    assert "/register?return_to=" in page.text and "/login?return_to=" in page.text
    assert "No public projects yet." in page.text


def test_a_project_made_with_the_form_is_shown_listed_and_found(make_user, browser):
    alice = browser(make_user("alice"))
    made = alice.submit(
        "/projects/create",
        {
            "name": "hello",
            "description": "Says hello",
            "readme": "# Hello\n\n*Friendly*",
            "tags": "Python, greeting",
            "visibility": "public",
        },
        follow_redirects=True,
    )
    assert made.status_code == 200 and "Project ~alice/hello created" in made.text
    page = browser(None).get("/~alice/hello")
    assert page.status_code == 200
    assert "<em>Friendly</em>" in page.text and "Says hello" in page.text
    assert ">python</a>" in page.text and ">greeting</a>" in page.text
    assert "No resources attached." in page.text
    for path in ("/", "/explore", "/explore?search=hello", "/explore?search=tag:python", "/~alice"):
        assert ">~alice/hello</a>" in browser(None).get(path).text, path
    assert "~alice/hello" not in browser(None).get("/explore?search=tag:rust").text
    assert "~alice/hello" in alice.get("/").text  # the dashboard


def test_the_form_names_every_field_at_fault_and_stores_nothing(make_user, browser):
    alice = browser(make_user("alice"))
    page = alice.submit(
        "/projects/create",
        {"name": "no spaces!", "readme": "x" * 70_000, "visibility": "secret"},
    )
    assert page.status_code == 400
    assert '<a href="#readme">README</a>' in page.text
    assert '<a href="#visibility">Visibility</a>' in page.text
    page = alice.submit("/projects/create", {"name": "no spaces!", "visibility": "public"})
    assert page.status_code == 400 and "is not a project name" in page.text
    page = alice.submit(
        "/projects/create", {"name": "ok", "tags": "Not/A/Tag", "visibility": "public"}
    )
    assert page.status_code == 400 and "&#39;not/a/tag&#39; is not a tag" in page.text
    assert "You have no projects yet." in alice.get("/").text
    alice.submit("/projects/create", {"name": "ok", "visibility": "public"})
    taken = alice.submit("/projects/create", {"name": "ok", "visibility": "public"})
    assert taken.status_code == 400 and "You have a project named ok already." in taken.text


def test_a_private_project_is_its_owners_alone(make_user, browser):
    alice, bob = make_user("alice"), make_user("bob")
    browser(alice).submit("/projects/create", {"name": "secret", "visibility": "private"})
    assert browser(alice).get("/~alice/secret").status_code == 200
    for stranger in (browser(bob), browser(None)):
        assert stranger.get("/~alice/secret").status_code == 404
        for path in ("/explore", "/~alice", "/"):
            assert "secret" not in stranger.get(path).text
    assert browser(bob).get("/~alice/secret/settings").status_code == 404


def test_only_the_owner_changes_and_deletes_after_confirming(make_user, browser):
    alice, bob = make_user("alice"), make_user("bob")
    owner = browser(alice)
    owner.submit("/projects/create", {"name": "hello", "visibility": "public"})
    assert browser(bob).get("/~alice/hello/settings").status_code == 403
    assert browser(bob).get("/~alice/hello/delete").status_code == 403
    saved = owner.submit(
        "/~alice/hello/settings",
        {"name": "hello", "description": "Now described", "visibility": "unlisted"},
        follow_redirects=True,
    )
    assert "Project saved." in saved.text and "Now described" in saved.text
    assert "~alice/hello" not in browser(None).get("/explore").text  # unlisted
    assert browser(None).get("/~alice/hello").status_code == 200
    question = owner.get("/~alice/hello/delete")
    assert question.status_code == 200 and "Delete ~alice/hello?" in question.text
    done = owner.submit("/~alice/hello/delete", {"typed": "hello"}, follow_redirects=True)
    assert "Deleted ~alice/hello." in done.text
    assert owner.get("/~alice/hello").status_code == 404


def test_a_project_whose_service_is_gone_from_the_config_says_so(make_user, browser, attach_source):
    alice = make_user("alice")
    browser(alice).submit("/projects/create", {"name": "hello", "visibility": "public"})
    attach_source(1, "~alice/hello")
    page = browser(None).get("/~alice/hello")
    assert page.status_code == 200
    assert "git did not answer: it is not in this site&#39;s config" in page.text
    assert ">~alice/hello</a>" in page.text  # as hub last knew it


def test_the_pages_are_drawn_as_the_kit_draws_them(make_user, browser):
    alice = browser(make_user("alice"))
    alice.submit("/projects/create", {"name": "hello", "visibility": "public"})
    assert page_kind_problems(alice.get("/~alice/hello").text, "header") == []
    bad = alice.submit("/projects/create", {"name": "", "visibility": "public"})
    assert page_kind_problems(bad.text, "form-errors") == []
    assert page_kind_problems(alice.get("/~alice/nothing").text, "404") == []


def test_pages_are_kept_for_visitors_without_cookies_until_they_change(
    app, make_user, browser, attach_source, deliver
):
    from srht_core import state_of

    alice = make_user("alice")
    browser(alice).submit("/projects/create", {"name": "hello", "visibility": "public"})
    source = attach_source(1, "~alice/hello")
    db = state_of(app).db
    for path in ("/", "/~alice/hello"):
        first = app.test_client().get(path)
        with db.count_statements() as kept:
            again = app.test_client().get(path)
        assert again.text == first.text
        assert kept[0] <= 4, (path, kept[0])
    deliver(source, "repo:push", {"pusher": "~alice", "refs": [{"name": "refs/heads/main"}]})
    assert "pushed main" in app.test_client().get("/~alice/hello").text


def test_the_kept_front_door_follows_new_and_hidden_projects(app, make_user, browser):
    from srht_core import state_of

    db = state_of(app).db
    assert db.row_feed().wait_live(), "the row feed never listened"
    alice, visitor = browser(make_user("alice")), browser(None)

    def kept() -> bool:
        # Until PostgreSQL's notice of alice's new row has come, a kept
        # page may still be dropped for it.
        with db.count_statements() as statements:
            page = visitor.get("/").text
        return "No public projects yet." in page and statements[0] == 0

    wait_until(kept, what="the front door kept, answered with no query")
    alice.submit("/projects/create", {"name": "hello", "visibility": "public"})
    assert ">~alice/hello</a>" in visitor.get("/").text
    alice.submit("/~alice/hello/settings", {"name": "hello", "visibility": "private"})
    assert "~alice/hello" not in visitor.get("/").text
