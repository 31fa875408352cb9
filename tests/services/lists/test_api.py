"""The REST API: lists, members, subscriptions, threads, messages and
patchsets, paged the one way every list is, and the webhooks each change
records (list:create, list:update, list:delete, email:received,
patchset:received, patchset:update)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = pytest.mark.postgres

HOOK = "https://hooks.example.org/lists"


def patch_mail(number: int, total: int, **kwargs: Any) -> Any:
    body = (
        f"change {number}\n---\n"
        f"diff --git a/f{number} b/f{number}\n--- a/f{number}\n+++ b/f{number}\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    return message(
        f"[PATCH v{kwargs.pop('version', 1)} {number}/{total}] change {number}", body, **kwargs
    )


def events(site: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(row.event, json.loads(row.payload)["data"]) for row in site.deliveries()]


def test_lists_from_creation_to_deletion_with_their_webhooks(site: Any) -> None:
    alice = site.user("alice")
    api = site.api(alice)
    hook = api.post("/user/webhooks", {"url": HOOK, "events": ["list:create", "list:delete"]})
    assert hook.status_code == 201, hook.json

    made = api.post("/lists", {"name": "devel", "description": "Widget talk."})
    assert made.status_code == 201, made.json
    assert made.json["address"] == f"~alice/devel@{DOMAIN}"
    assert made.json["ref"] == "~alice/devel"
    taken = api.post("/lists", {"name": "devel"})
    assert taken.status_code == 409
    assert taken.json["errors"] == [
        {"field": "name", "reason": "You have a list named devel already."}
    ]
    bad = api.patch("/lists/alice/devel", {"post_policy": "everybody"})
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "post_policy"
    changed = api.patch(
        "/lists/alice/devel",
        {"post_policy": "subscribers", "allowed_senders": ["Bot@Example.org"], "moderated": True},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["allowed_senders"] == ["bot@example.org"]
    assert (changed.json["post_policy"], changed.json["moderated"]) == ("subscribers", True)
    assert [x["name"] for x in api.get("/lists").json["results"]] == ["devel"]

    assert api.delete("/lists/alice/devel").status_code == 204
    assert api.get("/lists/alice/devel").status_code == 404
    # list:update was not asked for; the others were.
    assert [name for name, _data in events(site)] == ["list:create", "list:delete"]
    created = events(site)[0][1]
    assert created["list"]["ref"] == "~alice/devel"


def test_members_and_subscriptions(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    site.mailing_list(alice, "devel", visibility="private")
    owner, other = site.api(alice), site.api(bob)
    assert other.put("/lists/alice/devel/subscription").status_code == 404  # cannot see it
    assert owner.put("/lists/alice/devel/members/bob").status_code == 200
    assert owner.put("/lists/alice/devel/members/alice").status_code == 409
    assert owner.put("/lists/alice/devel/members/nobody").status_code == 404
    members = owner.get("/lists/alice/devel/members").json["results"]
    assert [m["user"]["username"] for m in members] == ["bob"]

    subscribed = other.put("/lists/alice/devel/subscription")
    assert subscribed.status_code == 200 and subscribed.json["address"] == "bob@example.org"
    assert other.put("/lists/alice/devel/subscription").json["id"] == subscribed.json["id"]
    [entry] = owner.get("/lists/alice/devel/subscriptions").json["results"]
    assert entry["address"] == "bob@example.org"
    assert other.get("/lists/alice/devel/subscriptions").status_code == 403
    assert other.delete("/lists/alice/devel/subscription").status_code == 204
    assert other.delete("/lists/alice/devel/subscription").status_code == 404
    assert owner.delete("/lists/alice/devel/members/bob").status_code == 204
    assert other.get("/lists/alice/devel").status_code == 404


def test_messages_page_by_cursor(site: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    to = f"~alice/devel@{DOMAIN}"
    for number in range(30):
        assert site.deliver(message(f"Message {number}", to=to), to).startswith("250")
    api = site.api()
    seen, cursor = [], ""
    for _page in range(5):
        answer = api.get(f"/lists/alice/devel/messages?limit=10&cursor={cursor}").json
        seen += [m["subject"] for m in answer["results"]]
        cursor = answer["next"]
        if cursor is None:
            break
    assert seen == [f"Message {n}" for n in reversed(range(30))]
    assert api.get("/lists/alice/devel/messages?limit=0").status_code == 400
    assert api.get("/lists/alice/devel/messages?cursor=%21%21").status_code == 400
    threads = api.get("/lists/alice/devel/threads?limit=100").json
    assert len(threads["results"]) == 30 and threads["next"] is None


def test_arrivals_and_patchsets_tell_the_lists_webhooks(site: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    api = site.api(alice)
    hook = api.post(
        "/lists/alice/devel/webhooks",
        {"url": HOOK, "events": ["email:received", "patchset:received", "patchset:update"]},
    )
    assert hook.status_code == 201, hook.json
    wrong = api.post("/lists/alice/devel/webhooks", {"url": HOOK, "events": ["list:create"]})
    assert wrong.status_code == 400 and wrong.json["errors"][0]["field"] == "events[0]"
    to = f"~alice/devel@{DOMAIN}"

    # A series arriving out of order: patch 2 before its cover letter.
    cover = message("[PATCH 0/2] two changes", "Both.\n", to=to, message_id="c0")
    two = patch_mail(2, 2, to=to, message_id="p2", in_reply_to="c0@example.org")
    one = patch_mail(1, 2, to=to, message_id="p1", in_reply_to="c0@example.org")
    for mail in (two, cover, one):
        assert site.deliver(mail, to).startswith("250")
    [patchset] = api.get("/lists/alice/devel/patchsets").json["results"]
    assert (patchset["subject"], patchset["total"], patchset["status"]) == (
        "two changes",
        2,
        "proposed",
    )
    numbers = [
        m["patch_number"]
        for m in api.get(f"/lists/alice/devel/patchsets/{patchset['id']}/messages").json["results"]
    ]
    assert sorted(numbers) == [0, 1, 2]
    [thread] = api.get("/lists/alice/devel/threads").json["results"]
    assert thread["messages"] == 3

    # v2, without a cover letter (patch 2 answers patch 1), supersedes it.
    first_v2 = patch_mail(1, 2, version=2, to=to, message_id="v2-1")
    second_v2 = patch_mail(
        2, 2, version=2, to=to, message_id="v2-2", in_reply_to="v2-1@example.org"
    )
    for mail in (first_v2, second_v2):
        assert site.deliver(mail, to).startswith("250")
    updated = api.patch(f"/lists/alice/devel/patchsets/{patchset['id']}", {"status": "applied"})
    assert updated.status_code == 200 and updated.json["status"] == "applied"
    assert (
        api.patch(
            f"/lists/alice/devel/patchsets/{patchset['id']}", {"status": "merged"}
        ).status_code
        == 400
    )

    told = events(site)
    names = [name for name, _data in told]
    assert names.count("email:received") == 5
    received = [data["patchset"] for name, data in told if name == "patchset:received"]
    assert [(p["version"], p["total"]) for p in received] == [(1, 2), (2, 2)]
    updates = [data for name, data in told if name == "patchset:update"]
    assert [
        (u["patchset"]["version"], u["previous"], u["patchset"]["status"]) for u in updates
    ] == [
        (1, "proposed", "superseded"),
        (1, "superseded", "applied"),
    ]
    first = next(data for name, data in told if name == "email:received")
    assert first["email"]["message_id"] == "p2@example.org"
    assert first["list"]["address"] == to
    log = api.get("/lists/alice/devel/webhook-deliveries").json["results"]
    assert len(log) == len(told)


def test_a_retried_create_with_its_idempotency_key_makes_one_list(site: Any) -> None:
    alice = site.user("alice")
    api = site.api(alice)
    key = {"Idempotency-Key": "create-devel-1"}
    first = api.post("/lists", {"name": "devel"}, headers=key)
    again = api.post("/lists", {"name": "devel"}, headers=key)
    assert first.status_code == again.status_code == 201, again.json
    assert again.json == first.json
    assert [x["name"] for x in api.get("/lists").json["results"]] == ["devel"]
    # The same key on another request is refused, naming the header.
    other = api.post("/lists", {"name": "other"}, headers=key)
    assert other.status_code == 422, other.json
    assert other.json["errors"][0]["field"] == "Idempotency-Key"
