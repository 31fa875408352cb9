"""``GET /api/user/patchsets-to-review``: the patchsets still proposed on
the lists the token's user owns, what hub's dashboard shows them."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = [pytest.mark.postgres]

PATCH = "frob: be gentle\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-hard\n+soft\n"


def test_the_patchsets_awaiting_review_on_your_own_lists(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.mailing_list(alice, "devel")
    site.mailing_list(bob, "other")
    for to, subject in (
        (f"~alice/devel@{DOMAIN}", "[PATCH] frob: be gentle"),
        (f"~alice/devel@{DOMAIN}", "[PATCH] frob: be done"),
        (f"~bob/other@{DOMAIN}", "[PATCH] frob: be bob's"),
    ):
        assert site.deliver(message(subject, PATCH, to=to), to).startswith("250")
    alice_api = site.api(alice)
    done = [
        p["id"]
        for p in alice_api.get("/lists/alice/devel/patchsets").json["results"]
        if p["subject"] == "frob: be done"
    ]
    changed = alice_api.patch(f"/lists/alice/devel/patchsets/{done[0]}", {"status": "applied"})
    assert changed.status_code == 200, changed.json

    mine = site.api(alice, frozenset({"lists/emails:RO"})).get("/user/patchsets-to-review")
    assert mine.status_code == 200, mine.json
    [waiting] = mine.json["results"]
    assert (waiting["subject"], waiting["list"]) == ("frob: be gentle", "~alice/devel")
    assert waiting["url"].endswith(f"/~alice/devel/patches/{waiting['id']}")
    # bob, who may read alice's public list, reviews nothing of hers.
    theirs = site.api(bob).get("/user/patchsets-to-review").json["results"]
    assert [(p["subject"], p["list"]) for p in theirs] == [("frob: be bob's", "~bob/other")]
    assert site.api().get("/user/patchsets-to-review").status_code == 401
    lists_only = site.api(alice, frozenset({"lists/lists:RO"}))
    assert lists_only.get("/user/patchsets-to-review").status_code == 403
