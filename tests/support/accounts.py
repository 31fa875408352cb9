"""A site's accounts as a test drives them from outside: the ``srht`` CLI
on a config (``srht``, ``create_user``) and meta's login form over HTTP
(``log_in``, reading the form's CSRF token with ``csrf``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests

PASSWORD = "a long enough password"


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


def create_user(config: Path, name: str, *flags: str) -> int:
    out = srht(
        config,
        "meta",
        "create-user",
        name,
        "--email",
        f"{name}@example.org",
        "--password-stdin",
        *flags,
        stdin=PASSWORD + "\n",
    )
    found = re.search(r"\(id (\d+)\)", out)
    assert found, out
    return int(found.group(1))


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert found, page
    return found.group(1)


def log_in(meta: str, name: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(meta + "/login", timeout=30).text
    answer = browser.post(
        meta + "/login",
        data={"csrf_token": csrf(form), "username": name, "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 200 and f"~{name}" in answer.text, answer.text
    return browser
