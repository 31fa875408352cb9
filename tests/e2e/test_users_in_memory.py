"""The user behind a token or a login cookie is kept in memory by each
worker (issue 16 item 3), and no worker serves it past a change to its row.

meta runs as one gunicorn process and chores (the test service) as
``srht serve`` with two workers, each on its own PostgreSQL database. alice
signs in at meta and holds a token for chores. Once both chores workers
answer her from memory (the ``srht_kept_users`` counter says so), meta's
identity events suspend her, make her an admin, reinstate her and delete
her mirror, as meta's job would send them; each change holds on both
workers at once, one held busy while the other answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import wait_until
from support.accounts import create_user, log_in, srht

from srht_core import TokenGrant, seal_grant
from srht_core.config import Config, dump_ini
from srht_core.testing import free_port, serve_service, site_config
from srht_core.webhooks import signed_headers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def site(
    tmp_path: Path,
    srht_postgres: Any,
    support_venv: Any,
    chores_plugin: Any,
    register_plugin: Any,
    make_app: Any,
) -> Iterator[dict[str, Any]]:
    import srht_plugins.meta

    register_plugin(srht_plugins.meta, "meta")  # its section must be known to chores here
    ports = {name: free_port() for name in ("meta", "chores")}
    hold = tmp_path / "hold"
    hold.mkdir()
    data = site_config(
        tmp_path / "data",
        {
            "meta": {
                "origin": f"http://127.0.0.1:{ports['meta']}",
                "connection-string": srht_postgres.create_database(),
            },
            "chores": {
                "origin": f"http://127.0.0.1:{ports['chores']}",
                "connection-string": srht_postgres.create_database(),
                "hold-dir": str(hold),
                "workers": 2,
            },
        },
    )
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    # meta's processes run without chores installed: their config leaves it out.
    meta_config = tmp_path / "meta.ini"
    meta_config.write_text(dump_ini({k: v for k, v in data.items() if k != "chores"}))
    srht(meta_config, "migrate")
    migrated = support_venv.srht("migrate", config=config)
    assert migrated.returncode == 0, migrated.stderr
    alice = create_user(meta_config, "alice")
    # A token meta knows (its id), carrying the scope chores wants: meta's
    # command line knows only meta's scopes, so the grant is sealed here.
    srht(meta_config, "meta", "token", "alice", "--scopes", "meta/profile:RO")
    chores = make_app("chores", Config.from_string(config.read_text(), str(config)))
    with chores.app_context():
        token = seal_grant(TokenGrant("pat", 1, alice, frozenset({"chores/chores:RO"}), None))
    with (
        serve_service("meta", meta_config, port=ports["meta"]) as meta,
        serve_service(
            "chores", config, python=support_venv.python, workers=2, port=ports["chores"]
        ) as url,
    ):
        yield {
            "url": url,
            "meta": meta,
            "hold": hold,
            "alice": alice,
            "token": token,
            "chores": chores,
        }


class Held:
    """A request to ``/hold/<name>`` keeping one worker busy until released."""

    def __init__(self, url: str, hold: Path, name: str):
        self.release_file = hold / f"{name}.release"
        self.thread = threading.Thread(
            target=lambda: requests.get(f"{url}/hold/{name}", timeout=90)
        )
        self.thread.start()
        started = hold / f"{name}.started"
        wait_until(started.exists, what=f"a worker to take /hold/{name}")
        self.pid = int(started.read_text())

    def release(self) -> None:
        self.release_file.touch()
        self.thread.join()


def from_each_worker(site: dict[str, Any], ask: Callable[[], Any]) -> list[Any]:
    """What ``ask()`` gets from each of the two workers (the other held busy)."""
    url, hold = site["url"], site["hold"]
    tag = f"w{len(list(hold.iterdir()))}"
    first = Held(url, hold, f"{tag}a")
    try:
        one = ask()  # the worker not holding
        second = Held(url, hold, f"{tag}b")  # the only one free: the one that answered
    finally:
        first.release()
    try:
        other = ask()
    finally:
        second.release()
    assert first.pid != second.pid  # two workers answered
    return [one, other]


def kept_users(site: dict[str, Any]) -> dict[str, float]:
    """``srht_kept_users`` of both workers, added up: ``{"hit": n, "miss": n}``."""
    metrics = requests.get(site["url"] + "/metrics", timeout=30).text
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "srht_kept_users_total"
    }


def identity_event(site: dict[str, Any], event: str, data: dict[str, Any]) -> None:
    """POST a signed identity event to chores, as meta's job does."""
    body = json.dumps({"event": event, "data": data}).encode()
    with site["chores"].app_context():
        headers = signed_headers(body)
    answer = requests.post(site["url"] + "/_srht/identity", data=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


def test_no_worker_serves_a_kept_user_past_a_change_to_its_row(site: dict[str, Any]) -> None:
    bearer = {"Authorization": f"Bearer {site['token']}"}
    browser = log_in(site["meta"], "alice")

    def both() -> list[tuple[Any, Any]]:
        """``(token's answer, cookie's answer)`` from each worker."""

        def ask() -> tuple[Any, Any]:
            me = requests.get(site["url"] + "/api/me", headers=bearer, timeout=30)
            who = browser.get(site["url"] + "/whoami", timeout=30).json()["user"]
            return (me.status_code, me.json()), who

        return from_each_worker(site, ask)

    alice = (200, {"id": site["alice"], "username": "alice"}), "alice"
    assert both() == [alice, alice]  # each worker reads alice once and starts its row feed

    def kept_by_both() -> bool:
        before = kept_users(site).get("hit", 0)
        answers = both()
        return answers == [alice, alice] and kept_users(site)["hit"] >= before + 4

    wait_until(kept_by_both, what="both workers to answer alice from memory")

    def on_both(expected: tuple[Any, Any]) -> None:
        """Every worker answers ``expected`` once the change's notification
        has reached it (the worker that took the event at once, the other
        as soon as PostgreSQL tells it), and keeps answering it."""
        wait_until(lambda: both() == [expected, expected], what=f"both workers to say {expected}")
        assert both() == [expected, expected]

    profile = {"id": site["alice"], "username": "alice", "email": "alice@example.org"}
    identity_event(site, "user:update", {**profile, "user_type": "suspended"})
    on_both(((403, {"errors": [{"reason": "this account is suspended"}]}), None))

    identity_event(site, "user:update", {**profile, "user_type": "active"})
    on_both(alice)
    wait_until(kept_by_both, what="both workers to keep alice again")

    identity_event(site, "user:update", {**profile, "username": "alicia"})
    on_both(((200, {"id": site["alice"], "username": "alicia"}), "alicia"))

    # Her mirror deleted at chores: each worker asks meta again on first
    # sight (where she is still alice), as it did before anything was kept.
    identity_event(site, "user:delete", {"id": site["alice"]})
    on_both(alice)
