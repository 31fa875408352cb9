"""Every page a person reaches through the UI, walked in a real browser at
desktop (1280 px) and phone (390 px) width.

One site (meta, todo, paste, git and lists as separate gunicorn processes on
PostgreSQL, with meta's worker writing mail to the outbox) is walked once by
headless Chromium (Debian's): a newcomer reads the welcome page, registers
(a bad form first: every problem at once), confirms by the mailed link,
logs in, turns on two-factor authentication and logs in again with a code,
adds an SSH key, makes and revokes tokens, registers an OAuth client, edits
the profile; makes a tracker with tickets, labels and comments, a paste, a
repository pushed to with the real ``git`` over HTTPS with a token made on
the pages, a mailing list; and an administrator looks at the users. Then
every link of every page seen is followed, as a visitor clicking through.

Each page, at both widths (the same page resized, so form answers count
too), must have no horizontal scroll at 390 px, no console error, and no
axe-core violation (axe-core from the npm registry, ``tests/package.json``,
injected with the page's CSP bypassed for this test only); every link and
every form submission must answer below 400 (except the bad forms the walk
sends on purpose). Each page keeps to the page budget (issue 16): its HTML
under 30 KiB gzip-compressed (at the level of the deploy's nginx), at most
2 requests as the browser loads it cold (the page and one stylesheet,
counted from Playwright's request events, which include what the cache
answers) and 1 warm: nothing the browser fetched for an earlier page is
fetched over the network again (Chromium's DevTools protocol says which
requests the cache answered). The largest pages' figures are printed.
Screenshots go to ``$SRHT_WALK_SCREENSHOTS`` or, by default,
``screenshots/`` in the test's tmp dir; the test prints which.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pyotp
import pytest
import requests
from srht_deploy.render import GZIP_LEVEL

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
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
SERVICES = ("meta", "todo", "paste", "git", "lists")
PASSWORD = "a long enough password"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: Links the crawl does not follow: they act (log out), are not pages, or
#: lead to a mailed one-time link the flows used already (its page was seen).
NOT_FOLLOWED = re.compile(r"/logout$|^mailto:|^otpauth:|/confirm/|%2Fconfirm%2F")
#: Links checked for their status only (not HTML pages).
NOT_PAGES = re.compile(r"/raw/|/mbox$|\.keys$|\.css$|/attachments/|/raw$|/download/|/\.well-known/")
#: The crawl's bound: enough for every kind of page of this site, twice over.
MAX_PAGES = 160
#: The page budget: compressed HTML, requests of a first and of a later visit.
BUDGET_BYTES = 30 * 1024
BUDGET_COLD = 2
BUDGET_WARM = 1


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
def site(tmp_path: Path, srht_postgres: Any, process_log: Any) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists() or not AXE.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium and tests/node_modules/axe-core are required (scripts/test)")
        pytest.skip("needs chromium and axe-core (apt-get install chromium; npm ci --prefix tests)")
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
        srht={"site-owner-name": "The Walkers", "site-owner-email": "admin@example.org"},
    )
    data["lists"]["posting-domain"] = "lists.example.org"
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(data), encoding="utf-8")
    srht(config, "migrate")
    srht(
        config,
        "meta",
        "create-user",
        "warden",
        "--email",
        "warden@example.org",
        "--admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    with open(process_log("meta-worker"), "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "srht_core.cli", "--config", str(config), "worker", "meta"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(serve_service(name, config, port=ports[name]))
                for name in SERVICES
            }
            yield {**urls, "config": config, "outbox": Path(data["mail"]["outbox-dir"])}
    finally:
        worker.terminate()
        worker.wait(15)


def mailed_link(outbox: Path, to: str, path: str, timeout: float = 30) -> str:
    """The first link to ``path`` in a message to ``to`` in the outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for eml in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
            message = message_from_bytes(eml.read_bytes())
            if to not in str(message.get("To", "")):
                continue
            part = message.get_body(("plain",)) if message.is_multipart() else message
            body = part.get_payload(decode=True).decode()  # type: ignore[union-attr]
            found = re.search(r"https?://\S*" + re.escape(path) + r"\S*", body)
            if found:
                return found.group(0)
        time.sleep(0.2)
    raise AssertionError(f"no mail to {to} with a link to {path} in {outbox}")


@dataclass
class Walk:
    """The browser page, what it saw, and what was wrong."""

    page: Any
    origins: tuple[str, ...]
    shots: Path
    problems: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # URL -> screenshot name
    links: dict[str, str] = field(default_factory=dict)  # URL -> the page it was on
    followed: set[str] = field(default_factory=set)
    console: list[str] = field(default_factory=list)
    expected_status: int | None = None
    checks: int = 0
    # The page budget: what the current page load asked for, what of it the
    # cache answered, what earlier loads fetched, and each page's figures.
    document: Any = None
    load: list[str] = field(default_factory=list)
    request_urls: dict[str, str] = field(default_factory=dict)  # DevTools id -> URL
    from_cache: set[str] = field(default_factory=set)
    fetched: set[str] = field(default_factory=set)
    figures: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    def on_site(self, url: str) -> bool:
        return url.startswith(self.origins)

    def look(self, name: str) -> None:
        """Check the page as it is now at both widths, and keep its links."""
        url = self.page.url
        self.checks += 1
        if self.expected_status:
            # The browser logs the status of a page answered on purpose.
            loaded = f"status of {self.expected_status}"
            self.console[:] = [line for line in self.console if loaded not in line]
        shot = f"{self.checks:03d}-{name}"
        self.seen.setdefault(urldefrag(url).url, shot)
        self.budget(url)
        for where in self.console:
            self.problems.append(f"{url}: console: {where}")
        self.console.clear()
        for width, size in (("1280", DESKTOP), ("390", PHONE)):
            self.page.set_viewport_size(size)
            if width == "390":
                wide = self.page.evaluate(
                    """() => {
                      const d = document.documentElement;
                      if (d.scrollWidth <= d.clientWidth) return null;
                      const out = [];
                      for (const e of document.body.querySelectorAll('*')) {
                        const r = e.getBoundingClientRect();
                        const inside = e.closest('.table-scroll, .code-scroll, pre');
                        if (r.right > d.clientWidth + 1 && !inside) {
                          out.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
                                   + ' ' + Math.round(r.right) + 'px');
                        }
                      }
                      return d.scrollWidth + 'px wide: ' + out.slice(0, 6).join(', ');
                    }"""
                )
                if wide:
                    self.problems.append(f"{url}: scrolls sideways at 390 px, {wide}")
            self.page.screenshot(path=str(self.shots / f"{shot}-{width}.png"), full_page=True)
            if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
                self.page.add_script_tag(path=str(AXE))
            found = self.page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                ".map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '"
                " + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; '))"
            )
            for violation in found:
                self.problems.append(f"{url} at {width} px: axe: {violation}")
        self.page.set_viewport_size(DESKTOP)
        for href in self.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            href = urldefrag(href).url
            if self.on_site(href) and not NOT_FOLLOWED.search(href):
                self.links.setdefault(href, url)

    def budget(self, url: str) -> None:
        """Check the page load's figures against the budget (once per URL)."""
        self.page.wait_for_load_state("load")
        load, cached = list(self.load), set(self.from_cache)
        # Chromium asks for the page's icon after the load, if at all by then:
        # one linked by URL (or /favicon.ico, without a link) is a request.
        icons = self.page.eval_on_selector_all("link[rel~=icon]", "els => els.map(e => e.href)")
        if not icons:
            icons = [urljoin(url, "/favicon.ico")]
        load += [i for i in icons if not i.startswith("data:") and i not in load]
        # Over the network: what the cache did not answer. Fetched again
        # although an earlier page had it: its cache headers let it down.
        network = [u for u in load if u not in cached]
        again = [u for u in network if u in self.fetched]
        self.fetched.update(network)
        key = urldefrag(url).url
        if key in self.figures or self.document is None:
            return
        try:
            body = self.document.body()
        except Exception as error:  # noqa: BLE001 - Playwright's errors; reported, not raised
            self.problems.append(f"{url}: budget: the page's HTML could not be read: {error}")
            return
        packed = len(gzip.compress(body, compresslevel=GZIP_LEVEL))
        cold, warm = 1 + len(load), 1 + len(again)
        self.figures[key] = (packed, len(body), cold, warm)
        if packed > BUDGET_BYTES or cold > BUDGET_COLD or warm > BUDGET_WARM:
            self.problems.append(
                f"{url}: over the page budget: {packed / 1024:.1f} KiB compressed "
                f"({len(body) / 1024:.1f} KiB raw; at most {BUDGET_BYTES // 1024}), "
                f"{cold} requests cold (at most {BUDGET_COLD}: the page and "
                f"{', '.join(load) or 'nothing'}), {warm} warm (at most {BUDGET_WARM}"
                f"{'; fetched again: ' + ', '.join(again) if again else ''})"
            )

    def go(self, url: str, name: str) -> None:
        self.page.goto(url)
        self.look(name)

    @contextlib.contextmanager
    def expecting(self, status: int) -> Iterator[None]:
        """A form sent wrong on purpose: its answer is ``status``."""
        self.expected_status = status
        try:
            yield
        finally:
            self.expected_status = None

    def submit(self, selector: str = "main form button[type=submit]", name: str = "") -> None:
        with self.page.expect_navigation():
            self.page.click(selector)
        self.look(name or "answer")


def _requests(walk: Walk, request: Any) -> None:
    """Count the requests of each page load: a navigation of the page
    starts a new load; every other request belongs to the current one."""
    if request.is_navigation_request():
        if request.frame.parent_frame is None:
            walk.load.clear()
            walk.from_cache.clear()
            walk.document = None
        return
    walk.load.append(request.url)


def _devtools(walk: Walk, page: Any) -> None:
    """Which requests Chromium's cache answered (Playwright reports those
    as requests too, and does not say so)."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")

    def sent(event: dict[str, Any]) -> None:
        walk.request_urls[event["requestId"]] = event["request"]["url"]

    def cached(event: dict[str, Any]) -> None:
        url = walk.request_urls.get(event["requestId"])
        if url:
            walk.from_cache.add(url)

    def received(event: dict[str, Any]) -> None:
        if event["response"].get("fromDiskCache") or event["response"].get("fromPrefetchCache"):
            cached(event)

    session.on("Network.requestWillBeSent", sent)
    session.on("Network.requestServedFromCache", cached)
    session.on("Network.responseReceived", received)


def _responses(walk: Walk, response: Any) -> None:
    request = response.request
    if not request.is_navigation_request() or not walk.on_site(response.url):
        return
    if request.frame.parent_frame is None:
        walk.document = response
    if response.status >= 400 and response.status != walk.expected_status:
        walk.problems.append(f"{request.method} {response.url} answered {response.status}")
    elif walk.expected_status and response.status < 300 and request.method == "POST":
        walk.problems.append(f"{request.method} {response.url}: expected {walk.expected_status}")


def _console(walk: Walk, message: Any) -> None:
    if message.type == "error":
        walk.console.append(message.text)


@pytest.mark.timeout(1800)  # a few minutes on an idle machine; a loaded one is slower
def test_every_page_at_desktop_and_phone_width(
    site: dict[str, Any], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SRHT_WALK_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the walk: {shots}")
    meta, todo, paste, git, lists = (site[name] for name in SERVICES)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # bypass_csp: axe-core is injected as a script; the pages' own
            # CSP allows none (and they need none).
            context = chromium.new_context(viewport=DESKTOP, bypass_csp=True)
            page = context.new_page()
            walk = Walk(page, tuple(site[name] for name in SERVICES), shots)
            page.on("request", lambda request: _requests(walk, request))
            page.on("response", lambda response: _responses(walk, response))
            _devtools(walk, page)
            page.on("console", lambda message: _console(walk, message))
            page.on("pageerror", lambda error: walk.console.append(str(error)))
            _walk_flows(walk, site, meta, todo, paste, git, lists, tmp_path)
            _crawl(walk, context)
            _admin(walk, meta)
            _crawl(walk, context)
        finally:
            chromium.close()
    print(f"{len(walk.seen)} pages seen, {walk.checks} looks, {len(walk.links)} links")
    print("the largest pages (compressed, raw, requests cold, warm):")
    for url, (packed, raw, cold, warm) in sorted(
        walk.figures.items(), key=lambda item: -item[1][0]
    )[:8]:
        print(f"  {packed / 1024:5.1f} KiB {raw / 1024:6.1f} KiB  {cold} {warm}  {url}")
    assert len(walk.figures) == len(walk.seen), set(walk.seen) - set(walk.figures)
    assert not walk.problems, "\n".join(walk.problems)
    assert len(walk.seen) > 60, sorted(walk.seen)


def _walk_flows(
    walk: Walk,
    site: dict[str, Any],
    meta: str,
    todo: str,
    paste: str,
    git: str,
    lists: str,
    tmp_path: Path,
) -> None:
    page = walk.page

    # -- a newcomer --------------------------------------------------------------------
    walk.go(meta + "/", "welcome")
    assert "A software forge run by The Walkers" in page.inner_text("main")
    header = page.inner_text("header.site")
    assert "Log in" in header and "Register" in header and "Account" not in header
    assert page.get_attribute("header.site a.brand", "href") == meta + "/"
    for name, url in (("todo", todo), ("paste", paste), ("git", git), ("lists", lists)):
        walk.go(url + "/", f"anonymous-{name}")
        assert page.get_attribute("header.site a.brand", "href") == meta + "/"
    walk.go(meta + "/login", "login")
    login_link = page.get_attribute("header.site a:text('Log in')", "href")
    assert login_link.count("return_to") == 1, login_link  # not nested in itself

    page.click("header.site a:text('Register')")
    walk.look("register")
    page.fill("#username", "9bob")
    page.fill("#email", "bob@example.org")
    page.fill("#password", "short")
    with walk.expecting(400):
        walk.submit(name="register-problems")
    problems = page.inner_text(".form-problems")
    assert "Username" in problems and "Password" in problems  # both at once
    page.fill("#username", "bob")
    page.fill("#password", PASSWORD)
    walk.submit(name="registered")
    walk.go(mailed_link(site["outbox"], "bob@example.org", "/confirm/"), "confirm")
    walk.submit(name="confirmed")
    walk.go(meta + "/register", "register-signed-in")
    assert page.url == meta + "/"  # a signed-in user is not shown the form

    # -- the account -------------------------------------------------------------------
    walk.go(meta + "/security/totp", "totp-setup")
    assert page.locator("p.qr svg[role=img]").count() == 1  # the QR code, inline
    assert page.get_attribute("#code", "inputmode") == "numeric"
    secret = page.inner_text("p.secret strong").replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    walk.submit(name="recovery-codes")
    assert "recovery" in page.inner_text("main").lower()
    page.click("header.site a:text('Log out')")
    walk.look("logout-question")
    walk.submit(name="logged-out")
    walk.go(meta + "/login", "login-again")
    page.fill("#username", "bob")
    page.fill("#password", PASSWORD)
    walk.submit(name="second-factor")
    # Recovery codes have letters: no number pad for this field.
    assert page.get_attribute("#code", "inputmode") is None
    # The code of the next time step (one step of drift is allowed): the
    # setup used this one.
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    walk.submit(name="logged-in")
    assert page.url == meta + "/"
    assert "Two-factor authentication" in page.inner_text("main")

    walk.go(meta + "/profile", "profile")
    page.fill("#name", "Bob Walker")
    page.fill("#bio", "Walks through https://example.org/pages every day.")
    walk.submit(name="profile-saved")

    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@walk", "-f", str(key)],
        check=True,
    )
    walk.go(meta + "/keys", "keys")
    page.fill("#ssh-key", "ssh-rsa not-a-key")
    with walk.expecting(400):
        walk.submit("form[action$='/keys/ssh'] button[type=submit]", "ssh-key-problem")
    walk.go(page.url, "ssh-key-reload")  # the URL of the answer is not a 405
    page.fill("#ssh-key", key.with_suffix(".pub").read_text())
    walk.submit("form[action$='/keys/ssh'] button[type=submit]", "ssh-key-added")

    walk.go(meta + "/tokens", "tokens")
    page.fill("#comment", "pushing")
    page.check("input[value='git/repos:RW']")
    walk.submit(name="token-made")
    assert page.url == meta + "/tokens/new"
    token = page.inner_text("p.token code").strip()
    walk.go(meta + "/tokens/new", "token-reloaded")
    assert token not in page.content()  # shown once: a reload makes no other
    page.fill("#comment", "to revoke")
    page.check("input[value='meta/profile:RO']")
    walk.submit(name="token-made-2")
    walk.go(meta + "/tokens", "tokens-two")
    page.click("a[href*='/revoke']")
    walk.look("token-revoke-question")
    walk.submit("main form button[type=submit]", "token-revoked")

    walk.go(meta + "/oauth2/clients/register", "oauth-register")
    page.fill("#name", "Walker app")
    page.fill("#redirect_uris", "https://app.example/callback")
    walk.submit(name="oauth-registered")
    assert page.locator("#client-secret").count() == 1
    walk.go(page.url, "oauth-registered-reload")
    assert page.locator("#client-secret").count() == 0

    # -- tickets -------------------------------------------------------------------------
    walk.go(todo + "/trackers/create", "tracker-create")
    page.fill("#name", "walkabout")
    page.fill("#description", "Things found on the walk.")
    walk.submit(name="tracker")
    tracker = page.url.rstrip("/")
    for title, text in (
        ("The header stops short on a phone", "Seen at https://example.org/phone-header."),
        ("Diffs are double-spaced", "Every line is followed by an empty one."),
    ):
        page.click("header.page a:text('New ticket')")
        page.fill("#title", title)
        page.fill("#description", text)
        walk.submit("form[action$='/submit'] button[type=submit]", "ticket")
    walk.go(tracker + "/1", "ticket-1")
    assert page.locator(".markdown a[href='https://example.org/phone-header.']").count() == 0
    assert page.locator(".markdown a[href='https://example.org/phone-header']").count() == 1
    walk.go(tracker + "/labels", "labels")
    page.fill("#name", "needs a phone")
    walk.submit(name="label-made")
    page.fill("#name", "spare")
    walk.submit(name="label-made-2")
    walk.go(tracker + "/1", "ticket-1-again")
    walk.submit("form[action$='/labels'] button[type=submit]", "labelled")
    page.fill("#text", "Still so at **390 px**.")
    walk.submit("button[value=comment]", "commented")
    page.select_option("#resolution", "wont_fix")
    page.fill("#text", "Phones are wide enough now.")
    walk.submit("button[value=close]", "closed")
    assert "won't fix" in page.inner_text(".ticket .meta")
    walk.go(tracker, "tracker-open")
    tabs = page.inner_text("nav.tabs[aria-label='Tickets by status']")
    assert "Open (1)" in tabs and "Closed (1)" in tabs
    page.click("nav.tabs a:text('Closed')")
    walk.look("tracker-closed")
    walk.go(tracker + "/labels", "labels-again")
    page.click("a[aria-label='Delete label spare']")
    walk.look("label-delete-question")
    walk.submit("main form button[type=submit]", "label-deleted")

    # -- a paste -------------------------------------------------------------------------
    walk.go(paste + "/", "paste-new")
    page.fill("#files-0-filename", "walk.py")
    page.fill("#files-0-content", "def walk(width: int) -> bool:\n    return width >= 390\n")
    walk.submit("button[name=create]", "paste")
    walk.go(paste + "/~bob", "pastes")
    assert "walk.py" in page.inner_text("main")

    # -- a repository, pushed to with git over HTTPS ---------------------------------------
    walk.go(git + "/create", "repo-create")
    page.fill("#name", "walker")
    page.fill("#description", "Steps, one at a time.")
    walk.submit(name="repo-empty")
    pushing = page.inner_text("section[aria-labelledby=push]")
    assert pushing.index(git) < pushing.index("SSH")  # HTTPS first
    assert page.locator(f"section[aria-labelledby=push] a[href='{meta}/tokens']").count() == 1
    work = tmp_path / "walker"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    def run(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(work), "-c", "user.name=Bob", "-c", "user.email=bob@example.org",
             *args],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip

    work.mkdir()
    run("init", "-q", "-b", "main")
    (work / "README.md").write_text("# walker\n\nSee https://example.org/walker.\n")
    (work / "walk.py").write_text("".join(f"step_{i} = {i}\n" for i in range(30)))
    run("add", ".")
    run("commit", "-q", "-m", "First steps")
    (work / "walk.py").write_text(
        "".join(f"step_{i} = {i * 2 if i % 7 == 0 else i}\n" for i in range(30))
    )
    (work / "docs").mkdir()
    (work / "docs" / "why.md").write_text("Because it is there.\n")
    run("add", ".")
    run("commit", "-q", "-m", "Longer strides every seventh step")
    origin = git.replace("http://", f"http://bob:{token}@") + "/~bob/walker"
    run("push", "-q", origin, "main")
    run("push", "-q", origin, "main:phone-width")
    walk.go(git + "/~bob/walker", "repo")
    walk.go(git + "/~bob/walker/tree", "tree")
    assert page.locator("details.switcher a:text('phone-width')").count() == 1
    walk.go(git + "/~bob/walker/log", "log")
    page.click("table.log a >> nth=0")
    walk.look("commit")
    counts = page.inner_text("section.diff header")
    assert "+" in counts and "−" in counts
    assert page.locator("table.patch tr.add").count() > 0

    # -- a mailing list ------------------------------------------------------------------
    walk.go(lists + "/lists/create", "list-create")
    page.fill("#name", "walkers")
    walk.submit(name="list")


def _admin(walk: Walk, meta: str) -> None:
    """An administrator looks at the users (after bob's pages are crawled:
    the crawl follows links as whoever is signed in)."""
    page = walk.page
    page.context.clear_cookies()
    walk.go(meta + "/login", "admin-login")
    page.fill("#username", "warden")
    page.fill("#password", PASSWORD)
    walk.submit(name="admin-home")
    walk.go(meta + "/admin/users", "admin-users")
    page.click("main a:text('~bob')")
    walk.look("admin-user")


def _crawl(walk: Walk, context: Any) -> None:
    """Follow every link seen: pages in the browser, the rest by status."""
    session = requests.Session()
    for cookie in context.cookies():
        session.cookies.set(cookie["name"], cookie["value"], domain=cookie["domain"])
    done = walk.followed
    done.update(walk.seen)
    shapes: dict[str, int] = {}
    while True:
        todo = [url for url in walk.links if url not in done]
        if not todo:
            break
        for url in todo:
            done.add(url)
            if NOT_PAGES.search(urlsplit(url).path):
                answer = session.get(url, timeout=30, allow_redirects=True)
                if answer.status_code >= 400:
                    walk.problems.append(
                        f"{url} (linked from {walk.links[url]}) answered {answer.status_code}"
                    )
                continue
            # Many pages of one shape (a blob per file, a ticket per number)
            # look alike: one of each is enough (the flows saw others).
            shape = re.sub(r"\d+|[0-9a-f]{7,40}", "N", urlsplit(url).path)
            shape = re.sub(r"/item/.*", "/item/P", shape)
            shapes[shape] = shapes.get(shape, 0) + 1
            if shapes[shape] > 1 or len(walk.seen) >= MAX_PAGES:
                answer = session.get(url, timeout=30)
                if answer.status_code >= 400:
                    walk.problems.append(
                        f"{url} (linked from {walk.links[url]}) answered {answer.status_code}"
                    )
                continue
            name = re.sub(r"[^a-z0-9]+", "-", urlsplit(url).path.lower()).strip("-")[:60]
            walk.go(url, "crawl-" + (name or "home"))
    for origin in walk.origins:
        answer = session.get(origin + "/favicon.ico", timeout=30)
        if answer.status_code != 200:
            walk.problems.append(f"{origin}/favicon.ico answered {answer.status_code}")
