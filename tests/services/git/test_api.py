"""git's REST API over real HTTP with tokens meta issued: creating,
listing, reading, changing (renames keep the old name working), deleting,
access grants, refs; every list paged as ``{"results", "next"}``; every
write refusing a body that breaks its schema, storing nothing; and the
OpenAPI document lists exactly what is served."""

from __future__ import annotations

from typing import Any

import pytest

from srht_core.testing import CORE_API_PATHS

from .conftest import GitStack

pytestmark = pytest.mark.postgres


def test_create_read_list_change_and_delete(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    created = git_stack.api(
        "POST",
        "/api/repos",
        token,
        json={"name": "api-made", "description": "From the API.", "visibility": "unlisted"},
    )
    assert created.status_code == 201
    body = created.json()
    assert created.headers["Location"] == f"/api/~{alice}/repos/api-made"
    assert body["name"] == "api-made"
    assert body["owner"] == {"username": alice, "canonical_name": f"~{alice}"}
    assert body["visibility"] == "unlisted"
    assert body["default_branch"] == "main"
    assert body["pushed"] is None
    assert body["clone_urls"]["http"] == f"{git_stack.git_url}/~{alice}/api-made"
    assert body["clone_urls"]["ssh"].endswith(f"@127.0.0.1:~{alice}/api-made")

    # Unlisted: anyone may read it, but it is listed only to its owner.
    assert git_stack.api("GET", f"/api/~{alice}/repos/api-made").status_code == 200
    assert git_stack.api("GET", f"/api/~{alice}/repos").json()["results"] == []
    mine = git_stack.api("GET", "/api/repos", token).json()
    assert [r["name"] for r in mine["results"]] == ["api-made"] and mine["next"] is None

    changed = git_stack.api(
        "PATCH",
        f"/api/~{alice}/repos/api-made",
        token,
        json={"name": "api-renamed", "visibility": "private", "description": ""},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "api-renamed"
    assert changed.json()["description"] is None
    # The old name still finds it, for those who may see it.
    assert (
        git_stack.api("GET", f"/api/~{alice}/repos/api-made", token).json()["name"] == "api-renamed"
    )
    assert git_stack.api("GET", f"/api/~{alice}/repos/api-made").status_code == 404
    assert git_stack.api("GET", f"/api/~{alice}/repos/api-renamed").status_code == 404

    no_branch = git_stack.api(
        "PATCH", f"/api/~{alice}/repos/api-renamed", token, json={"default_branch": "nope"}
    )
    assert no_branch.status_code == 400
    assert no_branch.json() == {
        "errors": [
            {"field": "default_branch", "reason": "There is no branch nope in this repository."}
        ]
    }

    gone = git_stack.api("DELETE", f"/api/~{alice}/repos/api-renamed", token)
    assert gone.status_code == 204
    assert git_stack.api("GET", f"/api/~{alice}/repos/api-renamed", token).status_code == 404
    # The name is free again.
    assert git_stack.api("POST", "/api/repos", token, json={"name": "api-made"}).status_code == 201


def test_what_the_api_refuses(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "taken")
    cases = [
        (
            {"name": "x.git"},
            "name",
            "Leave out the .git at the end: clone URLs work with or without it.",
        ),
        (
            {"name": ".hidden"},
            "name",
            "is not valid: Use letters, digits, dots, dashes and underscores, "
            "starting with a letter, digit or underscore. Not ending in .git.",
        ),
        (
            {"name": "ok", "visibility": "secret"},
            "visibility",
            "must be one of public, unlisted, private",
        ),
        ({"name": 12}, "name", "must be a string"),
        ({}, "name", "is required"),
        ({"name": "x" * 101}, "name", "must be at most 100 characters long"),
        (
            {"name": "ok", "description": "d" * 1001},
            "description",
            "must be at most 1000 characters long",
        ),
        (
            {"name": "ok", "colour": "red"},
            "colour",
            "is not a field here (known: description, name, visibility)",
        ),
    ]
    taken = git_stack.api("POST", "/api/repos", token, json={"name": "taken"})
    assert taken.status_code == 409
    assert taken.json() == {
        "errors": [{"field": "name", "reason": "You have a repository named taken already."}]
    }
    for body, field, reason in cases:
        answer = git_stack.api("POST", "/api/repos", token, json=body)
        assert answer.status_code == 400, body
        assert answer.json() == {"errors": [{"field": field, "reason": reason}]}, body
    # Nothing was made by any of them.
    mine = git_stack.api("GET", "/api/repos", token).json()["results"]
    assert [r["name"] for r in mine] == ["taken"]

    assert git_stack.api("POST", "/api/repos", json={"name": "anon"}).status_code == 401
    read_only = git_stack.token(alice, "git/repos:RO")
    refused = git_stack.api("POST", "/api/repos", read_only, json={"name": "ro"})
    assert refused.status_code == 403
    assert refused.json() == {"errors": [{"reason": "the token lacks the scope git/repos:RW"}]}
    other = git_stack.token(bob)
    for method in ("PATCH", "DELETE"):
        answer = git_stack.api(method, f"/api/~{alice}/repos/taken", other, json={})
        assert answer.status_code == 403
        assert answer.json() == {"errors": [{"reason": "only the repository's owner may do this"}]}


def test_access_grants_and_refs(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    token = git_stack.publish(alice, "granted", {"a.txt": "a\n"}, visibility="private")
    bob_token = git_stack.token(bob, "git/repos:RO")
    path = f"/api/~{alice}/repos/granted"
    assert git_stack.api("GET", path, bob_token).status_code == 404

    unknown = git_stack.api("PUT", path + "/access/nobody-at-all", token, json={"mode": "ro"})
    assert unknown.status_code == 404
    assert "must sign in to this git service once" in unknown.json()["errors"][0]["reason"]

    git_stack.grant(token, alice, "granted", bob, "ro")
    assert git_stack.api("GET", path, bob_token).status_code == 200
    grants = git_stack.api("GET", path + "/access", token).json()["results"]
    assert [(g["user"]["username"], g["mode"]) for g in grants] == [(bob, "ro")]
    bad = git_stack.api("PUT", path + f"/access/{bob}", token, json={"mode": "admin"})
    assert bad.status_code == 400
    self_grant = git_stack.api("PUT", path + f"/access/{alice}", token, json={"mode": "ro"})
    assert self_grant.json() == {
        "errors": [{"field": "user", "reason": "The owner always has full access."}]
    }

    refs = git_stack.api("GET", path + "/refs", bob_token).json()["results"]
    assert [(r["name"], r["kind"]) for r in refs] == [("main", "branch")]

    assert git_stack.api("DELETE", path + f"/access/{bob}", token).status_code == 204
    assert git_stack.api("GET", path, bob_token).status_code == 404


def test_the_openapi_document_lists_what_is_served(git_stack: GitStack) -> None:
    document = git_stack.api("GET", "/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": git_stack.git_url}]
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = set()
    for rule in git_stack.git_app.url_map.iter_rules():
        path = str(rule.rule)
        if not path.startswith("/api/") or path in CORE_API_PATHS:
            continue
        path = path.replace("<int:webhook_id>", "{webhook_id}")
        for name in ("username", "name", "grantee"):
            path = path.replace(f"<{name}>", "{" + name + "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method))
    assert documented == served
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                assert operation["responses"], operation["operationId"]


def pages(git_stack: GitStack, path: str, token: str | None) -> list[list[Any]]:
    """Every page of a list, one item at a time, following ``next``."""
    out = []
    cursor = ""
    while True:
        answer = git_stack.api("GET", f"{path}?limit=1&cursor={cursor}", token)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"results", "next"}
        out.append(body["results"])
        if body["next"] is None:
            return out
        cursor = body["next"]


def test_every_list_pages_the_same_way(git_stack: GitStack) -> None:
    alice, bob, carol = (git_stack.new_user(n) for n in ("alice", "bob", "carol"))
    token = git_stack.token(alice)
    git_stack.create_repo(token, "paged")
    work = git_stack.work_tree({"a.txt": "a\n"})
    assert git_stack.git("branch", "topic", cwd=work).ok
    assert git_stack.git("tag", "v1", cwd=work).ok
    url = git_stack.http_url(alice, "paged", token)
    assert git_stack.git("push", url, "main", "topic", "v1", cwd=work).ok
    git_stack.create_repo(token, "second")
    path = f"/api/~{alice}/repos/paged"
    for grantee in (bob, carol):
        git_stack.grant(token, alice, "paged", grantee, "ro")
    for number in (1, 2):
        made = git_stack.api(
            "POST", path + "/webhooks", token, json={"url": f"https://example.org/{number}"}
        )
        assert made.status_code == 201, made.text

    refs = pages(git_stack, path + "/refs", None)
    assert len(refs) == 3
    assert sorted((r[0]["kind"], r[0]["name"]) for r in refs) == [
        ("branch", "main"),
        ("branch", "topic"),
        ("tag", "v1"),
    ]
    grants = pages(git_stack, path + "/access", token)
    assert [g[0]["user"]["username"] for g in grants] == [bob, carol]  # oldest first
    hooks = pages(git_stack, path + "/webhooks", token)
    assert [h[0]["url"] for h in hooks] == ["https://example.org/1", "https://example.org/2"]
    assert [[r["name"] for r in p] for p in pages(git_stack, "/api/repos", token)] == [
        ["second"],
        ["paged"],
    ]
    assert len(pages(git_stack, f"/api/~{alice}/repos", None)) == 2
    assert pages(git_stack, path + "/webhooks/deliveries", token) == [[]]

    bad = git_stack.api("GET", path + "/refs?cursor=bm9uZQ", token)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "cursor"
    too_many = git_stack.api("GET", path + "/refs?limit=101", token)
    assert too_many.json() == {"errors": [{"field": "limit", "reason": "must be at most 100"}]}


def test_writes_refuse_a_body_that_breaks_the_schema_and_store_nothing(
    git_stack: GitStack,
) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "kept", description="As it was.")
    git_stack.api("GET", "/api/repos", git_stack.token(bob, "git/repos:RO"))  # bob is known
    path = f"/api/~{alice}/repos/kept"
    cases = [
        ("PATCH", path, {"visibility": "hidden"}, "visibility"),
        ("PATCH", path, {"description": "x" * 1001}, "description"),
        ("PATCH", path, {"name": "bad name"}, "name"),
        ("PATCH", path, {"owner": bob}, "owner"),
        ("PATCH", path, {"default_branch": 3}, "default_branch"),
        ("PUT", f"{path}/access/{bob}", {"mode": "admin"}, "mode"),
        ("PUT", f"{path}/access/{bob}", {}, "mode"),
        ("PUT", f"{path}/access/{bob}", {"mode": "ro", "until": "never"}, "until"),
        ("POST", path + "/webhooks", {"url": "ftp://example.org/"}, "url"),
        ("POST", path + "/webhooks", {"url": "https://example.org/" + "x" * 2048}, "url"),
        ("POST", path + "/webhooks", {"url": "https://example.org/", "events": []}, "events"),
        # A host urlsplit cannot read (a fullwidth number sign in it).
        ("POST", path + "/webhooks", {"url": "https://ex\uff03ample.org/"}, "url"),
    ]
    for method, where, body, field in cases:
        answer = git_stack.api(method, where, token, json=body)
        assert answer.status_code == 400, (method, body, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == [field], (method, body)
    for method, where in (("PATCH", path), ("PUT", f"{path}/access/{bob}")):
        answer = git_stack.api(method, where, token, json=["not", "an", "object"])
        assert answer.status_code == 400, method

    repository = git_stack.api("GET", path, token).json()
    assert (repository["name"], repository["description"], repository["visibility"]) == (
        "kept",
        "As it was.",
        "public",
    )
    assert git_stack.api("GET", path + "/access", token).json()["results"] == []
    assert git_stack.api("GET", path + "/webhooks", token).json()["results"] == []
