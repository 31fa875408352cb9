"""What tools (builds) say of a patchset: ``PUT .../patchsets/ID/tools/NAME``
by a token acting for the list's owner (scope ``lists/tools:RW``), shown on
the patchset's page as ``builds: success``; and a patchset's patches as an
mbox through the API (what builds applies with ``git am``)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = [pytest.mark.postgres]

TO = f"~alice/devel@{DOMAIN}"
PATCH = "Make it b.\n---\ndiff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-a\n+b\n"
TOOLS = frozenset({"lists/tools:RW"})


def _patchset(site: Any) -> int:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    assert site.deliver(message("[PATCH] Make it b", PATCH, to=TO), TO).startswith("250")
    [found] = site.api(alice).get("/lists/alice/devel/patchsets").json["results"]
    return int(found["id"])


def test_the_list_owner_sets_a_tool_status_shown_on_the_patchset_page(site: Any) -> None:
    patchset = _patchset(site)
    owner = site.api(site_user(site, "alice"), TOOLS)
    path = f"/lists/alice/devel/patchsets/{patchset}/tools/builds"
    url = "http://builds.example.org/groups/7"
    answer = owner.put(path, {"status": "pending", "details": "2 jobs, 0 ended", "url": url})
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "pending"
    # The tool's last word replaces the one before.
    answer = owner.put(path, {"status": "failed", "details": "<b>test</b> failed", "url": url})
    assert answer.status_code == 200, answer.json
    listed = site.api().get(f"/lists/alice/devel/patchsets/{patchset}/tools").json["results"]
    assert [(t["name"], t["status"], t["url"]) for t in listed] == [("builds", "failed", url)]

    page = site.browser().get(f"/~alice/devel/patches/{patchset}").get_data(as_text=True)
    assert f'<li class="tool tool-failed"><a href="{url}">builds: failed</a>' in page
    assert "&lt;b&gt;test&lt;/b&gt; failed" in page and "<b>test</b>" not in page


def site_user(site: Any, username: str) -> Any:
    import sqlalchemy as sa

    from srht_plugins.lists.models import User

    with site.session() as session:
        found = session.scalar(sa.select(User).where(User.username == username))
        session.expunge(found)
        return found


def test_only_a_token_of_the_list_owner_with_the_scope_sets_a_tool_status(site: Any) -> None:
    patchset = _patchset(site)
    bob = site.user("bob")
    path = f"/lists/alice/devel/patchsets/{patchset}/tools/builds"
    body = {"status": "success"}
    other = site.api(bob, TOOLS).put(path, body)
    assert other.status_code == 403, other.json
    assert other.json["errors"][0]["reason"] == (
        "Only ~alice may report what tools made of its patchsets."
    )
    alice = site_user(site, "alice")
    unscoped = site.api(alice, frozenset({"lists/emails:RW"})).put(path, body)
    assert unscoped.status_code == 403, unscoped.json
    assert "lists/tools:RW" in unscoped.json["errors"][0]["reason"]
    assert site.api().put(path, body).status_code == 401
    # Bad input: every field named.
    bad = site.api(alice, TOOLS).put(
        f"/lists/alice/devel/patchsets/{patchset}/tools/Builds!",
        {"status": "great", "url": "javascript:alert(1)"},
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json["errors"]} >= {"status", "url"}
    wrong_name = site.api(alice, TOOLS).put(
        f"/lists/alice/devel/patchsets/{patchset}/tools/Builds!", body
    )
    assert wrong_name.status_code in (400, 404)
    # Nothing was recorded by the refusals.
    listed = site.api().get(f"/lists/alice/devel/patchsets/{patchset}/tools").json["results"]
    assert listed == []


def test_a_patchsets_patches_as_an_mbox_through_the_api(site: Any) -> None:
    patchset = _patchset(site)
    answer = site.api().get(f"/lists/alice/devel/patchsets/{patchset}/mbox")
    assert answer.status_code == 200
    assert answer.mimetype == "application/mbox"
    text = answer.get_data(as_text=True)
    assert text.startswith("From mboxrd@z ")
    assert "Subject: [PATCH] Make it b" in text and "+b\n" in text
    # A private list's patches are its readers' only.
    site.mailing_list(site_user(site, "alice"), "secret", visibility="private")
    to = f"~alice/secret@{DOMAIN}"
    assert site.deliver(
        message("[PATCH] Hidden", PATCH, to=to, sender="Alice <alice@example.org>"),
        to,
        sender="alice@example.org",
    ).startswith("250")
    hidden = site.api(site_user(site, "alice")).get("/lists/alice/secret/patchsets").json
    [found] = hidden["results"]
    path = f"/lists/alice/secret/patchsets/{found['id']}/mbox"
    assert site.api().get(path).status_code == 404
    assert site.api(site.user("bob")).get(path).status_code == 404
    assert site.api(site_user(site, "alice")).get(path).status_code == 200
