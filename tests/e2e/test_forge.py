"""The forge as a person uses it: meta, todo and paste as separate gunicorn
processes on separate ports with one shared config and real PostgreSQL.
Sign in at meta in headless Chromium, create a tracker, a ticket and a paste
in the browser, then read them back through the APIs with a personal access
token issued by meta."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from srht_core.config import dump_ini
from srht_core.testing import free_port, serve_service, site_config

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "a long enough password"
SERVICES = ("meta", "todo", "paste")


def srht(config: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "srht_core.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def forge(tmp_path: Path, srht_postgres: Any) -> Iterator[dict[str, str]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI=true (scripts/test installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    ports = {name: free_port() for name in SERVICES}
    data = site_config(
        tmp_path / "data",
        {
            name: {
                "origin": f"http://127.0.0.1:{ports[name]}",
                "connection-string": srht_postgres.create_database(),
            }
            for name in SERVICES
        },
    )
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    srht(config, "migrate")
    srht(
        config,
        "meta",
        "create-user",
        "alice",
        "--email",
        "alice@example.org",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    with (
        serve_service("meta", config, port=ports["meta"]) as meta,
        serve_service("todo", config, port=ports["todo"]) as todo,
        serve_service("paste", config, port=ports["paste"]) as paste,
    ):
        yield {"meta": meta, "todo": todo, "paste": paste, "config": str(config)}


def test_a_tracker_a_ticket_and_a_paste_made_in_the_browser_read_back_by_api(
    forge: dict[str, str],
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page()
            page.goto(forge["todo"] + "/trackers/create")
            assert page.url.startswith(forge["meta"] + "/login")  # sent to sign in first
            page.fill("#username", "alice")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.url == forge["todo"] + "/trackers/create"

            page.fill("#name", "bugs")
            page.fill("#description", "Where *bugs* go.")
            page.click("form button[type=submit]")
            assert page.url.rstrip("/") == forge["todo"] + "/~alice/bugs"

            page.fill("#title", "The <b>frobnicator</b> is stuck")
            page.fill("#description", "It says `42` and stops.")
            page.locator("#title").press("Enter")
            page.goto(forge["todo"] + "/~alice/bugs/1")
            # The title is text, escaped, not markup.
            assert (
                page.locator("h2.ticket-title").inner_text() == "#1 The <b>frobnicator</b> is stuck"
            )
            assert page.locator("code", has_text="42").count() >= 1

            page.goto(forge["paste"] + "/")
            page.fill("#files-0-filename", "hello.py")
            page.fill("#files-0-content", "print('hello')\n")
            page.click("button[name=create]")
            assert "/~alice/" in page.url
            assert page.locator(".highlight").count() >= 1  # highlighted as Python
        finally:
            chromium.close()

    token = (
        srht(
            Path(forge["config"]),
            "meta",
            "token",
            "alice",
            "--scopes",
            "todo/trackers:RO todo/tickets:RO paste/pastes:RO",
        )
        .strip()
        .splitlines()[-1]
    )
    bearer = {"Authorization": f"Bearer {token}"}
    ticket = requests.get(
        forge["todo"] + "/api/trackers/alice/bugs/tickets/1", headers=bearer, timeout=30
    )
    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["title"] == "The <b>frobnicator</b> is stuck"
    pastes = requests.get(forge["paste"] + "/api/pastes", headers=bearer, timeout=30)
    assert pastes.status_code == 200, pastes.text
    [listed] = pastes.json()["results"]
    one = requests.get(
        forge["paste"] + f"/api/pastes/{listed['id']}", headers=bearer, timeout=30
    ).json()
    assert [(f["filename"], f["content"]) for f in one["files"]] == [
        ("hello.py", "print('hello')\n")
    ]
    # The same token cannot write: it was issued read-only.
    refused = requests.post(
        forge["paste"] + "/api/pastes",
        headers=bearer,
        timeout=30,
        json={"files": [{"filename": "x", "content": "y"}]},
    )
    assert refused.status_code == 403
