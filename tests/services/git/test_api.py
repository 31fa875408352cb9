"""git's REST API over real HTTP with tokens meta issued: creating,
listing, reading, changing (renames keep the old name working), deleting,
access grants, refs; and the OpenAPI document lists exactly what is served."""

from __future__ import annotations

import pytest

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
    assert [r["name"] for r in mine["results"]] == ["api-made"] and mine["cursor"] is None

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
        ({"name": "taken"}, "name", "You have a repository named taken already."),
        (
            {"name": "x.git"},
            "name",
            "Leave out the .git at the end: clone URLs work with or without it.",
        ),
        (
            {"name": ".hidden"},
            "name",
            "Use letters, digits, dots, dashes and underscores, "
            "starting with a letter, digit or underscore.",
        ),
        (
            {"name": "ok", "visibility": "secret"},
            "visibility",
            "Choose one of public, unlisted, private.",
        ),
        ({"name": 12}, "name", "must be a string"),
        ({}, "name", "is required"),
    ]
    for body, field, reason in cases:
        answer = git_stack.api("POST", "/api/repos", token, json=body)
        assert answer.status_code == 400, body
        assert answer.json() == {"errors": [{"field": field, "reason": reason}]}, body

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
        if not path.startswith("/api/") or path == "/api/openapi.json":
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
