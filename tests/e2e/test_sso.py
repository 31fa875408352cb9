"""Single sign-on across services, as a person sees it.

meta and the chores service run as separate gunicorn processes on separate
ports with one shared config and their own PostgreSQL databases; meta's
worker delivers identity events. Headless Chromium (Debian's) logs in at
meta, is signed in at chores, is signed out there after logging out, and a
suspension at meta reaches chores through a signed identity event.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
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


@pytest.fixture
def site(
    tmp_path: Path, srht_postgres: Any, support_venv: Any, process_log: Any
) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI=true (scripts/test installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    meta_port, chores_port = free_port(), free_port()
    data = site_config(
        tmp_path / "data",
        {
            "meta": {
                "origin": f"http://127.0.0.1:{meta_port}",
                "connection-string": srht_postgres.create_database(),
            },
            "chores": {
                "origin": f"http://127.0.0.1:{chores_port}",
                "connection-string": srht_postgres.create_database(),
                "hold-dir": str(tmp_path / "hold"),
            },
        },
    )
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    migrated = support_venv.srht("migrate", config=config)
    assert migrated.returncode == 0, migrated.stderr
    created = subprocess.run(
        [
            support_venv.python,
            "-m",
            "srht_core.cli",
            "--config",
            str(config),
            "meta",
            "create-user",
            "alice",
            "--email",
            "alice@example.org",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    worker = support_venv.popen("worker", "meta", config=config, log=process_log("worker"))
    try:
        with (
            serve_service("meta", config, python=support_venv.python, port=meta_port) as meta,
            serve_service("chores", config, python=support_venv.python, port=chores_port) as chores,
        ):
            yield {"meta": meta, "chores": chores, "config": config, "python": support_venv.python}
    finally:
        worker.terminate()
        worker.wait(15)


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium.new_page()
        finally:
            chromium.close()


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_sign_on_spans_services_and_follows_identity_events(site: dict[str, Any]) -> None:
    meta, chores = site["meta"], site["chores"]
    with browser() as page:
        page.goto(chores + "/")
        # Signed out: Log in, and Register (meta's registration is open).
        assert page.locator("header .account").inner_text().split() == ["Log", "in", "Register"]
        page.click("header .account a:text-is('Log in')")
        assert page.url.startswith(meta + "/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        # Back where we started, signed in there too.
        assert page.url.rstrip("/") == chores
        assert "~alice" in page.locator("header .account").inner_text()

        page.goto(meta + "/")
        assert page.locator("h1").inner_text() == "~alice"

        # Logging out at meta signs out of every service.
        page.goto(chores + "/")
        page.click("text=Log out")
        assert page.url.startswith(meta + "/logout")
        page.click("button[type=submit]")
        page.goto(chores + "/")
        assert page.locator("header .account").inner_text().split() == ["Log", "in", "Register"]

        # Log in again, then meta suspends the account: chores learns it from
        # a signed identity event delivered by meta's worker.
        page.goto(meta + "/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(chores + "/")
        assert "~alice" in page.locator("header .account").inner_text()

        suspend = (
            "from srht_core import create_app, db_session\n"
            "from srht_plugins.meta.accounts import find_user, set_user_type\n"
            f"app = create_app('meta', {str(site['config'])!r})\n"
            "with app.app_context():\n"
            "    set_user_type(find_user('alice'), 'suspended', 'Spam.')\n"
            "    db_session.commit()\n"
        )
        subprocess.run([site["python"], "-c", suspend], check=True, timeout=60)

        def signed_out_at_chores() -> bool:
            page.goto(chores + "/")
            return "~alice" not in page.locator("header .account").inner_text()

        wait_until(signed_out_at_chores)

    # The refusal at meta's login tells the user why.
    session = requests.Session()
    form = session.get(meta + "/login").text
    token = form.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    answer = session.post(
        meta + "/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}
    )
    assert answer.status_code == 400
    assert "This account is suspended: Spam." in answer.text
