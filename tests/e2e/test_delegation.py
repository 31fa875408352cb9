"""A service acting for a user (:func:`srht_core.delegated_token`), as hub
and builds do: todo's code asks meta, running under gunicorn on its own
port and PostgreSQL database, for a token speaking for gina, and the token
works on todo's public REST API as gina with the scopes asked for, and no
others. meta refuses a suspended account, an unknown user and a scope the
site does not offer, each with its reason; meta being down is a 503 that
names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.accounts import create_user, csrf, log_in, srht

from srht_core import ApiError, delegated_token
from srht_core.app import create_app
from srht_core.config import Config, dump_ini
from srht_core.testing import free_port, serve_service, site_config
from srht_core.tokens import verify_token

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, srht_postgres: Any) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("delegation")
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
        app = create_app("todo", config)
        yield {"meta": meta, "todo": todo, "config": config, "data": data, "app": app}


def ask(site: dict[str, Any], user_id: int, *scopes: str) -> str:
    """What todo's own code gets when it asks meta for a token for ``user_id``."""
    with site["app"].app_context():
        return delegated_token(user_id, scopes)


def test_a_delegated_token_acts_for_the_user_with_the_scopes_asked_for(
    site: dict[str, Any],
) -> None:
    gina = create_user(site["config"], "gina")
    token = ask(site, gina, "todo/trackers:RW")
    bearer = {"Authorization": f"Bearer {token}"}
    made = requests.post(
        site["todo"] + "/api/trackers", json={"name": "for-gina"}, headers=bearer, timeout=30
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner"]["username"] == "gina"

    # Nothing beyond the scopes asked for: tickets are another scope.
    tickets = requests.get(
        site["todo"] + "/api/trackers/~gina/for-gina/tickets", headers=bearer, timeout=30
    )
    assert tickets.status_code == 403, tickets.text
    assert "todo/tickets" in tickets.text

    # It names the service that asked, lasts a quarter of an hour, and is
    # kept: asking again within its life gives the same token.
    with site["app"].app_context():
        grant = verify_token(token)
    assert (grant.kind, grant.user_id, grant.client_id) == ("delegated", gina, "todo")
    assert grant.scopes == frozenset({"todo/trackers:RW"})
    assert ask(site, gina, "todo/trackers:RW") == token


def test_meta_refuses_what_it_should_and_says_why(site: dict[str, Any]) -> None:
    hank = create_user(site["config"], "hank")
    with pytest.raises(ApiError) as unknown_scope:
        ask(site, hank, "nosuch/thing:RO")
    assert unknown_scope.value.status == 403
    assert "unknown scope nosuch/thing:RO" in unknown_scope.value.reason

    with pytest.raises(ApiError) as nobody:
        ask(site, 424242, "todo/trackers:RO")
    assert (nobody.value.status, nobody.value.reason) == (
        403,
        "meta gives no token for user 424242: no such user",
    )

    # An admin suspends hank at meta's pages: meta gives no more tokens for him.
    create_user(site["config"], "ada", "--admin")
    admin = log_in(site["meta"], "ada")
    page = admin.get(site["meta"] + "/admin/users/hank", timeout=30)
    suspended = admin.post(
        site["meta"] + "/admin/users/hank/suspend",
        data={"csrf_token": csrf(page.text), "notice": "spam"},
        timeout=30,
    )
    assert "~hank is suspended" in suspended.text
    with pytest.raises(ApiError) as refused:
        ask(site, hank, "todo/trackers:RO")
    assert refused.value.status == 403
    assert "~hank's account is suspended" in refused.value.reason


def test_a_token_sealed_for_a_suspended_account_is_refused_where_it_is_used(
    site: dict[str, Any],
) -> None:
    """What meta gave before a suspension stops working at meta at once."""
    ivy = create_user(site["config"], "ivy")
    token = ask(site, ivy, "meta/profile:RO")
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(site["meta"] + "/api/user", headers=bearer, timeout=30).status_code == 200
    admin = log_in(site["meta"], "ada")
    page = admin.get(site["meta"] + "/admin/users/ivy", timeout=30)
    admin.post(
        site["meta"] + "/admin/users/ivy/suspend",
        data={"csrf_token": csrf(page.text), "notice": "spam"},
        timeout=30,
    )
    answer = requests.get(site["meta"] + "/api/user", headers=bearer, timeout=30)
    assert answer.status_code == 403 and "suspended" in answer.text


def test_meta_being_down_is_a_503_naming_it(site: dict[str, Any]) -> None:
    data = {name: dict(section) for name, section in site["data"].items()}
    data["meta"]["origin"] = f"http://127.0.0.1:{free_port()}"
    away = create_app("todo", Config.from_dict(data))
    with away.app_context(), pytest.raises(ApiError) as down:
        delegated_token(1, ["todo/trackers:RO"])
    assert down.value.status == 503
    assert down.value.reason.startswith("meta could not be asked for a token")
