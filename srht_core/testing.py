"""The core's test harness, shipped as a pytest plugin (entry point
``pytest11: srht``) so that third-party services test the way we do.

Fixtures:

- ``srht_postgres`` (session): a real PostgreSQL. ``$SRHT_TEST_DATABASE_URL``
  if set (a server URL whose user may create databases), otherwise a
  throwaway cluster started with the machine's ``initdb``/``pg_ctl`` for the
  session. Skips when neither is possible, except under ``CI=true``, where it
  fails instead.
- ``srht_database_url``: a fresh, empty PostgreSQL database for one test.
- ``make_config``: builds a bound-ready :class:`~srht_core.Config` with fresh
  keys and a data folder in ``tmp_path``.
- ``plugin_host``: a :class:`~srht_core.PluginHost` that discovers nothing;
  ``register_plugin`` adds a plugin to it for one test and always removes it.
- ``make_app``: builds a service's app and migrates its database.
- :func:`serve_service`: runs ``srht serve`` for real (gunicorn) on a free
  loopback port and stops it by its PID.
- :class:`FormBrowser` and :func:`page_forms`: submit a page's forms the way
  a person does, hidden fields (the CSRF token) included, so tests never
  switch CSRF off.
- :func:`sign_in`: give a test client the login cookie meta sets, so a
  service's pages see that user signed in.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .config import Config, dump_ini
from .keys import generate_keys
from .plugins import PluginHost, PluginRecord

__all__ = [
    "CORE_API_PATHS",
    "FormBrowser",
    "PAGE_KINDS",
    "PostgresServer",
    "ThrowawayPostgres",
    "free_port",
    "throwaway_postgres",
    "page_forms",
    "page_kind_problems",
    "serve_service",
    "sign_in",
    "site_config",
    "wait_for_http",
]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Wait until ``url`` answers (any status), or fail with what happened."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback test URL
                return
        except urllib.error.HTTPError:
            return
        except OSError as error:
            last = error
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def site_config(
    data_dir: str | os.PathLike[str],
    services: dict[str, dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The sections of a working site config (fresh keys, development
    environment) for ``services`` (``{name: {key: value}}``); other keyword
    arguments add or override whole sections."""
    keys = generate_keys()
    data: dict[str, dict[str, Any]] = {
        "srht": {
            "site-name": "srht test",
            "environment": "development",
            "global-domain": "127.0.0.1",
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "data-dir": str(data_dir),
            "templates-dir": str(Path(data_dir) / "templates"),
        },
        "mail": {"outbox-dir": str(Path(data_dir) / "outbox")},
        "webhooks": {"private-key": keys.webhook_private_key},
    }
    for name, values in (services or {}).items():
        section = {"origin": f"http://127.0.0.1:{free_port()}"}
        section.update(values)
        data[name] = section
    for name, values in sections.items():
        data.setdefault(name.replace("_", "-"), {}).update(values)
    return data


# -- PostgreSQL ----------------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    url: str

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        import sqlalchemy as sa

        name = name or f"srht_test_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return str(sa.make_url(self.url).set(database=name).render_as_string(hide_password=False))


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class ThrowawayPostgres(PostgresServer):
    """A private PostgreSQL cluster on a free loopback port, which a test
    may stop, start and restart (to see what a service does while its
    database is away). Made by :func:`throwaway_postgres`."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; "
                "install the postgresql package or set SRHT_TEST_DATABASE_URL"
            )
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="srht-pg-"))
        self.datadir = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            os.chmod(self.workdir, 0o755)  # noqa: S103 - the cluster's user must enter its folder
            shutil.chown(self.workdir, user=self.user)
            self.prefix = ["runuser", "-u", self.user, "--"]
        else:
            self.user = getpass.getuser()
        super().__init__(f"postgresql+psycopg2://srht@127.0.0.1:{self.port}/postgres")

    def init(self) -> None:
        """Create the cluster and start it."""
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "srht",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self.start()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: end every session, as a restart by the
        administrator does; ``immediate``: as a crash does)."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop the server and start it again."""
        self.stop(mode)
        self.start()

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if self.pid is not None:
            subprocess.run(
                [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.datadir)]
                + ["-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), *args)

    def _run(self, program: str, *args: str) -> None:
        try:
            subprocess.run(
                [*self.prefix, str(self.bindir / program), *args], check=True, capture_output=True
            )
        except subprocess.CalledProcessError as error:
            detail = (error.stderr or b"").decode(errors="replace")
            if self.log.exists():
                detail += self.log.read_text(errors="replace")[-4000:]
            raise RuntimeError(
                f"{program} {' '.join(args)} failed as {self.user}: {detail}"
            ) from error


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Start a private PostgreSQL cluster on a free loopback port and remove
    it afterwards. As root, the cluster runs as the ``postgres`` user (or
    ``nobody``), since PostgreSQL refuses to run as root."""
    server = ThrowawayPostgres()
    try:
        server.init()
    except RuntimeError:
        shutil.rmtree(server.workdir, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.remove()


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def srht_postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session."""
    url = os.environ.get("SRHT_TEST_DATABASE_URL")
    if url:
        yield PostgresServer(url)
        return
    try:
        with throwaway_postgres() as server:
            yield server
    except RuntimeError as error:
        if _in_ci():
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(str(error))


@pytest.fixture
def srht_database_url(srht_postgres: PostgresServer) -> str:
    """A fresh PostgreSQL database for one test."""
    return srht_postgres.create_database()


# -- configs, plugins and apps --------------------------------------------------


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """``make_config({"hello": {"greeting": "hi"}}, mail={...})`` → a Config
    written to ``tmp_path/config.ini`` (so errors name a real file)."""

    def make(
        services: dict[str, dict[str, Any]] | None = None, **sections: dict[str, Any]
    ) -> Config:
        data = site_config(tmp_path / "data", services, **sections)
        path = tmp_path / "config.ini"
        path.write_text(dump_ini(data), encoding="utf-8")
        return Config.from_string(path.read_text(encoding="utf-8"), str(path))

    return make


@pytest.fixture
def plugin_host() -> PluginHost:
    """A plugin host with no installed services: tests register their own."""
    return PluginHost(discover=False, strict=False)


@pytest.fixture
def register_plugin(plugin_host: PluginHost) -> Iterator[Callable[..., PluginRecord]]:
    """``register_plugin(module, "hello")`` registers a plugin on
    ``plugin_host`` for this test; it is unregistered afterwards, even when
    the test fails."""
    names: list[str] = []

    def register(plugin: Any, name: str, **kwargs: Any) -> PluginRecord:
        names.append(name)
        return plugin_host.register(plugin, name, **kwargs)

    yield register
    for name in names:
        plugin_host.unregister(name)


@pytest.fixture
def make_app(plugin_host: PluginHost) -> Iterator[Callable[..., Any]]:
    """``make_app("hello", config)`` → the service's Flask app, its database
    migrated; engines are disposed after the test."""
    from .app import create_app
    from .migrate import upgrade

    apps: list[Any] = []

    def make(
        service: str, config: Config, *, plugins: PluginHost | None = None, migrate: bool = True
    ) -> Any:
        app = create_app(service, config, plugins=plugins or plugin_host)
        state = app.extensions["srht"]
        if migrate:
            upgrade(state.db, service, state.schema)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["srht"].db.dispose()


@contextlib.contextmanager
def serve_service(
    service: str,
    config_path: str | os.PathLike[str],
    *,
    python: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """Run ``srht serve SERVICE`` (real gunicorn) on a free loopback port
    (or ``port``, say the one of the service's origin in the config); yield
    its base URL; stop it by PID. ``python`` picks another interpreter (a
    venv's) to run it with."""
    port = port or free_port()
    command = [
        python or sys.executable,
        "-m",
        "srht_core.cli",
        "--config",
        str(config_path),
        "serve",
        service,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's life
        prefix=f"srht-serve-{service}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(url + "/healthz", process=process)
        except (RuntimeError, TimeoutError) as error:
            output = Path(log.name).read_text(errors="replace")
            raise RuntimeError(f"srht serve {service} did not start: {error}\n{output}") from None
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        os.unlink(log.name)


# -- forms as a browser sees them -------------------------------------------------------


class _Forms(HTMLParser):
    """Every ``<form>`` of a page: its action, method, hidden inputs and the
    names of the fields a person fills in."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": values.get("action"),
                    "method": values.get("method", "get").lower(),
                    "hidden": {},
                    "fields": [],
                }
            )
        elif tag in ("input", "textarea", "select") and self.forms and values.get("name"):
            form, name = self.forms[-1], values["name"]
            if tag == "input" and values.get("type") == "hidden":
                form["hidden"][name] = values.get("value", "")
            elif values.get("type") not in ("submit", "button", "reset", "image") and (
                name not in form["fields"]
            ):
                form["fields"].append(name)


def page_forms(html: str) -> list[dict[str, Any]]:
    """The forms of ``html``: ``{"action", "method", "hidden": {name:
    value}, "fields": [name, ...]}`` (``fields``: the inputs, text areas and
    selects a person fills in, each name once, in page order)."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


# -- the kit's page structure ------------------------------------------------------

#: Each kind of page the kit draws, as the element paths it must contain: one
#: alternative of a kind must be there in full; a path ``("header.page",
#: "h1.crumbs")`` is an ``h1`` of class ``crumbs`` inside a ``header`` of
#: class ``page``. These are what ``srht/macros.html``, ``srht/settings.html``
#: and ``srht/error.html`` write, so a page built from them passes.
#: The API paths the core serves for every service, outside the service's
#: own OpenAPI document: the document itself and ``/api/resource-types``
#: (the ``resource_types`` hook's answer). A test that every served API path
#: is documented leaves these out.
CORE_API_PATHS = frozenset({"/api/openapi.json", "/api/resource-types"})

PAGE_KINDS: dict[str, tuple[tuple[tuple[str, ...], ...], ...]] = {
    "header": ((("header.page", "h1.crumbs"),),),
    "settings": (
        (
            ("div.settings", "nav.settings-menu", "a"),
            ("div.settings", "div.settings-page"),
        ),
    ),
    "list": (
        (("div.table-scroll", "table.list", "tbody"),),
        (("div.empty", "p"),),
    ),
    "form-errors": (
        (("div.form-problems", "li"), ("form", "div.field.invalid", "ul.errors", "li")),
        (("div.form-problems", "li"), ("form", "fieldset.choices.invalid", "ul.errors", "li")),
    ),
    "404": ((("main", "section.error-page", "h1"),),),
}


class _Elements(HTMLParser):
    """Every element of a page with the chain of elements it is in."""

    VOID = frozenset(
        "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
    )

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, frozenset[str]]] = []
        self.chains: list[tuple[tuple[str, frozenset[str]], ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = frozenset((dict(attrs).get("class") or "").split())
        element = (tag, classes)
        self.chains.append((*self.stack, element))
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return


def _selector(text: str) -> tuple[str, frozenset[str]]:
    tag, *classes = text.split(".")
    return tag, frozenset(classes)


def _has_path(chains: list[Any], path: tuple[str, ...]) -> bool:
    wanted = [_selector(step) for step in path]
    for chain in chains:
        if not (chain[-1][0] == wanted[-1][0] and wanted[-1][1] <= chain[-1][1]):
            continue
        step = len(wanted) - 2
        for tag, classes in reversed(chain[:-1]):
            if step < 0:
                break
            if tag == wanted[step][0] and wanted[step][1] <= classes:
                step -= 1
        if step < 0:
            return True
    return False


def page_kind_problems(html: str, kind: str) -> list[str]:
    """What ``html`` lacks to be a page of ``kind`` (a key of
    :data:`PAGE_KINDS`) as the kit draws it; empty when it is one. A
    service's tests use it to check that its pages look like every other
    service's: ``assert page_kind_problems(page.text, "settings") == []``."""
    parser = _Elements()
    parser.feed(html)
    missing: list[str] = []
    for alternative in PAGE_KINDS[kind]:
        missing = [" > ".join(p) for p in alternative if not _has_path(parser.chains, p)]
        if not missing:
            return []
    return [f"not a {kind} page of the kit: no {path}" for path in missing]


class FormBrowser:
    """A Flask test client that submits the forms pages show, with their
    hidden fields (the CSRF token among them)."""

    def __init__(self, client: Any):
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, **kwargs)

    def submit(
        self,
        page: str,
        data: dict[str, Any] | None = None,
        *,
        action: str | None = None,
        follow_redirects: bool = False,
    ) -> Any:
        """Open ``page``, find its form posting to ``action`` (default: the
        page itself), and post ``data`` with the form's hidden fields."""
        shown = self.client.get(page)
        assert shown.status_code == 200, f"GET {page} answered {shown.status_code}"
        target = action or urlsplit(page).path
        for form in page_forms(shown.get_data(as_text=True)):
            form_action = form["action"] if form["action"] is not None else page
            if form["method"] == "post" and urlsplit(form_action).path == target:
                return self.client.post(
                    form_action,
                    data={**form["hidden"], **(data or {})},
                    follow_redirects=follow_redirects,
                )
        raise AssertionError(f"no form posting to {target} on {page}")

    def csrf_token(self, page: str) -> str:
        """A CSRF token valid for this browser's session, from ``page``."""
        for form in page_forms(self.client.get(page).get_data(as_text=True)):
            for name, value in form["hidden"].items():
                if name.endswith("csrf_token"):
                    return str(value)
        raise AssertionError(f"no CSRF token on {page}")


def sign_in(client: Any, user_id: int, *, session_id: int = 1) -> None:
    """Sign ``client`` (a Flask test client of a service's app) in as user
    ``user_id``, with the login cookie meta sets for its login
    ``session_id``. The user must be mirrored already (no meta runs to be
    asked), and the app must know the session is not revoked: in tests
    without meta, ``state_of(app).revoked = lambda kind, ident: False``.

    .. versionadded:: 0.1
    """
    from .globals import state_of
    from .identity import LOGIN_COOKIE, login_cookie

    state = state_of(client.application)
    client.set_cookie(LOGIN_COOKIE, login_cookie(user_id, session_id, state))
