"""hub with the services it groups, each a gunicorn of its own on its own
port and PostgreSQL database, and their workers (``srht worker``)
delivering webhooks: alice makes a repository, a tracker and a project in
their web pages, attaches both, and what she pushes and what bob reports
reaches the project's feed. hub reads them only over HTTP (their
``/api/resource-types``, their REST APIs with a token meta delegates,
their signed webhooks), as it would from another host.

A second, smaller site runs only meta, todo and hub.
"""

from __future__ import annotations

import mailbox
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import requests
from support.accounts import create_user, csrf, log_in, srht

from srht_core.config import dump_ini
from srht_core.testing import free_port, serve_service, site_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: How long a webhook may take from the service's worker to hub's feed.
DELIVERY_TIME = 60.0


def wait_until(check: Callable[[], Any], what: str, timeout: float = DELIVERY_TIME) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def worker(config: Path, service: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``srht worker SERVICE``, stopped by its PID afterwards."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "srht_core.cli", "--config", str(config), "worker", service],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_site(
    tmp_path: Path, postgres: Any, services: tuple[str, ...], stack: ExitStack
) -> dict[str, Any]:
    ports = {name: free_port() for name in services}
    sections: dict[str, dict[str, Any]] = {
        name: {
            "origin": f"http://127.0.0.1:{port}",
            "connection-string": postgres.create_database(),
        }
        for name, port in ports.items()
    }
    if "git" in sections:
        sections["git"]["repos"] = str(tmp_path / "repos")
    data = site_config(tmp_path / "data", sections)
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    srht(config, "migrate")
    site: dict[str, Any] = {"config": config, "ports": ports, "servers": {}}
    for name in services:
        # Each gunicorn in a stack of its own, which a test may close to
        # stop that service (and open again).
        server = site["servers"][name] = stack.enter_context(ExitStack())
        site[name] = server.enter_context(serve_service(name, config, port=ports[name]))
        stack.enter_context(worker(config, name, tmp_path / f"worker-{name}.log"))
    return site


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory, srht_postgres: Any) -> Iterator[dict[str, Any]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    tmp_path = tmp_path_factory.mktemp("hub")
    with ExitStack() as stack:
        site = start_site(tmp_path, srht_postgres, ("meta", "git", "todo", "lists", "hub"), stack)
        site["tmp"] = tmp_path
        for name in ("alice", "bob"):
            create_user(site["config"], name)
        yield site


def submit(browser: requests.Session, page: str, fields: dict[str, str], action: str = "") -> Any:
    """Post the form of ``page`` (to ``action``, default: the page) as a
    browser does, CSRF token included."""
    form = browser.get(page, timeout=30)
    assert form.status_code == 200, form.text[-2000:]
    data = {"csrf_token": csrf(form.text), **fields}
    return browser.post(action or page, data=data, timeout=60, allow_redirects=False)


def text(answer: Any) -> str:
    return unescape(answer.text)


def token(site: dict[str, Any], user: str, scopes: str) -> str:
    out = srht(site["config"], "meta", "token", user, "--scopes", scopes)
    return out.strip().splitlines()[-1]


def push(site: dict[str, Any], repo: str, secret: str, message: str) -> None:
    work = site["tmp"] / f"work-{repo}-{time.monotonic_ns()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(site["tmp"]),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.org",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.org",
    }
    host = site["git"].removeprefix("http://")
    url = f"http://git:{secret}@{host}/~alice/{repo}"
    for args in (
        ("init", "-q", "-b", "main", str(work)),
        ("-C", str(work), "commit", "-q", "--allow-empty", "-m", message),
        ("-C", str(work), "push", "-q", url, "main"),
    ):
        done = subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def attach(alice: requests.Session, site: dict[str, Any], value: str) -> Any:
    page = f"{site['hub']}/~alice/tools/resources"
    return submit(alice, page, {"resource": value})


def hub_webhooks(site: dict[str, Any], secret: str, path: str, service: str) -> list[Any]:
    answer = requests.get(
        f"{site[service]}{path}", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return [h for h in answer.json()["results"] if h["url"].startswith(site["hub"])]


def test_a_project_groups_a_repository_and_a_tracker_and_shows_their_activity(
    forge: dict[str, Any],
) -> None:
    alice, bob = log_in(forge["meta"], "alice"), log_in(forge["meta"], "bob")
    made = submit(alice, forge["git"] + "/create", {"name": "tools", "visibility": "public"})
    assert made.status_code in (302, 303), text(made)[-2000:]
    made = submit(
        alice, forge["todo"] + "/trackers/create", {"name": "tools", "visibility": "public"}
    )
    assert made.status_code in (302, 303), text(made)[-2000:]
    made = submit(
        alice,
        forge["hub"] + "/projects/create",
        {
            "name": "tools",
            "description": "Handy tools",
            "readme": "# Tools",
            "visibility": "public",
        },
    )
    assert made.status_code in (302, 303), text(made)[-2000:]

    offered = text(alice.get(forge["hub"] + "/~alice/tools/resources", timeout=30))
    assert "~alice/tools (git: repository)" in offered
    assert "~alice/tools (todo: tracker)" in offered
    for value in ("git:repository:~alice/tools", "todo:tracker:~alice/tools"):
        answer = attach(alice, forge, value)
        assert answer.status_code in (302, 303), text(answer)[-3000:]
    page = text(requests.get(forge["hub"] + "/~alice/tools", timeout=30))
    assert f'href="{forge["git"]}/~alice/tools"' in page
    assert f'href="{forge["todo"]}/~alice/tools"' in page
    assert "<h1>Tools</h1>" in page

    # hub's worker subscribed to both, as alice, through their public APIs.
    reader = token(forge, "alice", "git/repos:RW todo/trackers:RO todo/tickets:RW")
    wait_until(
        lambda: hub_webhooks(forge, reader, "/api/~alice/repos/tools/webhooks", "git"),
        "hub's webhook on the repository",
    )
    wait_until(
        lambda: hub_webhooks(forge, reader, "/api/trackers/~alice/tools/webhooks", "todo"),
        "hub's webhook on the tracker",
    )

    push(forge, "tools", reader, "First tool")
    reported = submit(
        bob,
        forge["todo"] + "/~alice/tools",
        {"title": "The hammer is missing", "description": "Where is it?"},
        action=forge["todo"] + "/~alice/tools/submit",
    )
    assert reported.status_code in (302, 303), text(reported)[-2000:]

    def feed() -> str:
        return text(requests.get(forge["hub"] + "/~alice/tools", timeout=30))

    wait_until(lambda: "pushed main to ~alice/tools" in feed(), "the push in the feed")
    wait_until(
        lambda: "opened ~alice/tools#1: The hammer is missing" in feed(), "the ticket in the feed"
    )
    events = requests.get(forge["hub"] + "/api/projects/alice/tools/feed", timeout=30).json()
    assert {(e["event"], e["actor"]) for e in events["results"]} >= {
        ("repo:push", "~alice"),
        ("ticket:create", "~bob"),
    }
    assert "The hammer is missing" in text(requests.get(forge["hub"] + "/~alice", timeout=30))
    assert "The hammer is missing" in text(alice.get(forge["hub"] + "/", timeout=30))


def test_a_private_repository_on_a_public_project_is_invisible_to_others(
    forge: dict[str, Any],
) -> None:
    alice, bob = log_in(forge["meta"], "alice"), log_in(forge["meta"], "bob")
    if alice.get(forge["hub"] + "/~alice/tools", timeout=30).status_code == 404:
        submit(alice, forge["hub"] + "/projects/create", {"name": "tools", "visibility": "public"})
    made = submit(alice, forge["git"] + "/create", {"name": "secret", "visibility": "private"})
    assert made.status_code in (302, 303), text(made)[-2000:]
    answer = attach(alice, forge, "git:repository:~alice/secret")
    assert answer.status_code in (302, 303), text(answer)[-3000:]
    reader = token(forge, "alice", "git/repos:RW")
    wait_until(
        lambda: hub_webhooks(forge, reader, "/api/~alice/repos/secret/webhooks", "git"),
        "hub's webhook on the private repository",
    )
    push(forge, "secret", reader, "Secret plans")
    wait_until(
        lambda: (
            "pushed main to ~alice/secret"
            in text(alice.get(forge["hub"] + "/~alice/tools", timeout=30))
        ),
        "the private push in alice's own view",
    )
    bob_token = token(forge, "bob", "hub/projects:RO")
    for who in (bob, requests.Session()):
        for path in ("/~alice/tools", "/~alice", "/explore", "/"):
            assert "~alice/secret" not in text(who.get(forge["hub"] + path, timeout=30)), path
    for headers in ({}, {"Authorization": f"Bearer {bob_token}"}):
        for path in ("resources", "feed"):
            listed = requests.get(
                f"{forge['hub']}/api/projects/alice/tools/{path}", headers=headers, timeout=30
            )
            assert listed.status_code == 200, listed.text
            assert "secret" not in listed.text, (path, listed.text)
    alice_token = token(forge, "alice", "hub/projects:RO")
    mine = requests.get(
        f"{forge['hub']}/api/projects/alice/tools/resources",
        headers={"Authorization": f"Bearer {alice_token}"},
        timeout=30,
    ).json()
    assert "~alice/secret" in {r["title"] for r in mine["results"]}


def test_deleting_the_repository_removes_it_from_the_project(forge: dict[str, Any]) -> None:
    alice = log_in(forge["meta"], "alice")
    if alice.get(forge["hub"] + "/~alice/tools", timeout=30).status_code == 404:
        submit(alice, forge["hub"] + "/projects/create", {"name": "tools", "visibility": "public"})
    made = submit(alice, forge["git"] + "/create", {"name": "doomed", "visibility": "public"})
    assert made.status_code in (302, 303), text(made)[-2000:]
    answer = attach(alice, forge, "git:repository:~alice/doomed")
    assert answer.status_code in (302, 303), text(answer)[-3000:]
    assert "~alice/doomed" in text(requests.get(forge["hub"] + "/~alice/tools", timeout=30))
    gone = submit(
        alice,
        forge["git"] + "/~alice/doomed/settings/delete",
        {"typed": "doomed", "confirmed": "yes"},
    )
    assert gone.status_code in (302, 303), text(gone)[-2000:]
    # The page asks git (its answers are kept 15 seconds at most).
    wait_until(
        lambda: (
            "~alice/doomed" not in text(requests.get(forge["hub"] + "/~alice/tools", timeout=30))
        ),
        "the deleted repository leaving the project",
        timeout=40,
    )
    listed = requests.get(forge["hub"] + "/api/projects/alice/tools/resources", timeout=30)
    assert "doomed" not in listed.text
    resources = text(alice.get(forge["hub"] + "/~alice/tools/resources", timeout=30))
    assert ">~alice/doomed</a>" not in resources


def test_attaching_what_is_not_yours_or_not_there_says_so(forge: dict[str, Any]) -> None:
    alice, bob = log_in(forge["meta"], "alice"), log_in(forge["meta"], "bob")
    if alice.get(forge["hub"] + "/~alice/tools", timeout=30).status_code == 404:
        submit(alice, forge["hub"] + "/projects/create", {"name": "tools", "visibility": "public"})
    submit(bob, forge["hub"] + "/projects/create", {"name": "mine", "visibility": "public"})
    bob_token = token(forge, "bob", "hub/projects:RW")
    for resource in ("~alice/tools", "~bob/nothing"):
        answer = requests.post(
            forge["hub"] + "/api/projects/bob/mine/resources",
            json={"service": "git", "type": "repository", "resource": resource},
            headers={"Authorization": f"Bearer {bob_token}"},
            timeout=30,
        )
        assert answer.status_code == 404, answer.text
        assert answer.json()["errors"] == [
            {
                "field": "resource",
                "reason": f"You have no repository {resource} of your own on git.",
            }
        ]
    answer = requests.post(
        forge["hub"] + "/api/projects/bob/mine/resources",
        json={"service": "paste", "type": "paste", "resource": "x"},
        headers={"Authorization": f"Bearer {bob_token}"},
        timeout=30,
    )
    assert answer.status_code == 503 and "paste did not answer" in answer.text, answer.text


PATCH = "frob: be gentle\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-hard\n+soft\n"


def import_patch(site: dict[str, Any], list_ref: str, subject: str) -> None:
    """A patch in ``list_ref``'s archive, as ``srht lists import`` takes one."""
    message = EmailMessage()
    message["From"] = "Carol <carol@example.org>"
    message["To"] = f"{list_ref}@lists.example.org"
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.monotonic_ns()}@example.org>"
    message["Date"] = "Sun, 06 Dec 2026 09:00:00 +0000"
    message.set_content(PATCH)
    path = site["tmp"] / f"patch-{time.monotonic_ns()}.mbox"
    box = mailbox.mbox(path)
    box.add(message)
    box.close()
    srht(site["config"], "lists", "import", list_ref, str(path))


def test_the_dashboard_says_what_needs_your_attention_and_which_service_is_down(
    forge: dict[str, Any],
) -> None:
    # Users of their own: a dashboard says what it found for a while (per user).
    for name in ("dora", "erin"):
        create_user(forge["config"], name)
    dora, erin = log_in(forge["meta"], "dora"), log_in(forge["meta"], "erin")
    secret = token(forge, "dora", "todo/trackers:RW todo/tickets:RW lists/lists:RW")
    headers = {"Authorization": f"Bearer {secret}"}
    made = requests.post(
        forge["todo"] + "/api/trackers", json={"name": "chores"}, headers=headers, timeout=30
    )
    assert made.status_code == 201, made.text
    for title in ("Water the plants", "Feed the cat"):
        ticket = requests.post(
            forge["todo"] + "/api/trackers/dora/chores/tickets",
            json={"title": title},
            headers=headers,
            timeout=30,
        ).json()
        if title == "Feed the cat":
            assigned = requests.patch(
                f"{forge['todo']}/api/trackers/dora/chores/tickets/{ticket['number']}",
                json={"assignees": ["dora"]},
                headers=headers,
                timeout=30,
            )
            assert assigned.status_code == 200, assigned.text
    made = requests.post(
        forge["lists"] + "/api/lists", json={"name": "devel"}, headers=headers, timeout=30
    )
    assert made.status_code == 201, made.text
    import_patch(forge, "~dora/devel", "[PATCH] frob: be gentle")

    page = text(dora.get(forge["hub"] + "/", timeout=30))
    assert "Needs your attention" in page
    assert f'<a href="{forge["todo"]}/~dora/chores/2">Feed the cat</a>' in page
    assert "Water the plants" not in page
    found = re.search(
        r'<a href="'
        + re.escape(forge["lists"])
        + r'/~dora/devel/patches/(\d+)">frob: be gentle</a>',
        page,
    )
    assert found, page
    patchset = requests.get(f"{forge['lists']}/~dora/devel/patches/{found[1]}", timeout=30)
    assert patchset.status_code == 200 and "frob: be gentle" in text(patchset)

    # lists stops: erin's dashboard still renders, naming it, with todo's part.
    forge["servers"]["lists"].close()
    try:
        page = text(erin.get(forge["hub"] + "/", timeout=30))
        assert "lists did not answer" in page, page
        assert "No open tickets are assigned to you." in page
        assert "Your projects" in page
    finally:
        forge["lists"] = forge["servers"]["lists"].enter_context(
            serve_service("lists", forge["config"], port=forge["ports"]["lists"])
        )


def test_a_profile_links_to_the_users_page_on_each_service_and_each_links_back(
    forge: dict[str, Any],
) -> None:
    alice = log_in(forge["meta"], "alice")
    for service in ("git", "todo", "lists"):
        alice.get(forge[service] + "/", timeout=30)  # each knows alice from her first visit
    profile = text(requests.get(forge["hub"] + "/~alice", timeout=30))
    for service in ("git", "todo", "lists"):
        assert f'href="{forge[service]}/~alice"' in profile, service
        theirs = requests.get(f"{forge[service]}/~alice", timeout=30)
        assert theirs.status_code == 200, (service, theirs.text[-2000:])
        assert f'href="{forge["hub"]}/~alice"' in text(theirs), service
    assert "on paste" not in profile and "on builds" not in profile  # not installed here
    # Nor a service that has not seen the user yet (its page would be a 404).
    create_user(forge["config"], "fred")
    log_in(forge["meta"], "fred").get(forge["todo"] + "/", timeout=30)
    profile = text(requests.get(forge["hub"] + "/~fred", timeout=30))
    assert f'href="{forge["todo"]}/~fred"' in profile
    assert f'href="{forge["git"]}/~fred"' not in profile


@pytest.fixture(scope="module")
def small_site(
    tmp_path_factory: pytest.TempPathFactory, srht_postgres: Any
) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("hub-small")
    with ExitStack() as stack:
        site = start_site(tmp_path, srht_postgres, ("meta", "todo", "hub"), stack)
        create_user(site["config"], "alice")
        yield site


def test_hub_with_only_meta_and_todo(small_site: dict[str, Any]) -> None:
    alice = log_in(small_site["meta"], "alice")
    front = text(requests.get(small_site["hub"] + "/", timeout=30))
    assert "srht test" in front and "Register" in front
    made = submit(
        alice, small_site["todo"] + "/trackers/create", {"name": "bugs", "visibility": "public"}
    )
    assert made.status_code in (302, 303), text(made)[-2000:]
    made = submit(
        alice, small_site["hub"] + "/projects/create", {"name": "app", "visibility": "public"}
    )
    assert made.status_code in (302, 303), text(made)[-2000:]
    page = small_site["hub"] + "/~alice/app/resources"
    offered = text(alice.get(page, timeout=30))
    assert "~alice/bugs (todo: tracker)" in offered and "git" not in offered
    answer = submit(alice, page, {"resource": "todo:tracker:~alice/bugs"})
    assert answer.status_code in (302, 303), text(answer)[-2000:]
    shown = text(requests.get(small_site["hub"] + "/~alice/app", timeout=30))
    assert "~alice/bugs" in shown and "did not answer" not in shown
    profile = text(requests.get(small_site["hub"] + "/~alice", timeout=30))
    assert "~alice/app" in profile and "~alice/bugs" in profile
    assert re.search(r"Trackers\s*<span", profile)


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


def confirmation_link(outbox: Path, meta: str) -> str:
    """The link in the newest message of the outbox."""
    newest = max(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime)
    found = re.search(re.escape(meta) + r"/confirm/\S+", newest.read_text(errors="replace"))
    assert found, newest.read_text(errors="replace")
    return found.group(0)


@pytest.mark.browser
def test_a_visitor_registers_and_shares_a_project_at_desktop_and_phone_widths(
    small_site: dict[str, Any],
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    hub, meta = small_site["hub"], small_site["meta"]
    outbox = small_site["config"].parent / "data" / "outbox"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            page.goto(hub + "/")
            assert page.locator("h1").inner_text() == "srht test"
            page.click("text=Register")
            assert page.url.startswith(meta + "/register")
            page.fill("#username", "visitor")
            page.fill("#email", "visitor@example.org")
            page.fill("#password", "a long enough password")
            page.click("form button[type=submit]")
            wait_until(lambda: list(outbox.glob("*.eml")), "the confirmation mail", 30)
            page.goto(confirmation_link(outbox, meta))
            page.click("form button[type=submit]")

            page.goto(hub + "/")
            assert "You have no projects yet." in page.content()
            page.click("text=Create a project")
            page.fill("#name", "widgets")
            page.fill("#description", "Widgets for everyone")
            page.fill("#readme", "# Widgets\n\nThey *spin*.")
            page.fill("#tags", "widgets, toys")
            page.click("form button[type=submit]")
            assert "Project ~visitor/widgets created" in page.content()

            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 800})
                for path in (
                    "/explore",
                    "/~visitor",
                    "/~visitor/widgets",
                    "/explore?search=tag:toys",
                ):
                    page.goto(hub + path)
                    assert page.locator("a", has_text="~visitor/widgets").count() >= 1 or (
                        path == "/~visitor/widgets" and "They spin." in page.inner_text("main")
                    ), (width, path)
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, (width, path, overflow)
        finally:
            chromium.close()
