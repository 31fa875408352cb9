"""Fixtures of git's tests: a real site on loopback, driven by the real
``git`` client.

``git_stack`` (one per session) runs meta and git under real gunicorn
(``srht serve``) on their configured ports, each on its own fresh
PostgreSQL database, with the repositories in a temporary folder. Users
and tokens are made by meta itself, through its ``create-user`` and
``token`` commands; git learns of users from meta's internal API on first
sight and checks token revocations with meta, exactly as in production,
so nothing of meta is faked. Tests share the stack and keep apart by using
fresh user names (``stack.new_user("alice")`` → ``alice3``).

The folder holding the config is readable by every account (mode 0755):
sshd runs the AuthorizedKeysCommand as an unprivileged user, which must
read the config (see ``test_ssh.py``).
"""

from __future__ import annotations

import getpass
import html
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from click.testing import CliRunner
from support.ci import require

from srht_core import Config, create_app
from srht_core.config import dump_ini
from srht_core.migrate import upgrade
from srht_core.plugins import PluginHost
from srht_core.testing import PostgresServer, page_forms, serve_service, site_config

PASSWORD = "correct horse battery"
GIT_ENV_KEEP = ("PATH", "LANG", "TZ")


def text(response: Any) -> str:
    """A page as a reader sees it (entities decoded)."""
    return html.unescape(response.text)


class Browser:
    """A ``requests`` session that fills in forms the way a person does:
    from the page that shows them, with their hidden fields (CSRF token)."""

    def __init__(self) -> None:
        self.session = requests.Session()

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.get(url, **kwargs)

    def submit(
        self, page: str, data: dict[str, Any], *, action: str | None = None, follow: bool = False
    ) -> requests.Response:
        """Open ``page`` and post ``data`` to its form whose action is
        ``action`` (a path; default: the page's path)."""
        shown = self.get(page)
        assert shown.status_code == 200, f"GET {page} answered {shown.status_code}"
        target = action or urlsplit(page).path
        for form in page_forms(shown.text):
            if form["method"] == "post" and urlsplit(form["action"]).path == target:
                url = requests.compat.urljoin(page, form["action"])
                return self.session.post(
                    url, data={**form["hidden"], **data}, allow_redirects=follow, timeout=60
                )
        raise AssertionError(f"no form posting to {target} on {page}")


@dataclass
class GitResult:
    """What the ``git`` client did."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def remote(self) -> list[str]:
        """The lines git showed as coming from the server (``remote: ...``)."""
        return [
            line.removeprefix("remote:").strip()
            for line in self.stderr.splitlines()
            if line.startswith("remote:")
        ]


class GitStack:
    """meta and git served for real, and what tests do with them."""

    def __init__(self, workdir: Path, config_path: Path, config: Config):
        self.workdir = workdir
        self.config_path = config_path
        self.config = config
        self.plugins = PluginHost()
        self.meta_app = create_app("meta", config, plugins=self.plugins)
        self.git_app = create_app("git", config, plugins=self.plugins)
        self.meta_url = str(config["meta"]["origin"])
        self.git_url = str(config["git"]["origin"])
        self.repos = Path(config["git"]["repos"])
        self._numbers = itertools.count(1)
        self.home = workdir / "home"
        self.home.mkdir()

    # -- people -------------------------------------------------------------------------

    def _meta_command(self, name: str, args: list[str], stdin: str | None = None) -> str:
        commands = {c.name: c for c in self.plugins.call_one("cli_commands", "meta")}
        with self.meta_app.app_context():
            result = CliRunner().invoke(commands[name], args, input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    def new_user(self, base: str = "user", *, admin: bool = False) -> str:
        """A confirmed account at meta, named ``base`` and a fresh number."""
        username = f"{base}{next(self._numbers)}"
        args = [username, "--email", f"{username}@example.org", "--password-stdin"]
        self._meta_command(
            "create-user", args + (["--admin"] if admin else []), stdin=PASSWORD + "\n"
        )
        return username

    def token(self, username: str, scopes: str = "git/repos:RW") -> str:
        """A personal access token meta issues to ``username``."""
        return self._meta_command("token", [username, "--scopes", scopes]).strip()

    def browser(self, username: str | None = None) -> Browser:
        """A browser, signed in at meta as ``username`` if given."""
        browser = Browser()
        if username is not None:
            answer = browser.submit(
                self.meta_url + "/login", {"username": username, "password": PASSWORD}
            )
            assert answer.status_code in (302, 303), answer.text[-2000:]
        return browser

    def suspend(self, username: str, notice: str) -> None:
        """An admin suspends ``username`` on meta's admin pages; meta's
        identity event then reaches git (delivered by meta's job runner)."""
        self._admin_action(username, "suspend", {"notice": notice})
        assert self.git_user_type(username) == "suspended"

    def delete_account(self, username: str) -> None:
        """An admin deletes ``username`` at meta; the identity event follows."""
        self._admin_action(username, "delete", {"typed": username})
        assert self.git_user_type(username) is None

    def _admin_action(self, username: str, action: str, data: dict[str, str]) -> None:
        from srht_core.jobs import run_until_idle

        admin = self.browser(self.new_user("admin", admin=True))
        page = f"{self.meta_url}/admin/users/{username}"
        if action == "delete":
            page += "/delete"
        answer = admin.submit(page, data, action=f"/admin/users/{username}/{action}")
        assert answer.status_code in (302, 303), answer.text[-2000:]
        run_until_idle(self.meta_app)

    def git_user_type(self, username: str) -> str | None:
        """The account type git's mirror of ``username`` has."""
        import sqlalchemy as sa

        with self.git_app.extensions["srht"].db.engine.connect() as connection:
            return connection.execute(
                sa.text('SELECT user_type FROM "user" WHERE username = :name'), {"name": username}
            ).scalar()

    # -- repositories ---------------------------------------------------------------------

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.git_url + path, headers=headers, timeout=60, **kwargs)

    def create_repo(
        self, token: str, name: str, visibility: str = "public", description: str | None = None
    ) -> dict[str, Any]:
        answer = self.api(
            "POST",
            "/api/repos",
            token,
            json={"name": name, "visibility": visibility, "description": description},
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def grant(self, owner_token: str, owner: str, name: str, grantee: str, mode: str) -> None:
        # The grantee must be known to git: first sight is any authenticated request.
        answer = self.api("GET", "/api/repos", self.token(grantee, "git/repos:RO"))
        assert answer.status_code == 200, answer.text
        answer = self.api(
            "PUT", f"/api/~{owner}/repos/{name}/access/{grantee}", owner_token, json={"mode": mode}
        )
        assert answer.status_code == 200, answer.text

    def http_url(
        self, owner: str, name: str, token: str | None = None, username: str = "git"
    ) -> str:
        """The clone URL, with ``token`` as the password if given."""
        base = self.git_url
        if token is not None:
            host = urlsplit(base).netloc
            base = f"http://{quote(username, safe='')}:{quote(token, safe='')}@{host}"
        return f"{base}/~{owner}/{name}"

    # -- the git client ---------------------------------------------------------------------

    def git_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in GIT_ENV_KEEP}
        env.update(
            HOME=str(self.home),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            LANG="C",
            LC_ALL="C",
            GIT_AUTHOR_NAME="Test Author",
            GIT_AUTHOR_EMAIL="author@example.org",
            GIT_COMMITTER_NAME="Test Author",
            GIT_COMMITTER_EMAIL="author@example.org",
            GIT_ASKPASS="/bin/false",
        )
        env.update(extra)
        return env

    def git(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float = 300,
    ) -> GitResult:
        """Run the ``git`` client; its result, failure or not."""
        run_env = env if env is not None else self.git_env()
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=run_env,
            capture_output=True,
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            timeout=timeout,
        )
        return GitResult(
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def work_tree(
        self, files: dict[str, str | bytes], *, branch: str = "main", message: str = "first commit"
    ) -> Path:
        """A new local repository with ``files`` committed on ``branch``."""
        path = Path(tempfile.mkdtemp(prefix="work-", dir=self.workdir))
        assert self.git("init", "--quiet", f"--initial-branch={branch}", str(path)).ok
        self.commit(path, files, message)
        return path

    def commit(self, path: Path, files: dict[str, str | bytes], message: str) -> str:
        for name, content in files.items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        assert self.git("add", "--all", cwd=path).ok
        done = self.git("commit", "--quiet", "-m", message, cwd=path)
        assert done.ok, done.stderr
        return self.git("rev-parse", "HEAD", cwd=path).stdout.strip()

    def publish(
        self,
        owner: str,
        name: str,
        files: dict[str, str | bytes],
        *,
        visibility: str = "public",
        description: str | None = None,
    ) -> str:
        """A repository of ``owner`` with ``files`` pushed to ``main``;
        the owner's token."""
        token = self.token(owner)
        self.create_repo(token, name, visibility, description)
        work = self.work_tree(files)
        pushed = self.git("push", self.http_url(owner, name, token), "main", cwd=work)
        assert pushed.ok, pushed.stderr
        return token

    def fast_import(self, stream: bytes, *, branch: str = "main") -> Path:
        """A new local repository filled by ``git fast-import`` from ``stream``."""
        path = Path(tempfile.mkdtemp(prefix="import-", dir=self.workdir))
        assert self.git("init", "--quiet", f"--initial-branch={branch}", str(path)).ok
        imported = self.git("fast-import", "--quiet", cwd=path, stdin=stream, timeout=600)
        assert imported.ok, imported.stderr
        return path

    def fresh_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="clone-", dir=self.workdir)) / "repo"


@dataclass
class KeyPair:
    private: Path
    public: str


def make_key(git_stack: GitStack) -> KeyPair:
    """A new Ed25519 key pair, without a passphrase."""
    folder = Path(tempfile.mkdtemp(prefix="key-", dir=git_stack.workdir))
    key = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@example", "-f", str(key)],
        check=True,
    )
    return KeyPair(key, (folder / "id_ed25519.pub").read_text().strip())


def register_key(git_stack: GitStack, username: str) -> KeyPair:
    """A new key pair, added on meta's keys page by ``username``."""
    pair = make_key(git_stack)
    browser = git_stack.browser(username)
    added = browser.submit(
        git_stack.meta_url + "/keys", {"ssh-key": pair.public}, action="/keys/ssh"
    )
    assert added.status_code in (302, 303), text(added)[-2000:]
    return pair


def _write_config(workdir: Path, postgres: PostgresServer) -> tuple[Path, Config]:
    data = site_config(
        workdir / "data",
        {
            "meta": {"connection-string": postgres.create_database()},
            "git": {
                "connection-string": postgres.create_database(),
                "repos": str(workdir / "repos"),
                "ssh-user": getpass.getuser(),
            },
        },
    )
    path = workdir / "config.ini"
    path.write_text(dump_ini(data), encoding="utf-8")
    os.chmod(path, 0o644)
    return path, Config.from_string(path.read_text(encoding="utf-8"), str(path))


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture(scope="session")
def git_stack(srht_postgres: PostgresServer) -> Iterator[GitStack]:
    """meta and git under real gunicorn for the whole session."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="srht-git-tests-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - sshd's key command user must read the config
    try:
        path, config = _write_config(workdir, srht_postgres)
        stack = GitStack(workdir, path, config)
        for app, service in ((stack.meta_app, "meta"), (stack.git_app, "git")):
            state = app.extensions["srht"]
            upgrade(state.db, service, state.schema)
        with (
            serve_service("meta", path, port=_port(stack.meta_url)),
            serve_service("git", path, port=_port(stack.git_url), workers=2),
        ):
            yield stack
        for app in (stack.meta_app, stack.git_app):
            app.extensions["srht"].db.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: What a test needs from the machine (skip here, fail under CI=true).
require_program = require


def wait_until(condition: Any, what: str, *, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something true (not a timed
    assertion: the deadline only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def served_pids(config_path: Path, service: str) -> tuple[int, list[int]]:
    """The gunicorn master of ``srht serve SERVICE`` for this config (a
    process this session started) and its workers."""
    master = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        if str(config_path) in words and "serve" in words and service in words:
            master = int(entry.name)
            break
    assert master is not None, f"no srht serve {service} running"
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        match = re.search(r"^PPid:\s+(\d+)", status, re.M)
        if match and int(match.group(1)) == master:
            workers.append(int(entry.name))
    return master, workers


def peak_rss(pid: int) -> int:
    """The peak resident memory of a process, in bytes (``VmHWM``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def linear_history(count: int, *, branch: str = "main", start: int = 1_700_000_000) -> bytes:
    """A ``git fast-import`` stream of ``count`` commits on ``branch``, each
    changing ``counter.txt`` (and adding a file every hundredth commit)."""
    out = []
    for number in range(1, count + 1):
        stamp = start + number * 60
        message = f"Commit number {number}\n".encode()
        data = f"{number}\n".encode()
        out.append(
            f"commit refs/heads/{branch}\nmark :{number}\n"
            f"author Test Author <author@example.org> {stamp} +0000\n"
            f"committer Test Author <author@example.org> {stamp} +0000\n"
            f"data {len(message)}\n".encode()
            + message
        )
        if number > 1:
            out.append(f"from :{number - 1}\n".encode())
        out.append(f"M 100644 inline counter.txt\ndata {len(data)}\n".encode() + data)
        if number % 100 == 0:
            out.append(f"M 100644 inline files/f{number}.txt\ndata {len(data)}\n".encode() + data)
        out.append(b"\n")
    return b"".join(out)
