"""paste's API with tokens as meta issues them: create, list page by page,
get, delete; scopes; errors as JSON naming the field, nothing stored; and
the OpenAPI document, whose every path the app implements."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from srht_core.testing import CORE_API_PATHS

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
    assert listed["next"] is None

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
        url = f"/api/pastes?limit=2&cursor={page['next']}" if page["next"] else ""
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
        ([], [{"field": "body", "reason": "must be an object"}]),
        ({}, [{"field": "files", "reason": "is required"}]),
        ({"files": []}, [{"field": "files", "reason": "must not be empty"}]),
        ({"files": ["text"]}, [{"field": "files[0]", "reason": "must be an object"}]),
        (
            {"files": [{"filename": 3, "content": None}]},
            [
                {"field": "files[0].content", "reason": "must be a string"},
                {"field": "files[0].filename", "reason": "must be a string"},
            ],
        ),
        ({"files": [{"filename": "a"}]}, [{"field": "files[0].content", "reason": "is required"}]),
        (
            {"files": [{"content": ""}]},
            [{"field": "files[0].content", "reason": "must not be empty"}],
        ),
        (
            {"visibility": "secret", "files": [{"content": "x"}]},
            [{"field": "visibility", "reason": "must be one of public, unlisted, private"}],
        ),
        (
            {"files": [{"content": "x", "name": "a"}], "title": "t"},
            [
                {
                    "field": "files[0].name",
                    "reason": "is not a field here (known: content, filename)",
                },
                {"field": "title", "reason": "is not a field here (known: files, visibility)"},
            ],
        ),
        (
            {"files": [{"filename": "a\tb", "content": "x"}]},
            [
                {
                    "field": "files[0].filename",
                    "reason": "is not valid: No control characters or line breaks; unique within "
                    "the paste.",
                }
            ],
        ),
        # A trailing line break slips past the schema's pattern in Python's
        # regular expressions; the pages' rule catches it.
        (
            {"files": [{"filename": "a\n", "content": "x"}]},
            [
                {
                    "field": "files[0].filename",
                    "reason": "A file name may not contain control characters or line breaks.",
                }
            ],
        ),
        (
            {"files": [{"filename": "x" * 256, "content": "x"}]},
            [{"field": "files[0].filename", "reason": "must be at most 255 characters long"}],
        ),
        (
            {"files": [{"filename": "a.py", "content": "x"}, {"filename": "a.py", "content": "y"}]},
            [
                {
                    "field": "files[1].filename",
                    "reason": "File 1 has this name already; give each file its own.",
                }
            ],
        ),
        # The core refuses NUL in any JSON body before a view runs.
        (
            {"files": [{"content": "\x00"}]},
            [{"field": "files[0].content", "reason": "NUL characters are not accepted"}],
        ),
        # Sizes come from the config ([paste] max-file-size, max-paste-size).
        (
            {"files": [{"content": "x"}, {"content": "x" * 101}]},
            [
                {
                    "field": "files[1].content",
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
            [{"field": "files", "reason": "must have at most 50 items"}],
        ),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(
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


def test_every_problem_of_a_paste_at_once(paste_make_site: Callable[..., PasteSite]) -> None:
    site = paste_make_site({"max-file-size": "100", "max-paste-size": "150"})
    token = site.token(site.user("alice"), "paste/pastes:RW")
    files = [
        {"filename": "a.txt", "content": "x" * 101},
        {"filename": "a.txt", "content": "y"},
        {"content": "z" * 60},
    ]
    answer = site.api("POST", "/api/pastes", token, json={"files": files})
    assert answer.status_code == 400
    assert [error["field"] for error in answer.json["errors"]] == [
        "files[0].content",
        "files[1].filename",
        "files",
    ]


def test_the_document_declares_what_the_pages_enforce(paste_site: PasteSite) -> None:
    """File count, file name length and characters, and non-empty content:
    the body schema says what the new-paste form refuses."""
    document = paste_site.api("GET", "/api/openapi.json").json
    schemas = document["components"]["schemas"]
    create = document["paths"]["/api/pastes"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewPaste"
    }
    paste = schemas["NewPaste"]
    assert paste["additionalProperties"] is False and paste["required"] == ["files"]
    assert (paste["properties"]["files"]["minItems"], paste["properties"]["files"]["maxItems"]) == (
        1,
        50,
    )
    assert paste["properties"]["visibility"]["enum"] == ["public", "unlisted", "private"]
    file = schemas["NewFile"]
    assert file["additionalProperties"] is False and file["required"] == ["content"]
    assert file["properties"]["filename"]["maxLength"] == 255
    assert file["properties"]["content"]["minLength"] == 1
    assert "max-file-size" in file["properties"]["content"]["description"]
    listing = document["paths"]["/api/pastes"]["get"]["responses"]["200"]
    page = listing["content"]["application/json"]["schema"]
    assert page["required"] == ["results", "next"]


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
    # And every API route of paste's is documented, but what the core serves
    # for every service.
    documented = {shape(p) for p in document["paths"]}
    api_routes = {p for p in routes if p.startswith("/api/") and p not in CORE_API_PATHS}
    assert api_routes == documented
