"""todo's REST API with meta-issued tokens: trackers, tickets, comments,
labels and webhooks; cursor pagination; JSON errors naming the field;
writes without a token are 401; the OpenAPI document lists only what is
served; ticket numbers stay unique under concurrent submissions."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from srht_core.testing import CORE_API_PATHS

pytestmark = pytest.mark.postgres


def test_trackers_tickets_comments_and_labels_through_the_api(site: Any) -> None:
    alice = site.user("alice")
    api = site.api(alice)

    created = api.post("/trackers", {"name": "bugs", "description": "All of them"})
    assert created.status_code == 201, created.json
    assert created.json["ref"] == "~alice/bugs"
    assert created.json["visibility"] == "public"
    assert api.get("/trackers").json["results"][0]["name"] == "bugs"
    assert api.get("/trackers/alice/bugs").json["description"] == "All of them"
    assert api.get("/trackers/~alice/bugs").status_code == 200

    label = api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "#FFEE00"})
    assert label.status_code == 201
    assert label.json["color"] == "#ffee00"
    assert label.json["text_color"] == "#000000"

    ticket = api.post("/trackers/alice/bugs/tickets", {"title": "Crash", "description": "x"})
    assert ticket.status_code == 201
    assert ticket.json["number"] == 1
    assert ticket.json["ref"] == "~alice/bugs#1"
    assert ticket.json["submitter"]["username"] == "alice"

    changed = api.patch(
        "/trackers/alice/bugs/tickets/1",
        {
            "status": "closed",
            "resolution": "wont_fix",
            "labels": ["bug"],
            "assignees": ["alice"],
            "comment": "Not a bug after all",
        },
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["status"] == "closed"
    assert changed.json["resolution"] == "wont_fix"
    assert changed.json["labels"] == ["bug"]
    assert [u["username"] for u in changed.json["assignees"]] == ["alice"]

    comment = api.post("/trackers/alice/bugs/tickets/1/comments", {"text": "Reopen later?"})
    assert comment.status_code == 201
    comments = api.get("/trackers/alice/bugs/tickets/1/comments").json["results"]
    assert [c["text"] for c in comments] == ["Not a bug after all", "Reopen later?"]
    assert "closed as won't fix" in comments[0]["change"]

    updated = api.patch(
        "/trackers/alice/bugs/labels/" + str(label.json["id"]), {"color": "#101010"}
    )
    assert updated.json["text_color"] == "#ffffff"
    assert api.delete(f"/trackers/alice/bugs/labels/{label.json['id']}").status_code == 204
    assert api.get("/trackers/alice/bugs/tickets/1").json["labels"] == []

    settings = api.patch(
        "/trackers/alice/bugs", {"visibility": "private", "user_access": ["browse"]}
    )
    assert settings.json["visibility"] == "private"
    assert settings.json["user_access"] == ["browse"]
    assert api.delete("/trackers/alice/bugs").status_code == 204
    assert api.get("/trackers/alice/bugs").status_code == 404


def test_writes_without_a_token_are_401_and_reads_of_public_data_need_none(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    site.ticket(alice, "bugs", "Crash")
    anonymous = site.api()

    assert anonymous.get("/trackers/alice/bugs/tickets").status_code == 200
    for method, path, body in [
        ("post", "/trackers", {"name": "x"}),
        ("post", "/trackers/alice/bugs/tickets", {"title": "x"}),
        ("patch", "/trackers/alice/bugs/tickets/1", {"title": "x"}),
        ("post", "/trackers/alice/bugs/tickets/1/comments", {"text": "x"}),
        ("post", "/trackers/alice/bugs/labels", {"name": "x", "color": "#000000"}),
        ("delete", "/trackers/alice/bugs", None),
    ]:
        response = getattr(anonymous, method)(path, **({"json": body} if body else {}))
        assert response.status_code == 401, (method, path)
        assert response.json["errors"][0]["reason"].startswith("authentication required")
    assert anonymous.get("/trackers").status_code == 401
    bad = site.api()
    bad.headers = {"Authorization": "Bearer not-a-token"}
    assert bad.get("/trackers/alice/bugs").status_code == 401


def test_scopes_decide_what_a_token_may_do(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    read_only = site.api(alice, frozenset({"todo/trackers:RO", "todo/tickets:RO"}))
    assert read_only.get("/trackers/alice/bugs").status_code == 200
    refused = read_only.post("/trackers/alice/bugs/tickets", {"title": "x"})
    assert refused.status_code == 403
    assert "todo/tickets:RW" in refused.json["errors"][0]["reason"]
    tickets_only = site.api(alice, frozenset({"todo/tickets:RW"}))
    assert tickets_only.post("/trackers/alice/bugs/tickets", {"title": "x"}).status_code == 201
    assert tickets_only.get("/trackers/alice/bugs").status_code == 403


def test_errors_name_the_field_and_the_reason(site: Any) -> None:
    alice = site.user("alice")
    api = site.api(alice)
    assert api.post("/trackers", {"name": "bugs"}).status_code == 201

    cases = [
        (api.post("/trackers", {"name": "no spaces"}), 400, "name"),
        (api.post("/trackers", {"name": "bugs"}), 409, "name"),
        (api.post("/trackers", {"name": 12}), 400, "name"),
        (api.post("/trackers", {"name": "x", "visibility": "secret"}), 400, "visibility"),
        (api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "red"}), 400, "color"),
        (api.post("/trackers/alice/bugs/labels", {"name": "bug", "color": "#12345"}), 400, "color"),
        (api.post("/trackers/alice/bugs/tickets", {"title": "   "}), 400, "title"),
        (api.post("/trackers/alice/bugs/tickets", {}), 400, "title"),
        (api.get("/trackers/alice/bugs/tickets?search=status:maybe"), 400, "search"),
        (api.get("/trackers/alice/bugs/tickets?limit=0"), 400, "limit"),
        (api.get("/trackers/alice/bugs/tickets?cursor=%21%21"), 400, "cursor"),
        (
            api.post(
                "/trackers/alice/bugs/webhooks", {"url": "ftp://x", "events": ["ticket:create"]}
            ),
            400,
            "url",
        ),
        (
            api.post(
                "/trackers/alice/bugs/webhooks", {"url": "http://x", "events": ["ticket:explode"]}
            ),
            400,
            "events[0]",
        ),
        (api.patch("/trackers/alice/bugs", {"user_access": ["fly"]}), 400, "user_access[0]"),
        (api.patch("/trackers/alice/bugs", {"description": "x" * 65537}), 400, "description"),
        (api.patch("/trackers/alice/bugs", {"visibilty": "private"}), 400, "visibilty"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.json
        assert response.json["errors"][0]["field"] == field
        assert response.json["errors"][0]["reason"]
    not_json = api.post("/trackers", data="name=x", content_type="text/plain")
    assert not_json.status_code == 400
    assert not_json.json == {
        "errors": [{"reason": "the body must be JSON (Content-Type: application/json)"}]
    }


def test_lists_are_paged_with_cursors(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    api = site.api(alice)
    for n in range(7):
        api.post("/trackers/alice/bugs/tickets", {"title": f"Ticket {n + 1}"})
    seen: list[int] = []
    path = "/trackers/alice/bugs/tickets?limit=3"
    while True:
        answer = api.get(path).json
        seen += [t["number"] for t in answer["results"]]
        if answer["next"] is None:
            break
        path = f"/trackers/alice/bugs/tickets?limit=3&cursor={answer['next']}"
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_concurrent_submissions_get_distinct_consecutive_numbers(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    token = site.token(alice)
    numbers: list[int] = []
    errors: list[Any] = []
    start = threading.Barrier(8)

    def submit(worker: int) -> None:
        client = site.app.test_client()
        start.wait()
        for n in range(5):
            response = client.post(
                "/api/trackers/alice/bugs/tickets",
                json={"title": f"from {worker}, {n}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 201:
                numbers.append(response.json["number"])
            else:
                errors.append(response.json)

    threads = [threading.Thread(target=submit, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 41))
    assert site.api(alice).get("/trackers/alice/bugs").json["ticket_count"] == 40


def test_webhooks_and_their_delivery_log_through_the_api(site: Any) -> None:
    alice = site.user("alice")
    site.tracker(alice, "bugs")
    api = site.api(alice)
    hook = api.post(
        "/trackers/alice/bugs/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["ticket:create"]},
    )
    assert hook.status_code == 201
    assert hook.json["events"] == ["ticket:create"]
    assert api.get(f"/trackers/alice/bugs/webhooks/{hook.json['id']}").status_code == 200
    api.post("/trackers/alice/bugs/tickets", {"title": "Crash"})
    log = api.get("/trackers/alice/bugs/webhook-deliveries").json["results"]
    assert [(d["event"], d["status"]) for d in log] == [("ticket:create", "pending")]
    again = api.post(f"/trackers/alice/bugs/webhook-deliveries/{log[0]['id']}/redeliver")
    assert again.status_code == 202
    assert api.post("/trackers/alice/bugs/webhook-deliveries/99999/redeliver").status_code == 404
    assert api.delete(f"/trackers/alice/bugs/webhooks/{hook.json['id']}").status_code == 204
    assert api.get("/trackers/alice/bugs/webhooks").json["results"] == []


def test_every_path_in_the_openapi_document_is_served(site: Any) -> None:
    document = site.api().get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    rules: dict[str, set[str]] = {}
    for rule in site.app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        rules.setdefault(path, set()).update(m.lower() for m in rule.methods or ())
    assert sum(len(operations) for operations in document["paths"].values()) >= 25
    for path, operations in document["paths"].items():
        assert path in rules, f"{path} is documented but not served"
        for method in operations:
            assert method in rules[path], f"{method.upper()} {path} is documented, not served"
    served = {p for p in rules if p.startswith("/api/") and p not in CORE_API_PATHS}
    assert served == set(document["paths"]), "a served API path is not documented"
    scopes = {
        s
        for ops in document["paths"].values()
        for op in ops.values()
        for requirement in op["security"]
        for s in requirement.get("token", [])
    }
    assert scopes == {"todo/trackers:RO", "todo/trackers:RW", "todo/tickets:RO", "todo/tickets:RW"}


def test_the_open_tickets_assigned_to_you_on_trackers_you_may_still_browse(site: Any) -> None:
    alice, bob, carol = site.user("alice"), site.user("bob"), site.user("carol")
    site.tracker(alice, "bugs")
    site.grant(site.tracker(alice, "shut", visibility="private"), bob, "browse", "comment")
    api = site.api(alice)
    for tracker, title in (
        ("bugs", "Crash"),
        ("bugs", "Fixed already"),
        ("bugs", "Carol's"),
        ("shut", "Was visible"),
    ):
        number = api.post(f"/trackers/alice/{tracker}/tickets", {"title": title}).json["number"]
        who = "carol" if title == "Carol's" else "bob"
        change: dict[str, Any] = {"assignees": [who]}
        if title == "Fixed already":
            change |= {"status": "closed", "resolution": "fixed"}
        assert api.patch(f"/trackers/alice/{tracker}/tickets/{number}", change).status_code == 200
    # bob is shut out of the private ~alice/shut after the assignment.
    with site.session() as session:
        from srht_plugins.todo.models import TrackerAccess

        session.execute(
            sa.update(TrackerAccess).where(TrackerAccess.user_id == bob.id).values(access=0)
        )

    mine = site.api(bob, frozenset({"todo/tickets:RO"})).get("/user/assigned-tickets")
    assert mine.status_code == 200, mine.json
    assert [(t["ref"], t["title"]) for t in mine.json["results"]] == [("~alice/bugs#1", "Crash")]
    assert mine.json["results"][0]["url"].endswith("/~alice/bugs/1")
    assert [t["title"] for t in site.api(carol).get("/user/assigned-tickets").json["results"]] == [
        "Carol's"
    ]
    assert site.api().get("/user/assigned-tickets").status_code == 401
    trackers_only = site.api(bob, frozenset({"todo/trackers:RO"}))
    assert trackers_only.get("/user/assigned-tickets").status_code == 403
