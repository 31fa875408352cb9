"""Who sees what: every visibility × every kind of viewer, on the page, the
raw and download views, the delete page and the API. A private paste is
404 to anyone but its owner, exactly like a paste that does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from srht_plugins.paste.models import Paste, PasteFile

from .conftest import PasteSite

pytestmark = pytest.mark.postgres

VISIBILITIES = ("public", "unlisted", "private")
VIEWERS = ("anonymous", "other", "owner")

#: The status each viewer gets for a paste of each visibility, on the paste
#: page and its raw and download views, and from GET /api/pastes/<id>.
READ = {
    ("public", "anonymous"): 200,
    ("public", "other"): 200,
    ("public", "owner"): 200,
    ("unlisted", "anonymous"): 200,
    ("unlisted", "other"): 200,
    ("unlisted", "owner"): 200,
    ("private", "anonymous"): 404,
    ("private", "other"): 404,
    ("private", "owner"): 200,
}
#: DELETE /api/pastes/<id>: no token is 401; another user may not delete
#: what they can see (403) and cannot see a private paste at all (404).
API_DELETE = {
    ("public", "anonymous"): 401,
    ("public", "other"): 403,
    ("unlisted", "anonymous"): 401,
    ("unlisted", "other"): 403,
    ("private", "anonymous"): 401,
    ("private", "other"): 404,
}


@pytest.fixture
def pastes(paste_site: PasteSite) -> dict[str, Any]:
    """alice's three pastes, one of each visibility, and who may look."""
    alice = paste_site.user("alice")
    bob = paste_site.user("bob")
    slugs = {}
    with paste_site.db() as session:
        for visibility in VISIBILITIES:
            paste = Paste(
                slug=f"{VISIBILITIES.index(visibility):016x}", owner_id=alice, visibility=visibility
            )
            paste.files = [
                PasteFile(
                    position=1,
                    filename=f"{visibility}.txt",
                    content=f"a {visibility} secret",
                    size=10,
                )
            ]
            session.add(paste)
            slugs[visibility] = paste.slug
    users = {"anonymous": None, "other": bob, "owner": alice}
    return {"slugs": slugs, "users": users}


def test_pages_raw_and_download(paste_site: PasteSite, pastes: dict[str, Any]) -> None:
    wrong = []
    for (visibility, viewer), expected in READ.items():
        browser = paste_site.browser(pastes["users"][viewer])
        base = f"/~alice/{pastes['slugs'][visibility]}"
        for path in (base, base + "/raw/1", base + "/download/1"):
            answer = browser.get(path)
            if answer.status_code != expected:
                wrong.append(
                    f"{viewer} GET {path} ({visibility}): {answer.status_code}, expected {expected}"
                )
            elif expected == 404 and f"a {visibility} secret" in answer.get_data(as_text=True):
                wrong.append(f"{viewer} GET {path} ({visibility}) shows the content")
        # Under the wrong user's name, no paste is found.
        if browser.get(f"/~bob/{pastes['slugs'][visibility]}").status_code != 404:
            wrong.append(f"{viewer} found alice's {visibility} paste under ~bob")
    assert not wrong, "\n".join(wrong)


def test_delete_page(paste_site: PasteSite, pastes: dict[str, Any]) -> None:
    meta = paste_site.state.origins["meta"]
    for visibility in VISIBILITIES:
        path = f"/~alice/{pastes['slugs'][visibility]}/delete"
        anonymous = paste_site.browser().get(path)
        assert anonymous.status_code == 302, visibility
        assert anonymous.headers["Location"].startswith(meta + "/login")
        assert paste_site.browser(pastes["users"]["other"]).get(path).status_code == 404
        assert paste_site.browser(pastes["users"]["owner"]).get(path).status_code == 200


def test_the_users_list(paste_site: PasteSite, pastes: dict[str, Any]) -> None:
    for viewer, user_id in pastes["users"].items():
        listed = paste_site.browser(user_id).get("/~alice").get_data(as_text=True)
        for visibility, slug in pastes["slugs"].items():
            expected = viewer == "owner" or visibility == "public"
            assert (slug in listed) == expected, (viewer, visibility)


def test_api_read(paste_site: PasteSite, pastes: dict[str, Any]) -> None:
    wrong = []
    for (visibility, viewer), expected in READ.items():
        user_id = pastes["users"][viewer]
        token = None if user_id is None else paste_site.token(user_id, "paste/pastes:RO")
        answer = paste_site.api("GET", f"/api/pastes/{pastes['slugs'][visibility]}", token)
        if answer.status_code != expected:
            wrong.append(f"{viewer} ({visibility}): {answer.status_code}, expected {expected}")
        elif expected == 200:
            assert answer.json["files"][0]["content"] == f"a {visibility} secret"
        else:
            assert answer.json == {"errors": [{"field": "id", "reason": "no such paste"}]}
    assert not wrong, "\n".join(wrong)

    # The list is the token owner's own, private pastes included; bob's is empty.
    alice = paste_site.token(pastes["users"]["owner"], "paste/pastes:RO")
    bob = paste_site.token(pastes["users"]["other"], "paste/pastes:RO")
    mine = paste_site.api("GET", "/api/pastes", alice).json["results"]
    assert {p["visibility"] for p in mine} == set(VISIBILITIES)
    assert paste_site.api("GET", "/api/pastes", bob).json["results"] == []
    assert paste_site.api("GET", "/api/pastes").status_code == 401


def test_api_delete(paste_site: PasteSite, pastes: dict[str, Any]) -> None:
    for (visibility, viewer), expected in API_DELETE.items():
        user_id = pastes["users"][viewer]
        token = None if user_id is None else paste_site.token(user_id, "paste/pastes:RW")
        answer = paste_site.api("DELETE", f"/api/pastes/{pastes['slugs'][visibility]}", token)
        assert answer.status_code == expected, (visibility, viewer)
        assert answer.json["errors"][0]["reason"]
    owner = paste_site.token(pastes["users"]["owner"], "paste/pastes:RW")
    for visibility in VISIBILITIES:
        path = f"/api/pastes/{pastes['slugs'][visibility]}"
        assert paste_site.api("DELETE", path, owner).status_code == 204
        assert paste_site.api("GET", path, owner).status_code == 404
