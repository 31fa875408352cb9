"""A page's SQL statement count does not grow with what it shows: a user's
list with 5 or 100 pastes, a paste with 1 or 20 files, the API list."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from srht_plugins.paste.models import Paste, PasteFile

from .conftest import PasteSite

pytestmark = pytest.mark.postgres


def add_pastes(
    site: PasteSite, owner: int, count: int, *, files: int = 2, visibility: str = "public"
) -> list[str]:
    slugs = []
    with site.db() as session:
        for _ in range(count):
            paste = Paste(slug=secrets.token_hex(8), owner_id=owner, visibility=visibility)
            paste.files = [
                PasteFile(
                    position=n, filename=f"file{n}.py", size=12, content=f"x = {n}\nprint(x)\n"
                )
                for n in range(1, files + 1)
            ]
            session.add(paste)
            slugs.append(paste.slug)
    return slugs


def statements(site: PasteSite, client: Any, path: str, **kwargs: Any) -> int:
    with site.db_extension.count_statements() as counted:
        answer = client.get(path, **kwargs)
    assert answer.status_code == 200, path
    return counted[0]


def test_a_users_list(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    owner = paste_site.browser(alice).client
    anonymous = paste_site.browser().client
    add_pastes(paste_site, alice, 5)
    few = (statements(paste_site, owner, "/~alice"), statements(paste_site, anonymous, "/~alice"))
    add_pastes(paste_site, alice, 95, files=5)
    many = (
        statements(paste_site, owner, "/~alice"),
        statements(paste_site, anonymous, "/~alice"),
        statements(paste_site, anonymous, "/~alice?page=3"),
    )
    assert few == many[:2] and many[2] == many[1]


def test_a_paste_with_one_or_twenty_files(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    [one] = add_pastes(paste_site, alice, 1, files=1)
    [twenty] = add_pastes(paste_site, alice, 1, files=20)
    for client in (paste_site.browser(alice).client, paste_site.browser().client):
        assert statements(paste_site, client, f"/~alice/{one}") == statements(
            paste_site, client, f"/~alice/{twenty}"
        )


def test_the_api_list(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    headers = {"Authorization": "Bearer " + paste_site.token(alice, "paste/pastes:RO")}
    client = paste_site.app.test_client()
    add_pastes(paste_site, alice, 5)
    few = statements(paste_site, client, "/api/pastes?limit=100", headers=headers)
    add_pastes(paste_site, alice, 95, files=5)
    assert statements(paste_site, client, "/api/pastes?limit=100", headers=headers) == few
