"""A mailing list as a person reads it: meta and lists as separate gunicorn
processes with one config and real PostgreSQL, and lists' SMTP listener
(`srht lists smtp`) as a process of its own. Alice signs in at meta in
headless Chromium and creates a list in the browser; a series with a cover
letter and a reply quoting it arrive by SMTP; Chromium reads the thread
(the reply nested, its long quote folded until opened) and the patchset
(each patch with its diff highlighted, the mbox that `git am` takes)."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests

from srht_core.config import dump_ini
from srht_core.testing import free_port, serve_service, site_config

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
PASSWORD = "a long enough password"

DOMAIN = "lists.example.org"
TO = f"~alice/widget-devel@{DOMAIN}"


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
def lists_site(tmp_path: Path, srht_postgres: Any) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required under CI=true (scripts/test installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    ports = {name: free_port() for name in ("meta", "lists", "smtp")}
    data = site_config(
        tmp_path / "data",
        {
            name: {
                "origin": f"http://127.0.0.1:{ports[name]}",
                "connection-string": srht_postgres.create_database(),
            }
            for name in ("meta", "lists")
        },
    )
    data["lists"]["posting-domain"] = DOMAIN
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
    log = tmp_path / "smtp.log"
    with open(log, "wb") as out:
        listener = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "srht_core.cli",
                "--config",
                str(config),
                "lists",
                "smtp",
                "--bind",
                f"127.0.0.1:{ports['smtp']}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for(ports["smtp"], listener, log)
        with (
            serve_service("meta", config, port=ports["meta"]) as meta,
            serve_service("lists", config, port=ports["lists"]) as lists,
        ):
            yield {"meta": meta, "lists": lists, "smtp": ports["smtp"]}
    finally:
        listener.terminate()
        listener.wait(15)


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(log.read_text())


def _mail(subject: str, body: str, message_id: str, in_reply_to: str | None = None) -> bytes:
    out = EmailMessage()
    out["From"] = "Bob <bob@example.org>"
    out["To"] = TO
    out["Subject"] = subject
    out["Date"] = "Sat, 05 Dec 2026 10:00:00 +0000"
    out["Message-ID"] = f"<{message_id}@example.org>"
    if in_reply_to:
        out["In-Reply-To"] = out["References"] = f"<{in_reply_to}@example.org>"
    out.set_content(body)
    return out.as_bytes()


def _patch(number: int, old: str, new: str) -> str:
    return (
        f"Change {old} to {new}.\n---\n"
        f"diff --git a/file{number}.txt b/file{number}.txt\n"
        f"--- a/file{number}.txt\n+++ b/file{number}.txt\n"
        f"@@ -1 +1 @@\n-{old}\n+{new}\n"
    )


def test_a_thread_and_a_patchset_read_in_the_browser(lists_site: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    lists = lists_site["lists"]
    cover = "This series makes the widget <greet> people.\n\nLine 3\nLine 4\nLine 5\n"
    quoted = "".join(f"> {line}\n" for line in cover.splitlines())
    mails = [
        _mail("[PATCH 0/2] Greetings", cover, "cover"),
        _mail("[PATCH 1/2] Say hello", _patch(1, "hi", "hello"), "p1", "cover"),
        _mail("[PATCH 2/2] Say goodbye", _patch(2, "bye", "goodbye"), "p2", "cover"),
        _mail("Re: [PATCH 0/2] Greetings", f"{quoted}\nLooks good to me.\n", "reply", "cover"),
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page()
            page.goto(lists + "/lists/create")
            assert page.url.startswith(lists_site["meta"] + "/login")  # sent to sign in first
            page.fill("#username", "alice")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.fill("#name", "widget-devel")
            page.click("form button[type=submit]")
            assert page.url.rstrip("/") == lists + "/~alice/widget-devel"

            with smtplib.SMTP("127.0.0.1", lists_site["smtp"], timeout=60) as client:
                for raw in mails:
                    assert not client.sendmail("bob@example.org", [TO], raw)

            page.reload()
            page.click("text=[PATCH 0/2] Greetings")
            assert page.locator("h2.thread-title").inner_text() == "[PATCH 0/2] Greetings"
            messages = page.locator("ol.messages > li")
            assert messages.count() == 4
            reply = page.locator("li.message", has_text="Looks good to me.")
            assert "depth-1" in (reply.get_attribute("class") or "")
            # The quote of five lines is folded; opening it shows it, as text.
            fold = reply.locator("details.quote")
            assert fold.locator("summary").inner_text() == "5 quoted lines"
            assert not fold.locator(".quoted").is_visible()
            fold.locator("summary").click()
            assert "> This series makes the widget <greet> people." in fold.inner_text()
            assert page.locator("greet").count() == 0  # text, never markup

            page.click("ul.patchsets a")
            assert "Greetings" in page.locator("h2.thread-title").inner_text()
            patches = page.locator("section.patch")
            assert patches.count() == 2
            assert patches.nth(0).locator("h3").inner_text() == "[PATCH 1/2] Say hello"
            diff = patches.nth(0).locator(".diff")
            assert "+hello" in diff.inner_text() and "-hi" in diff.inner_text()
            assert diff.locator("span.gi").count() >= 1  # the added line, highlighted
            assert diff.locator("span.gd").count() >= 1  # the removed one
            assert "This series makes the widget" in page.locator("section.cover").inner_text()
            mbox_url = page.locator("text=Download (mbox)").get_attribute("href")
        finally:
            chromium.close()

    assert mbox_url is not None
    mbox = requests.get(mbox_url, timeout=30)
    assert mbox.status_code == 200
    assert mbox.text.count("\nSubject: [PATCH 1/2] Say hello") == 1
    assert mbox.text.count("\nSubject: [PATCH 2/2] Say goodbye") == 1
