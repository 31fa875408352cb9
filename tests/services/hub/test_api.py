"""hub's REST API, with tokens as meta issues them."""

from __future__ import annotations

import pytest

from srht_core import deliveries

pytestmark = [pytest.mark.postgres]


def test_create_list_get_change_and_delete_a_project(app, make_user, token):
    client, alice = app.test_client(), make_user("alice")
    made = client.post(
        "/api/projects",
        json={"name": "hello", "readme": "# Hi", "tags": ["c", "Tools"]},
        headers=token(alice),
    )
    assert made.status_code == 201, made.json
    project = made.json
    assert (project["ref"], project["visibility"], project["tags"]) == (
        "~alice/hello",
        "public",
        ["c", "tools"],
    )
    assert client.get("/api/projects", headers=token(alice)).json["results"] == [project]
    assert client.get("/api/projects/alice/hello").json == project  # public: no token
    assert client.get("/api/users/alice/projects").json["results"] == [project]
    changed = client.patch(
        "/api/projects/~alice/hello", json={"visibility": "private"}, headers=token(alice)
    )
    assert changed.status_code == 200 and changed.json["visibility"] == "private"
    assert client.get("/api/projects/alice/hello").status_code == 404
    assert client.get("/api/users/alice/projects").json["results"] == []
    assert client.get("/api/projects/alice/hello/resources").status_code == 404
    assert client.get("/api/projects/alice/hello/feed").status_code == 404
    assert client.delete("/api/projects/alice/hello", headers=token(alice)).status_code == 204
    assert client.get("/api/projects/alice/hello", headers=token(alice)).status_code == 404


def test_bad_input_names_the_field_and_stores_nothing(app, make_user, token):
    client, alice = app.test_client(), make_user("alice")
    for body, field in (
        ({"name": "no spaces"}, "name"),
        ({"name": "ok", "readme": "x" * 70_000}, "readme"),
        ({"name": "ok", "tags": ["a/b"]}, "tags"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ):
        answer = client.post("/api/projects", json=body, headers=token(alice))
        assert answer.status_code == 400, body
        assert field in {e.get("field") for e in answer.json["errors"]}, answer.json
    assert client.get("/api/projects", headers=token(alice)).json["results"] == []
    client.post("/api/projects", json={"name": "ok"}, headers=token(alice))
    taken = client.post("/api/projects", json={"name": "ok"}, headers=token(alice))
    assert taken.status_code == 409 and taken.json["errors"][0]["field"] == "name"


def test_attaching_to_a_service_that_is_not_there_says_which(app, make_user, token):
    client, alice = app.test_client(), make_user("alice")
    client.post("/api/projects", json={"name": "hello"}, headers=token(alice))
    answer = client.post(
        "/api/projects/alice/hello/resources",
        json={"service": "git", "type": "repository", "resource": "~alice/hello"},
        headers=token(alice),
    )
    assert answer.status_code == 503
    assert answer.json["errors"] == [
        {
            "field": "resource",
            "reason": "Cannot attach it now: git did not answer: it is not in this site's config.",
        }
    ]


def test_writing_needs_the_scope_and_the_project(app, make_user, token):
    client, alice, bob = app.test_client(), make_user("alice"), make_user("bob")
    assert client.post("/api/projects", json={"name": "x"}).status_code == 401
    read_only = token(alice, "hub/projects:RO")
    assert client.post("/api/projects", json={"name": "x"}, headers=read_only).status_code == 403
    client.post("/api/projects", json={"name": "x"}, headers=token(alice))
    assert client.delete("/api/projects/alice/x", headers=token(bob)).status_code == 403
    assert (
        client.patch("/api/projects/alice/x", json={"name": "y"}, headers=token(bob)).status_code
        == 403
    )


def test_project_webhooks_tell_of_creation_change_and_deletion(app, make_user, token):
    client, alice = app.test_client(), make_user("alice")
    hook = client.post(
        "/api/user/webhooks",
        json={
            "url": "https://hooks.example.org/hub",
            "events": ["project:create", "project:delete"],
        },
        headers=token(alice),
    )
    assert hook.status_code == 201, hook.json
    client.post("/api/projects", json={"name": "hello"}, headers=token(alice))
    client.patch("/api/projects/alice/hello", json={"description": "x"}, headers=token(alice))
    client.delete("/api/projects/alice/hello", headers=token(alice))
    with app.app_context():
        sent = deliveries("user:1")
    assert [d.event for d in sent] == ["project:delete", "project:create"]
    assert '"ref": "~alice/hello"' in sent[0].payload
    listed = client.get("/api/user/webhook-deliveries", headers=token(alice)).json["results"]
    assert [d["event"] for d in listed] == ["project:delete", "project:create"]


def test_the_openapi_document_lists_every_operation(app):
    document = app.test_client().get("/api/openapi.json").json
    assert {
        "/api/projects",
        "/api/projects/{owner}/{name}",
        "/api/projects/{owner}/{name}/resources",
        "/api/projects/{owner}/{name}/feed",
        "/api/user/webhooks",
    } <= set(document["paths"])
