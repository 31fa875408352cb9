"""A deleted account's credentials die with it, on every service (issue 15
item 1), as the issue's repro goes: meta and todo run as gunicorn processes
on their own ports and PostgreSQL databases; gina takes a token and logs in,
uses both at todo, an admin deletes her at meta's pages, hank signs up, and
todo refuses gina's token and cookie, creating nothing as hank.

No worker runs, so meta's ``user:delete`` event never reaches todo: todo's
copy of gina stays, and the refusal comes from meta's revocations list alone
(a service whose event was late or lost must still refuse).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.accounts import create_user, csrf, log_in, srht

from srht_core import revocation
from srht_core.config import dump_ini
from srht_core.testing import free_port, serve_service, site_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def signed_in_as(browser: requests.Session, origin: str) -> str | None:
    """The name the page header of ``origin`` shows, ``None`` if nobody."""
    page = browser.get(origin + "/", timeout=30).text
    account = page.split('<div class="account">', 1)[1].split("</div>", 1)[0]
    found = re.search(r">(~[\w.-]+)</a>", account)
    return found.group(1) if found else None


@pytest.fixture
def site(tmp_path: Path, srht_postgres: Any) -> Iterator[dict[str, Any]]:
    ports = {name: free_port() for name in ("meta", "todo")}
    data = site_config(
        tmp_path / "data",
        {
            name: {
                "origin": f"http://127.0.0.1:{port}",
                "connection-string": srht_postgres.create_database(),
            }
            for name, port in ports.items()
        },
    )
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    srht(config, "migrate")
    with (
        serve_service("meta", config, port=ports["meta"]) as meta,
        serve_service("todo", config, port=ports["todo"]) as todo,
    ):
        yield {"meta": meta, "todo": todo, "config": config}


def test_a_deleted_accounts_token_and_cookie_are_refused_everywhere(
    site: dict[str, Any],
) -> None:
    meta, todo, config = site["meta"], site["todo"], site["config"]
    create_user(config, "ada", "--admin")
    gina_id = create_user(config, "gina")
    token = srht(config, "meta", "token", "gina", "--scopes", "todo/trackers:RW")
    bearer = {"Authorization": f"Bearer {token.strip().splitlines()[-1]}"}
    gina = log_in(meta, "gina")

    # Both work at todo, as gina.
    trackers = todo + "/api/trackers"
    made = requests.post(trackers, json={"name": "before"}, headers=bearer, timeout=30)
    assert made.status_code == 201, made.text
    assert made.json()["owner"]["username"] == "gina"
    assert signed_in_as(gina, todo) == "~gina"

    # An admin deletes gina at meta's pages, after typing her name.
    admin = log_in(meta, "ada")
    question = admin.get(meta + "/admin/users/gina/delete", timeout=30)
    assert question.status_code == 200 and "Delete ~gina?" in question.text
    deleted = admin.post(
        meta + "/admin/users/gina/delete",
        data={"csrf_token": csrf(question.text), "confirmed": "yes", "typed": "gina"},
        timeout=30,
    )
    assert "~gina is deleted, here and on every service." in deleted.text
    hank_id = create_user(config, "hank")
    assert hank_id != gina_id

    # Within the revocation interval, todo refuses both; while it has not
    # asked meta yet, nothing it accepts acts as hank.
    tries = iter(range(10_000))

    def refused() -> bool:
        attempt = requests.post(
            trackers, json={"name": f"after{next(tries)}"}, headers=bearer, timeout=30
        )
        if attempt.status_code == 201:
            assert attempt.json()["owner"]["username"] != "hank"
        return attempt.status_code == 401 and signed_in_as(gina, todo) is None

    deadline = time.monotonic() + revocation.REVOCATION_INTERVAL + revocation.RETRY_INTERVAL + 15
    while not refused():
        assert time.monotonic() < deadline, "todo still takes gina's token or cookie"
        time.sleep(1)

    answer = requests.post(trackers, json={"name": "late"}, headers=bearer, timeout=30)
    assert answer.status_code == 401
    assert answer.json() == {"errors": [{"reason": "the token has been revoked"}]}
    page = gina.get(todo + "/", timeout=30).text
    account = page.split('<div class="account">', 1)[1].split("</div>", 1)[0]
    assert "~" not in account and ">Log in</a>" in account  # signed in as nobody

    # hank owns nothing at todo.
    hank_token = srht(config, "meta", "token", "hank", "--scopes", "todo/trackers:RO")
    hank = {"Authorization": f"Bearer {hank_token.strip().splitlines()[-1]}"}
    listed = requests.get(todo + "/api/users/hank/trackers", headers=hank, timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.json()["results"] == []
