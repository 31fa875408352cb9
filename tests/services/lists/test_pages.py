"""What the pages do besides showing the archive: subscribing on the web,
the owner setting a patchset's status, deleting a list only once its name
is typed, and a ticket reference in a message linking to todo."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import srht_plugins.lists as lists_plugin
import srht_plugins.meta as meta_plugin
import srht_plugins.todo as todo_plugin
from srht_core import state_of

from .conftest import DOMAIN, ListsSite, message

pytestmark = [pytest.mark.postgres]

PATCH = "frob: be gentle\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-hard\n+soft\n"


def subscribers(site: Any) -> list[str]:
    from srht_plugins.lists.models import Subscription

    with site.session() as session:
        return list(session.scalars(sa.select(Subscription.address).order_by(Subscription.id)))


def test_subscribing_and_unsubscribing_on_the_web(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.mailing_list(alice, "devel")
    browser = site.browser(bob)
    page = "/~alice/devel"
    done = browser.submit(page, action=page + "/subscribe", follow_redirects=True)
    assert "bob@example.org gets every post of ~alice/devel." in done.get_data(as_text=True)
    assert subscribers(site) == ["bob@example.org"]
    done = browser.submit(page, action=page + "/unsubscribe", follow_redirects=True)
    assert "You unsubscribed from ~alice/devel." in done.get_data(as_text=True)
    assert subscribers(site) == []
    # Without a signed-in user there is no button (the page says how to
    # subscribe by mail), and a post without the page's form is refused.
    anonymous = site.browser()
    shown = anonymous.get(page).get_data(as_text=True)
    assert f'action="{page}/subscribe"' not in shown
    assert f"Subscribe by writing to <code>~alice/devel+subscribe@{DOMAIN}</code>" in shown
    assert anonymous.post(page + "/subscribe").status_code == 400
    assert subscribers(site) == []


def test_the_owner_sets_a_patchset_status_on_the_web(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.mailing_list(alice, "devel")
    to = f"~alice/devel@{DOMAIN}"
    assert site.deliver(message("[PATCH] frob: be gentle", PATCH, to=to), to).startswith("250")
    [patchset] = site.api(alice).get("/lists/alice/devel/patchsets").json["results"]
    page = f"/~alice/devel/patches/{patchset['id']}"

    # Only the owner gets the form; another's post changes nothing.
    assert "Set status" not in site.browser(bob).get(page).get_data(as_text=True)
    owner = site.browser(alice)
    token = owner.csrf_token(page)
    refused = site.browser(bob).post(page, data={"status": "applied", "csrf_token": token})
    assert refused.status_code in (400, 403)
    bad = owner.submit(page, {"status": "merged-somehow"})
    assert bad.status_code == 400
    assert "Status</a>: Choose one of the options." in bad.get_data(as_text=True)

    done = owner.submit(page, {"status": "approved"}, follow_redirects=True)
    assert "Patchset marked approved." in done.get_data(as_text=True)
    assert 'class="patch-status status-approved"' in done.get_data(as_text=True)
    [patchset] = site.api(alice).get("/lists/alice/devel/patchsets").json["results"]
    assert patchset["status"] == "approved"


def test_deleting_a_list_asks_for_its_name_first(site: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    to = f"~alice/devel@{DOMAIN}"
    assert site.deliver(message("Hello", to=to), to).startswith("250")
    owner = site.browser(alice)
    page = "/~alice/devel/settings/delete"
    asked = owner.get(page).get_data(as_text=True)
    assert "Delete ~alice/devel?" in asked and "Type <strong>devel</strong>" in asked

    wrong = owner.submit(page, {"typed": "dev"})
    assert "Type devel exactly to confirm; nothing was changed." in wrong.get_data(as_text=True)
    assert owner.get("/~alice/devel").status_code == 200

    done = owner.submit(page, {"typed": "devel"}, follow_redirects=True)
    assert "List ~alice/devel deleted." in done.get_data(as_text=True)
    assert owner.get("/~alice/devel").status_code == 404
    assert site.emails() == []
    assert site.deliver(message("Again", to=to), to).startswith("550 5.1.1")


@pytest.fixture
def site_with_todo(
    register_plugin: Any, lists_config: Any, make_app: Any, tmp_path: Any
) -> ListsSite:
    """The lists app on a site that also runs todo (its origin in the config)."""
    for module, name in ((meta_plugin, "meta"), (lists_plugin, "lists"), (todo_plugin, "todo")):
        assert register_plugin(module, name, distribution="srht", version="0.1.0.dev0").ok
    app = make_app("lists", lists_config(todo={"origin": "https://todo.example.org"}))
    state_of(app).revoked = lambda kind, ident: False
    return ListsSite(app, tmp_path / "config.ini", tmp_path)


def test_a_ticket_reference_links_to_todo(site_with_todo: ListsSite) -> None:
    site = site_with_todo
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    to = f"~alice/devel@{DOMAIN}"
    body = "This fixes ~alice/widget#12, not ~bob/other#3x or widget#4.\n"
    assert site.deliver(message("A fix", body, to=to), to).startswith("250")
    [thread] = site.api(alice).get("/lists/alice/devel/threads").json["results"]
    shown = site.browser().get(f"/~alice/devel/threads/{thread['id']}").get_data(as_text=True)
    assert (
        '<a href="https://todo.example.org/~alice/widget/12" rel="nofollow noopener">'
        "~alice/widget#12</a>"
    ) in shown
    assert "todo.example.org/~bob" not in shown
    assert "todo.example.org/widget" not in shown
