"""paste's API with tokens as meta issues them: create, list with cursors,
get, delete; scopes; errors as JSON naming the field; and the OpenAPI
document, whose every path the app implements."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import PasteSite

pytestmark = pytest.mark.postgres


def test_create_get_list_delete(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    token = paste_site.token(alice, "paste/pastes:RW")
    created = paste_site.api(
        "POST",
        "/api/pastes",
        token,
        json={
            "visibility": "private",
            "files": [{"filename": "main.go", "content": "package main\n"}, {"content": "no name"}],
        },
    )
    assert created.status_code == 201
    paste = created.json
    assert created.headers["Location"] == f"/api/pastes/{paste['id']}"
    assert paste["visibility"] == "private"
    assert paste["owner"] == {"username": "alice", "canonical_name": "~alice"}
    assert [(f["position"], f["filename"], f["size"]) for f in paste["files"]] == [
        (1, "main.go", 13),
        (2, "", 7),
    ]
    assert paste["url"] == f"{paste_site.state.origin}/~alice/{paste['id']}"

    got = paste_site.api("GET", f"/api/pastes/{paste['id']}", token)
    assert got.status_code == 200 and got.json == paste
    # The page agrees with the API.
    page = paste_site.browser(alice).get(f"/~alice/{paste['id']}")
    assert page.status_code == 200 and "main.go" in page.get_data(as_text=True)

    listed = paste_site.api("GET", "/api/pastes", token).json
    assert [p["id"] for p in listed["results"]] == [paste["id"]]
    assert "content" not in listed["results"][0]["files"][0]
    assert listed["cursor"] is None

    assert paste_site.api("DELETE", f"/api/pastes/{paste['id']}", token).status_code == 204
    assert paste_site.api("GET", f"/api/pastes/{paste['id']}", token).status_code == 404


def test_visibility_defaults_to_unlisted(paste_site: PasteSite) -> None:
    token = paste_site.token(paste_site.user("alice"), "paste/pastes:RW")
    created = paste_site.api("POST", "/api/pastes", token, json={"files": [{"content": "x"}]})
    assert created.status_code == 201 and created.json["visibility"] == "unlisted"


def test_cursor_pagination(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    token = paste_site.token(alice, "paste/pastes:RW")
    made = [
        paste_site.api(
            "POST", "/api/pastes", token, json={"files": [{"content": f"paste {n}"}]}
        ).json["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    url = "/api/pastes?limit=2"
    while url:
        page = paste_site.api("GET", url, token).json
        assert len(page["results"]) <= 2
        seen += [p["id"] for p in page["results"]]
        url = f"/api/pastes?limit=2&cursor={page['cursor']}" if page["cursor"] else ""
    assert seen == list(reversed(made))
    bad = paste_site.api("GET", "/api/pastes?limit=500", token)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "limit"
    bad = paste_site.api("GET", "/api/pastes?cursor=%%%", token)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "cursor"


def test_tokens_and_scopes(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    body = {"files": [{"content": "x"}]}
    no_token = paste_site.api("POST", "/api/pastes", json=body)
    assert no_token.status_code == 401
    assert no_token.json["errors"][0]["reason"].startswith("authentication required")
    read_only = paste_site.token(alice, "paste/pastes:RO")
    refused = paste_site.api("POST", "/api/pastes", read_only, json=body)
    assert refused.status_code == 403
    assert refused.json == {"errors": [{"reason": "the token lacks the scope paste/pastes:RW"}]}
    other_scope = paste_site.token(alice, "meta/profile:RO")
    assert paste_site.api("GET", "/api/pastes", other_scope).status_code == 403
    forged = paste_site.api("GET", "/api/pastes", "not-a-token")
    assert forged.status_code == 401
    assert paste_site.api("DELETE", "/api/pastes/0123456789abcdef").status_code == 401

    slug = paste_site.api(
        "POST",
        "/api/pastes",
        paste_site.token(alice, "paste/pastes:RW"),
        json={**body, "visibility": "public"},
    ).json["id"]
    # Reading a public paste needs no token, but a token sent must be good.
    assert paste_site.api("GET", f"/api/pastes/{slug}").status_code == 200
    assert paste_site.api("GET", f"/api/pastes/{slug}", "not-a-token").status_code == 401
    assert paste_site.api("GET", f"/api/pastes/{slug}", other_scope).status_code == 403


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (None, [{"reason": "the body must be JSON (Content-Type: application/json)"}]),
        ([], [{"reason": "the body must be a JSON object (Content-Type: application/json)"}]),
        ({}, [{"field": "files", "reason": 'must be a list of {"filename": ..., "content": ...}'}]),
        (
            {"files": []},
            [{"field": "files", "reason": "A paste needs at least one file with contents."}],
        ),
        (
            {"files": ["text"]},
            [
                {
                    "field": "files[0]",
                    "reason": 'must be an object {"filename": ..., "content": ...}',
                }
            ],
        ),
        (
            {"files": [{"filename": 3, "content": None}]},
            [
                {"field": "files[0].filename", "reason": "must be a string"},
                {"field": "files[0].content", "reason": "must be a string (the file's text)"},
            ],
        ),
        (
            {"files": [{"content": ""}]},
            [{"field": "files[0].content", "reason": "A file needs contents."}],
        ),
        (
            {"visibility": "secret", "files": [{"content": "x"}]},
            [{"field": "visibility", "reason": "Choose public, unlisted or private."}],
        ),
        (
            {"visibility": 1, "files": [{"content": "x"}]},
            [{"field": "visibility", "reason": "must be one of public, unlisted, private"}],
        ),
        (
            {"files": [{"filename": "a\nb", "content": "x"}]},
            [
                {
                    "field": "files[0].filename",
                    "reason": "A file name may not contain control characters or line breaks.",
                }
            ],
        ),
        # The core refuses NUL in any JSON body before a view runs.
        (
            {"files": [{"content": "\x00"}]},
            [{"field": "files[0].content", "reason": "NUL characters are not accepted"}],
        ),
        (
            {"files": [{"content": "x" * 101}]},
            [
                {
                    "field": "files[0].content",
                    "reason": "This file is 101 bytes; a file may be at most 100 bytes.",
                }
            ],
        ),
        (
            {"files": [{"content": "x" * 80}, {"content": "y" * 80}]},
            [
                {
                    "field": "files",
                    "reason": "This paste is 160 bytes in all; a paste may be at most 150 bytes.",
                }
            ],
        ),
        (
            {"files": [{"content": "x"}] * 51},
            [{"field": "files", "reason": "A paste may hold at most 50 files."}],
        ),
    ],
)
def test_bad_requests_name_the_field(
    paste_make_site: Callable[..., PasteSite], body: object, errors: list[dict[str, str]]
) -> None:
    site = paste_make_site({"max-file-size": "100", "max-paste-size": "150"})
    token = site.token(site.user("alice"), "paste/pastes:RW")
    if body is None:
        answer = site.api("POST", "/api/pastes", token, data="files=1")
    else:
        answer = site.api("POST", "/api/pastes", token, json=body)
    assert answer.status_code == 400
    assert answer.json == {"errors": errors}
    assert site.api("GET", "/api/pastes", token).json["results"] == []


def test_lone_surrogates_are_refused_not_crashed_on(paste_site: PasteSite) -> None:
    token = paste_site.token(paste_site.user("alice"), "paste/pastes:RW")
    answer = paste_site.api(
        "POST",
        "/api/pastes",
        token,
        data='{"files": [{"filename": "\\ud800", "content": "\\udfff"}]}',
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert {e["field"] for e in answer.json["errors"]} == {"files[0].filename", "files[0].content"}


def test_the_openapi_document_lists_only_what_is_implemented(paste_site: PasteSite) -> None:
    answer = paste_site.api("GET", "/api/openapi.json")
    assert answer.status_code == 200
    document = answer.json
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": paste_site.state.origin}]

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}|<[^>]+>", "{}", path)

    routes: dict[str, set[str]] = {}
    for rule in paste_site.app.url_map.iter_rules():
        routes.setdefault(shape(rule.rule), set()).update(rule.methods or ())
    assert document["paths"], "the document lists no paths"
    for path, operations in document["paths"].items():
        assert shape(path) in routes, f"{path} is documented but not routed"
        for method in operations:
            if method == "parameters":
                continue
            assert method.upper() in routes[shape(path)], f"{method.upper()} {path}"
            assert "operationId" in operations[method]
    # And every API route but the document itself is documented.
    documented = {shape(p) for p in document["paths"]}
    api_routes = {p for p in routes if p.startswith("/api/") and p != "/api/openapi.json"}
    assert api_routes == documented
