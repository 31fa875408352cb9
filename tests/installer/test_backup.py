"""Back a site up, destroy its hosts, restore it onto new ones.

A real site on two test hosts (alpha: PostgreSQL, Redis, meta and todo;
beta: paste and git), filled through its own interfaces: users from meta's
CLI, a tracker, tickets and pastes through the APIs with a token from meta,
a repository pushed over HTTPS with the real git client. Then
``srht-install backup``, both hosts replaced by fresh ones (nothing of the
old disks survives), ``srht-install restore``, and the users, tickets,
pastes and repositories compared row by row and object by object. A
restore drill (``srht-install drill``) of a corrupted archive fails before
anything is installed on the two drill hosts booted with the same set,
``drilla`` and ``drillb``. Then the restored site gets a ``[backup]``
section: its timer's service, started by hand on alpha, writes archives
encrypted to the admin's age key, keeps two, finds a corrupted one, and
turns ``srht-install status`` red (and mails the admin) when a run fails.
``srht-install drill --scheduled --mail``, as cron runs it, fetches the
newest of those archives: with a wrong key it fails before any drill host
is touched; with the admin's it is restored onto the drill hosts while
the site's own hosts are unplugged from the network, passes its smoke
checks, is torn down and mailed as passed. ``srht-install status`` shows
each result. Then an off-site destination. Last, a drill with no drill
hosts but ``[drill] machine-host = drilla``: it boots its own
systemd-nspawn machines inside drilla, restores onto them through drilla
only, passes its smoke checks and removes them.

The tests run in order on one site, each a step of its life.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from srht_core.keys import generate_keys

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS))

import testhosts  # noqa: E402 - after the path is set (a module: pytest would collect the class)
from support.ci import require_test_hosts  # noqa: E402
from testhosts.srhtsite import DOMAIN, HOSTS, Control, Site  # noqa: E402

pytestmark = [pytest.mark.installer, pytest.mark.slow, pytest.mark.timeout(1500)]

PLACES = {"meta": "alpha", "todo": "alpha", "paste": "beta", "git": "beta"}
PASSWORD = "a long enough password"
SCOPES = "todo/trackers:RW todo/tickets:RW paste/pastes:RW git/repos:RW"
#: What must come back identical: {database: [(table, ORDER BY)]}.
TABLES = {
    "srht_meta": [("user", "id")],
    "srht_todo": [("tracker", "id"), ("ticket", "id"), ("comment", "id")],
    "srht_paste": [("paste", "id"), ("paste_file", "id")],
    "srht_git": [("repository", "id")],
}
REPOS = "/var/lib/srht/git"
#: Throwaway hosts of the drills, booted with the site's (idle until then).
DRILL_HOSTS = {"alpha": "drilla", "beta": "drillb"}
#: Every smoke check of a drill, all passing in a passing drill.
SMOKE_CHECKS = {
    "row counts",
    "admin signs in",
    "repository clones",
    "ticket reads back",
    "paste reads back",
}
#: The off-site backup destination: booted with the site, not in its [deploy] hosts.
STORE = "store"
#: The drill host of the last step, where the drill boots machines of its own
#: (``[drill] machine-host``): booted able to make its own bridge and NAT.
MACHINE_HOST = "drilla"


@pytest.fixture(scope="module")
def test_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testhosts.TestHosts]:
    require_test_hosts("git")
    names = [*HOSTS, *DRILL_HOSTS.values(), STORE]
    with testhosts.TestHosts(
        names, tmp_path_factory.mktemp("testhosts"), net_admin_hosts=[MACHINE_HOST]
    ) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def site(test_hosts: testhosts.TestHosts, tmp_path_factory: pytest.TempPathFactory) -> Site:
    control = Control(sys.executable, {**os.environ, "PYINFRA_PROGRESS": "off"})
    site = Site(control, test_hosts, tmp_path_factory.mktemp("site"), generate_keys())
    site.services = {name: {"hosts": host} for name, host in PLACES.items()}
    # The wheelhouse of exactly this site's services (Site.deploy would add
    # the example external service, which this suite does not install).
    built = control.srht(site.write(), "deploy", "wheelhouse")
    assert built.returncode == 0, built.stderr
    site.wheelhouse = built.stdout.strip()
    control.env["SRHT_DEPLOY_WHEELHOUSE"] = site.wheelhouse
    return site


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What one step leaves for the next (the token, the archive, the snapshot)."""
    return {}


# -- helpers -------------------------------------------------------------------------------


def _srht_install_argv(site: Site, args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``srht-install ARGS``: the
    console script (or, in a tree not installed anew since it was added,
    the same entry point through Python), the site's config in $SRHT_CONFIG."""
    script = Path(site.control.python).parent / "srht-install"
    argv = (
        [str(script)]
        if script.exists()
        else [site.control.python, "-c", "from srht_installer.cli import main; main()"]
    )
    env = {**site.control.env, "SRHT_CONFIG": str(site.config), "COLUMNS": "300"}
    return [*argv, *args], env


def _log(site: Site, args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> None:
    with open(site.folder / "srht-install.log", "a") as log:
        log.write(f"$ srht-install {' '.join(args)}\n{result.stdout}{result.stderr}\n")


def srht_install(site: Site, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """``srht-install ARGS`` as a user runs it, with the site's config in
    $SRHT_CONFIG."""
    argv, env = _srht_install_argv(site, args)
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=site.folder,
    )
    _log(site, args, result)
    return result


def srht_install_unplugging(
    site: Site, *args: str, after: str, timeout: float = 1200
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """``srht-install ARGS``, the site's own hosts unplugged from the network
    as soon as a line of its standard error starts with ``after`` (and
    plugged in again when it ends): from then on, a command that reached
    for them would fail. Also returns whether they were unplugged."""
    argv, env = _srht_install_argv(site, args)
    stdout = site.folder / "srht-install.stdout"
    unplugged, lines = False, []
    with (
        open(stdout, "w+") as out,
        subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=site.folder,
        ) as process,
    ):
        assert process.stderr is not None
        try:
            for line in process.stderr:
                lines.append(line)
                if not unplugged and line.startswith(after):
                    for name in HOSTS:
                        site.hosts[name].disconnect()
                    unplugged = True
            code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if unplugged:
                for name in HOSTS:
                    site.hosts[name].reconnect()
        out.seek(0)
        result = subprocess.CompletedProcess(argv, code, out.read(), "".join(lines))
    _log(site, args, result)
    return result, unplugged


def api(
    site: Site, service: str, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    args = ["-X", method, "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    result = site.curl(service, path, host=PLACES[service], args=tuple(args))
    text, _, status = result.stdout.rpartition("\n")
    return int(status or 0), json.loads(text) if text.strip().startswith(("{", "[")) else text


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def git_env(site: Site, token: str) -> dict[str, str]:
    """Reach the site's git over HTTPS from here: its name resolved to beta,
    its authority trusted, the token given by an askpass program (not on a
    command line)."""
    askpass = site.folder / "askpass"
    askpass.write_text('#!/bin/sh\necho "$SRHT_TEST_TOKEN"\n')
    askpass.chmod(0o700)
    ca = site.folder / "ca.pem"
    if not ca.exists():
        site.curl("git", "/healthz", host="beta")  # writes ca.pem
    address = site.hosts.address("beta")
    return {
        "GIT_ASKPASS": str(askpass),
        "SRHT_TEST_TOKEN": token,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSL_CAINFO": str(ca),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.curloptResolve",
        "GIT_CONFIG_VALUE_0": f"git.{DOMAIN}:443:{address}",
    }


def snapshot(site: Site) -> dict[str, Any]:
    """Counts and content hashes of the rows and repositories that must survive."""
    alpha, beta = site.hosts["alpha"], site.hosts["beta"]
    out: dict[str, Any] = {}
    for database, tables in TABLES.items():
        for table, order in tables:
            query = f'COPY (SELECT * FROM "{table}" ORDER BY {order}) TO STDOUT'  # noqa: S608
            rows = alpha.ssh(f"runuser -u postgres -- psql -XAtq -d {database} -c '{query}'").stdout
            out[f"{database}.{table}"] = (
                len(rows.splitlines()),
                hashlib.sha256(rows.encode()).hexdigest(),
            )
    repos = beta.ssh(
        f"find {REPOS} -mindepth 1 -maxdepth 1 -name '*.git' -printf '%f\\n'"
    ).stdout.split()
    for repo in sorted(repos):
        path = f"{REPOS}/{repo}"
        as_git = "runuser -u srht-git -- git -C " + path
        refs = beta.ssh(f"{as_git} for-each-ref --format='%(objectname) %(refname)'").stdout
        objects = beta.ssh(
            f"{as_git} cat-file --batch-all-objects --batch-check="
            "'%(objectname) %(objecttype) %(objectsize)'"
        ).stdout
        out[f"repo {repo}"] = {
            "refs": refs,
            "head": beta.ssh(f"{as_git} symbolic-ref HEAD").stdout,
            "objects": (len(objects.splitlines()), hashlib.sha256(objects.encode()).hexdigest()),
            "owner": beta.ssh(f"stat -c '%U %G %a' {path} {path}/objects").stdout,
        }
    out["git folder"] = beta.ssh(f"stat -c '%U %G %a' {REPOS}").stdout
    return out


def fsck(site: Site) -> None:
    beta = site.hosts["beta"]
    for repo in beta.ssh(f"find {REPOS} -mindepth 1 -maxdepth 1 -name '*.git'").stdout.split():
        checked = beta.ssh(
            f"runuser -u srht-git -- git -C {repo} fsck --full --no-progress", check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "missing" not in checked.stdout + checked.stderr


def sign_in(site: Site, username: str, password: str) -> str:
    """Sign in at meta's login form as a browser would; returns meta's home page."""
    jar = site.folder / f"cookies-{time.monotonic_ns()}"
    page = site.curl("meta", "/login", host="alpha", args=("-c", str(jar))).stdout
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    assert found, page[:2000]
    posted = site.curl(
        "meta",
        "/login",
        host="alpha",
        args=(
            "-b",
            str(jar),
            "-c",
            str(jar),
            "-H",
            f"Referer: https://meta.{DOMAIN}/login",
            "--data-urlencode",
            f"csrf_token={found[1]}",
            "--data-urlencode",
            f"username={username}",
            "--data-urlencode",
            f"password={password}",
        ),
    )
    assert posted.stdout.rstrip().endswith("302"), posted.stdout[-2000:]
    return site.curl("meta", "/", host="alpha", args=("-b", str(jar))).stdout


# -- the steps -----------------------------------------------------------------------------


def test_a_site_with_users_tickets_pastes_and_a_repository(
    site: Site, state: dict[str, Any]
) -> None:
    started = time.monotonic()
    site.converge()
    alpha = site.hosts["alpha"]
    for username in ("alice", "bob"):
        alpha.ssh(
            f"runuser -u srht-meta -- srht meta create-user {username} "
            f"--email {username}@{DOMAIN} --password-stdin",
            input=PASSWORD + "\n",
        )
    tokens = {}
    for username in ("alice", "bob"):
        made = alpha.ssh(f"runuser -u srht-meta -- srht meta token {username} --scopes '{SCOPES}'")
        tokens[username] = made.stdout.strip().splitlines()[-1].split()[-1]
    alice, bob = tokens["alice"], tokens["bob"]
    state["token"] = alice

    status, body = api(
        site,
        "todo",
        "POST",
        "/api/trackers",
        alice,
        {"name": "bugs", "description": "Things to fix"},
    )
    assert status == 201, body
    for who, title in ((alice, "It crashes"), (bob, "It is slow"), (alice, "Typo")):
        status, body = api(
            site,
            "todo",
            "POST",
            "/api/trackers/alice/bugs/tickets",
            who,
            {"title": title, "description": f"{title}, in detail."},
        )
        assert status == 201, body
    status, body = api(
        site,
        "todo",
        "POST",
        "/api/trackers/alice/bugs/tickets/1/comments",
        bob,
        {"text": "Me too."},
    )
    assert status == 201, body
    for who, name in ((alice, "notes.md"), (bob, "snippet.py"), (alice, "log.txt")):
        status, body = api(
            site,
            "paste",
            "POST",
            "/api/pastes",
            who,
            {"files": [{"filename": name, "content": f"{name}\n" * 20}]},
        )
        assert status == 201, body

    status, body = api(site, "git", "POST", "/api/repos", alice, {"name": "hello"})
    assert status == 201, body
    work = site.folder / "hello"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for number in range(3):
        (work / f"file{number}.txt").write_text(f"version {number}\n" * 100)
        (work / "data.bin").write_bytes(os.urandom(4096))
        git("add", ".", cwd=work)
        git(
            "-c",
            "user.name=Alice",
            "-c",
            f"user.email=alice@{DOMAIN}",
            "commit",
            "-q",
            "-m",
            f"Change {number}",
            cwd=work,
        )
    git("tag", "v1.0", cwd=work)
    git(
        "push",
        "-q",
        f"https://git.{DOMAIN}/~alice/hello",
        "main",
        "v1.0",
        cwd=work,
        env=git_env(site, alice),
    )
    state["head"] = git("rev-parse", "HEAD", cwd=work).strip()

    state["before"] = before = snapshot(site)
    assert before["srht_meta.user"][0] == 2
    assert before["srht_todo.ticket"][0] == 3
    assert before["srht_paste.paste"][0] == 3
    assert before["srht_git.repository"][0] == 1
    print(f"deployed and filled in {time.monotonic() - started:.0f}s")


def test_backup_writes_one_private_archive_and_restarts_the_site(
    site: Site, state: dict[str, Any]
) -> None:
    started = time.monotonic()
    result = srht_install(site, "backup", "--output", str(site.folder / "backups"))
    assert result.returncode == 0, result.stderr[-4000:]
    archive = Path(result.stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"srht-backup-\d{8}T\d{6}Z\.tar", archive.name)
    assert archive.parent == site.folder / "backups"
    assert archive.stat().st_mode & 0o777 == 0o600
    assert not list(archive.parent.glob("*.partial"))
    state["archive"] = archive
    print(f"backup in {time.monotonic() - started:.0f}s, {archive.stat().st_size} bytes")

    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {
        "manifest.json",
        "config.ini",
        "databases/meta.pgdump",
        "databases/todo.pgdump",
        "databases/paste.pgdump",
        "databases/git.pgdump",
        "data/git/home.tar.gz",
    } <= names
    assert manifest["services"] == ["meta", "git", "paste", "todo"]
    parts = {p["name"]: p for p in manifest["parts"]}
    assert set(parts) == names - {"manifest.json"}
    state["parts"] = len(parts) - 1  # all but the config go to the hosts
    assert all(len(p["sha256"]) == 64 for p in parts.values())
    assert parts["databases/meta.pgdump"]["revisions"]["alembic_version_meta"]
    assert manifest["versions"]["srht"]

    # The site is up again, and no secret went to the output.
    for service, host in PLACES.items():
        assert (
            site.hosts[host].ssh(f"systemctl is-active srht-{service}").stdout.strip() == "active"
        )
    assert api(site, "paste", "GET", "/api/pastes", state["token"])[0] == 200
    for secret in (site.keys.service_key, site.keys.network_key, state["token"]):
        assert secret not in result.stdout + result.stderr


def test_restore_refuses_a_corrupt_archive(site: Site, state: dict[str, Any]) -> None:
    broken = site.folder / "broken.tar"
    shutil.copyfile(state["archive"], broken)
    with tarfile.open(broken) as tar:
        offset = tar.getmember("databases/todo.pgdump").offset_data
    with open(broken, "r+b") as out:
        out.seek(offset + 100)
        byte = out.read(1)
        out.seek(offset + 100)
        out.write(bytes([byte[0] ^ 0xFF]))
    result = srht_install(
        site, "restore", str(broken), "--config", str(site.folder / "never-written.ini")
    )
    assert result.returncode != 0
    assert "corrupt" in result.stderr and "databases/todo.pgdump is damaged" in result.stderr
    assert not (site.folder / "never-written.ini").exists()


def test_restore_onto_new_hosts_brings_everything_back(site: Site, state: dict[str, Any]) -> None:
    started = time.monotonic()
    for name in HOSTS:
        site.hosts.replace(name)
    assert "srht" not in site.hosts["beta"].ssh("ls /var/lib").stdout
    replaced = time.monotonic()

    # As on a new control machine: the config comes out of the archive.
    restored = site.folder / "restored"
    restored.mkdir()
    config = restored / "config.ini"
    result = srht_install(site, "restore", str(state["archive"]), "--config", str(config))
    assert result.returncode == 0, result.stderr[-6000:]
    print(
        f"hosts replaced in {replaced - started:.0f}s, "
        f"restored in {time.monotonic() - replaced:.0f}s"
    )
    # The same compact progress as an install (a line per step that changed
    # something, naming the hosts), not pyinfra's own output (in the log).
    output = result.stdout + result.stderr
    assert "--> Starting operation" not in output and "Loaded fact" not in output
    progress = [line for line in result.stdout.splitlines() if re.match(r"\[\s*\d+\] ", line)]
    assert "srht install | User srht-git: beta changed" in "\n".join(progress)
    assert "srht activate | Restart srht-meta.service: alpha changed" in "\n".join(progress)
    assert len(output.splitlines()) < len(progress) + 40, output
    print(f"restore printed {len(output.splitlines())} lines, {len(progress)} of progress")
    assert config.read_bytes() == site.config.read_bytes()
    assert config.stat().st_mode & 0o777 == 0o600

    after = snapshot(site)
    before = state["before"]
    assert after == before
    fsck(site)

    # The restored site works: the old token, a sign-in, a clone.
    token = state["token"]
    status, body = api(site, "todo", "GET", "/api/trackers/alice/bugs/tickets/1", token)
    assert status == 200 and body["title"] == "It crashes", body
    assert "~alice" in sign_in(site, "alice", PASSWORD)
    clone = site.folder / "clone"
    git(
        "clone",
        "-q",
        f"https://git.{DOMAIN}/~alice/hello",
        str(clone),
        cwd=site.folder,
        env=git_env(site, token),
    )
    assert git("rev-parse", "HEAD", cwd=clone).strip() == state["head"]
    for secret in (site.keys.service_key, site.keys.network_key, token):
        assert secret not in result.stdout + result.stderr


def test_restore_again_skips_what_is_restored(site: Site, state: dict[str, Any]) -> None:
    config = site.folder / "restored" / "config.ini"
    result = srht_install(site, "restore", str(state["archive"]), "--config", str(config))
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stderr.count("already restored from this archive") == state["parts"]
    assert snapshot(site) == state["before"]


def test_restore_refuses_to_replace_other_data(site: Site, state: dict[str, Any]) -> None:
    made = srht_install(site, "backup", "--output", str(site.folder / "backups"))
    assert made.returncode == 0, made.stderr[-4000:]
    other = Path(made.stdout.strip().splitlines()[-1])
    assert other != state["archive"]
    config = site.folder / "restored" / "config.ini"
    result = srht_install(site, "restore", str(other), "--config", str(config))
    assert result.returncode != 0
    assert "already hold data that is not from this archive" in result.stderr
    assert "srht_meta on alpha" in result.stderr and "--force" in result.stderr
    assert "Installing" not in result.stderr  # refused before changing anything
    assert snapshot(site) == state["before"]


def drill_args(site: Site) -> list[str]:
    return [
        arg
        for name, drill in DRILL_HOSTS.items()
        for arg in ("--host", f"{name}=root@{site.hosts.address(drill)}")
    ]


def bare(site: Site, drill: str) -> str:
    """What a drill host holds of srht (nothing, on a fresh or torn-down host).

    Units are those systemd finds: the hosts' systemd keeps a unit it
    stopped listed as ``not-found`` once its file is gone (nginx's and
    PostgreSQL's too, after their packages are purged) until it restarts;
    such a unit has no file and no process on the host."""
    return (
        site.hosts[drill]
        .ssh(
            "ls -d /opt/srht /etc/srht /etc/srht-secrets /var/lib/srht /var/lib/srht-backup "
            "/var/backups/srht /var/lib/postgresql 2>/dev/null; "
            "ls -d /etc/systemd/system/srht-* /etc/systemd/system/*.wants/srht-* 2>/dev/null; "
            "systemctl list-units --all --plain --no-legend 'srht-*' | awk '$2 != \"not-found\"'; "
            "ps -eo args | grep -E '^/opt/srht|srht (serve|worker)' | grep -v grep; "
            "dpkg-query -W -f '${db:Status-Abbrev}${Package}\\n' postgresql\\* nginx\\* "
            "redis\\* 2>/dev/null | grep ^ii; getent passwd | grep ^srht-; true"
        )
        .stdout.strip()
    )


def test_a_drill_of_a_corrupted_archive_fails_before_installing(
    site: Site, state: dict[str, Any]
) -> None:
    broken = site.folder / "broken.tar"  # one byte of todo's dump flipped (above)
    result = srht_install(site, "drill", str(broken), *drill_args(site))
    assert result.returncode == 1
    assert "databases/todo.pgdump is damaged" in result.stderr
    assert "The drill failed before anything was installed." in result.stderr
    assert "Drill FAILED: the archive is corrupt" in result.stdout
    for drill in DRILL_HOSTS.values():
        assert bare(site, drill) == ""
    record = json.loads((site.folder / "config.ini.drill.json").read_text())
    assert record["ok"] is False and record["archive"] == str(broken)
    status = srht_install(site, "status")
    assert status.returncode == 1
    line = next(li for li in status.stdout.splitlines() if "restore drill" in li)
    assert "FAIL" in line and "the last drill" in line, status.stdout


def test_an_archive_from_a_newer_srht_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """No hosts needed: the check runs on the deploying machine first."""
    from srht_deploy import Site as DeploySite
    from srht_installer.backup import check_software

    from srht_core.config import dump_ini

    keys = generate_keys()
    config = tmp_path / "config.ini"
    config.write_text(
        dump_ini(
            {
                "srht": {
                    "global-domain": DOMAIN,
                    "service-key": keys.service_key,
                    "network-key": keys.network_key,
                    "site-owner-email": f"admin@{DOMAIN}",
                },
                "webhooks": {"private-key": keys.webhook_private_key},
                "deploy": {"hosts": "alpha=root@192.0.2.10", "postgresql-host": "alpha"},
                "meta": {"origin": f"https://meta.{DOMAIN}"},
            }
        )
    )
    manifest = {
        "versions": {"srht": "99.0"},
        "parts": [
            {
                "name": "databases/meta.pgdump",
                "kind": "postgresql",
                "service": "meta",
                "revisions": {"alembic_version_meta": ["f00dfeed0000"]},
            }
        ],
    }
    problems = check_software(manifest, DeploySite.from_config(config))
    assert len(problems) == 2, problems
    assert "made with srht 99.0" in problems[0] and "install srht 99.0 or newer" in problems[0]
    assert "migration f00dfeed0000, which this srht does not know" in problems[1]


# -- scheduled backups ([backup], srht_installer.scheduled) ---------------------------------

BACKUPS = "/var/backups/srht"
SCHEDULED = "runuser -u srht-backup -- /opt/srht/venv/bin/python -m srht_installer.scheduled"
SECRET_CONFIG = "/etc/srht-secrets/backup-config.ini"


def fire(site: Site) -> subprocess.CompletedProcess[str]:
    """The timer fired by hand: ``systemctl start`` of its service waits
    for the oneshot backup to finish."""
    return site.hosts["alpha"].ssh("systemctl start srht-backup.service", check=False, timeout=900)


def archives(site: Site) -> list[str]:
    listed = site.hosts["alpha"].ssh(f"ls -1 {BACKUPS}").stdout.split()
    return sorted(n for n in listed if n.endswith(".tar.age"))


def last_state(site: Site) -> dict[str, Any]:
    return json.loads(site.hosts["alpha"].ssh("cat /var/lib/srht-backup/last.json").stdout)


def status_lines(site: Site) -> tuple[int, list[str]]:
    """``srht-install status``: its exit code and the rows of its backup check."""
    script = Path(site.control.python).parent / "srht-install"
    result = subprocess.run(
        [str(script), "status"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**site.control.env, "SRHT_CONFIG": str(site.config), "COLUMNS": "1000"},
        stdin=subprocess.DEVNULL,
        cwd=site.folder,
    )
    rows = [line for line in result.stdout.splitlines() if re.match(r"\W*backup\s", line)]
    return result.returncode, rows


def test_a_scheduled_backup_writes_an_archive_only_the_admin_can_read(
    site: Site, state: dict[str, Any]
) -> None:
    import pyrage
    from srht_installer.backup import verify_archive
    from srht_installer.remote_archive import ArchiveReader

    identity = pyrage.x25519.Identity.generate()
    (site.folder / "backup-key.txt").write_text(str(identity) + "\n")
    state["identity"] = site.folder / "backup-key.txt"
    site.sections["backup"] = {
        "schedule": "*-*-* 03:00",
        "recipient": str(identity.to_public()),
        "keep-count": "2",
    }
    started = time.monotonic()
    site.converge()
    alpha, beta = site.hosts["alpha"], site.hosts["beta"]
    assert alpha.ssh("systemctl is-active srht-backup.timer").stdout.strip() == "active"
    assert "03:00:00" in alpha.ssh("systemctl show srht-backup.timer -p TimersCalendar").stdout
    assert beta.ssh("ls /etc/systemd/system/srht-backup.timer", check=False).returncode != 0
    # The backup's secrets: readable by its account alone; no host's copy of
    # the config has [deploy] or [backup].
    modes = alpha.ssh("stat -c '%n %U %a' /etc/srht-secrets/backup-*").stdout.split("\n")
    assert {line.split()[0].rsplit("/", 1)[1] for line in modes if line} == {
        "backup-config.ini",
        "backup-ssh-key",
    }
    assert all(line.endswith("srht-backup 400") for line in modes if line), modes
    assert "[backup]" not in alpha.ssh("cat /etc/srht/config.ini").stdout
    assert (
        alpha.ssh(
            "runuser -u srht-meta -- cat /etc/srht-secrets/backup-ssh-key", check=False
        ).returncode
        != 0
    )
    deployed = time.monotonic()

    fired = fire(site)
    assert fired.returncode == 0, alpha.ssh("journalctl -u srht-backup -n 60 --no-pager").stdout
    print(f"deployed in {deployed - started:.0f}s, backup in {time.monotonic() - deployed:.0f}s")
    (name,) = archives(site)
    assert re.fullmatch(r"srht-backup-\d{8}T\d{6}Z\.tar\.age", name)
    assert alpha.ssh(f"stat -c '%U %a' {BACKUPS}/{name}").stdout.split() == ["srht-backup", "600"]
    index = json.loads(alpha.ssh(f"cat {BACKUPS}/{name}.json").stdout)
    assert index["encryption"] == "age-x25519" and index["archive"] == name
    recorded = last_state(site)
    assert recorded["ok"] and recorded["last-good"]["archive"] == name
    # Each service ran again afterwards (the backup stopped them).
    for service, host in PLACES.items():
        assert (
            site.hosts[host].ssh(f"systemctl is-active srht-{service}").stdout.strip() == "active"
        )

    # The server holds no key that opens it: only the public one.
    found = alpha.ssh(
        "grep -rl AGE-SECRET-KEY- /etc/srht-secrets /etc/srht /var/lib/srht-backup /root",
        check=False,
    )
    assert found.returncode == 1 and not found.stdout, found.stdout
    fetched = site.folder / name
    fetched.write_bytes(
        subprocess.run(
            ["ssh", *alpha.ssh_options, f"root@{alpha.address}", f"cat {BACKUPS}/{name}"],
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
    )
    assert fetched.read_bytes().startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert not tarfile.is_tarfile(fetched)
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(fetched.read_bytes(), [pyrage.x25519.Identity.generate()])
    never = str(site.folder / "never-written.ini")
    refused = srht_install(site, "restore", str(fetched), "--config", never)
    assert refused.returncode != 0 and "is encrypted: give --identity KEYFILE" in refused.stderr
    wrong = site.folder / "wrong-key.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    refused = srht_install(
        site, "restore", "--identity", str(wrong), str(fetched), "--config", never
    )
    assert refused.returncode != 0 and "does not open with that key" in refused.stderr
    assert not Path(never).exists() and not fetched.with_suffix("").exists()
    # The admin's key does: a whole archive, every part as the manifest says.
    plain = site.folder / name.removesuffix(".age")
    plain.write_bytes(pyrage.decrypt(fetched.read_bytes(), [identity]))
    reader = ArchiveReader(plain)
    try:
        manifest = verify_archive(reader)
        assert reader.read_bytes("config.ini") == site.config.read_bytes()
    finally:
        reader.close()
    assert {"databases/meta.pgdump", "databases/git.pgdump", "data/git/home.tar.gz"} <= {
        p["name"] for p in manifest["parts"]
    }
    assert [p["sha256"] for p in index["parts"]] == [p["sha256"] for p in manifest["parts"]]
    state["scheduled"] = name

    code, rows = status_lines(site)
    assert len(rows) == 1 and " ok " in rows[0] and name in rows[0], rows


def test_retention_removes_the_oldest_archives(site: Site, state: dict[str, Any]) -> None:
    first = state["scheduled"]
    made = [first]
    for _ in range(2):
        fired = fire(site)
        assert fired.returncode == 0, fired.stderr
        made.append(last_state(site)["archive"])
    assert len(set(made)) == 3
    # keep-count = 2: the first is gone, with its index.
    assert archives(site) == sorted(made[1:])
    listed = site.hosts["alpha"].ssh(f"ls -1 {BACKUPS}").stdout.split()
    assert f"{first}.json" not in listed and not [n for n in listed if n.endswith(".partial")]
    assert last_state(site)["removed"] == [first]
    state["kept"] = made[1:]


def test_verification_finds_a_corrupted_archive(site: Site, state: dict[str, Any]) -> None:
    alpha = site.hosts["alpha"]
    older, newer = state["kept"]
    path = f"{BACKUPS}/{older}"
    # One byte flipped in the middle of the older archive, its size unchanged.
    alpha.ssh(
        'python3 -c \'import sys; f = open(sys.argv[1], "r+b"); f.seek(4000); '
        "b = f.read(1); f.seek(4000); f.write(bytes([b[0] ^ 0xFF]))' " + path
    )
    checked = alpha.ssh(f"{SCHEDULED} verify --config {SECRET_CONFIG}", check=False)
    assert checked.returncode == 1
    assert f"DAMAGED  {older}: damaged" in checked.stdout and f"ok       {newer}" in checked.stdout

    # The next scheduled run finds it too: it fails, says which, and the
    # newest good archive stays.
    fired = fire(site)
    assert fired.returncode != 0
    recorded = last_state(site)
    assert not recorded["ok"] and older in recorded["error"], recorded
    assert newer in archives(site) and recorded["archive"] in archives(site)
    code, rows = status_lines(site)
    assert code == 1 and len(rows) == 1 and "FAIL" in rows[0] and older in rows[0], rows


def test_a_failed_backup_is_red_in_status_and_mailed(site: Site, state: dict[str, Any]) -> None:
    alpha = site.hosts["alpha"]
    outbox = "/var/lib/srht/outbox"
    before = set(alpha.ssh(f"ls -1 {outbox}", check=False).stdout.split())
    alpha.ssh(f"mv {BACKUPS} {BACKUPS}.away")
    try:
        fired = fire(site)
        assert fired.returncode != 0
        recorded = last_state(site)
        assert not recorded["ok"] and "missing" in recorded["error"], recorded
        code, rows = status_lines(site)
        assert code == 1 and len(rows) == 1, rows
        assert (
            "FAIL" in rows[0] and "failed" in rows[0] and "systemctl start srht-backup" in rows[0]
        )
        mails = set(alpha.ssh(f"ls -1 {outbox}").stdout.split()) - before
        texts = [alpha.ssh(f"cat {outbox}/{m}").stdout for m in mails]
        failed = [t for t in texts if "backup FAILED" in t]
        assert failed, texts
        assert f"To: admin@{DOMAIN}" in failed[0] and f"{BACKUPS} is missing" in failed[0]
    finally:
        alpha.ssh(f"rm -rf {BACKUPS} && mv {BACKUPS}.away {BACKUPS}")


def test_a_drill_of_the_scheduled_backups_mails_its_result(
    site: Site, state: dict[str, Any]
) -> None:
    """``srht-install drill --scheduled --mail``, as cron on the deploying
    machine runs it: the newest verified archive is fetched from the backup
    destination and checked against its index; a key that does not open it
    fails the drill before any drill host is touched, the admin is mailed
    and status is red. (The next step drills it with the right key.)"""
    outbox = site.folder / "outbox"
    # Mail from this machine goes to a folder of the test's (the hosts keep theirs).
    site.sections["mail"] = {"smtp-from": f"srht@{DOMAIN}", "outbox-dir": str(outbox)}
    site.write()
    wrong = site.folder / "not-the-backup-key.txt"
    wrong.write_text(f"{__import__('pyrage').x25519.Identity.generate()}\n")
    newest = archives(site)[-1]
    result = srht_install(site, "drill", "--scheduled", "--identity", str(wrong), "--mail")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Fetching {newest} from alpha:{BACKUPS}" in result.stderr
    assert "does not open with that key" in result.stderr
    assert "The drill failed before anything was installed." in result.stderr
    for drill in DRILL_HOSTS.values():
        assert bare(site, drill) == ""
    record = json.loads((site.folder / "config.ini.drill.json").read_text())
    assert record["ok"] is False and record["archive"] == f"alpha:{BACKUPS}/{newest}"
    (mail,) = outbox.glob("*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert message["To"] == f"admin@{DOMAIN}"
    assert message["Subject"] == "[srht e2e] restore drill FAILED"
    assert "does not open with that key" in message.get_content()
    # The fetched copy and the folder it was to be decrypted into are gone.
    found = re.search(r"Decrypting (\S+) \(into (\S+), removed afterwards\)", result.stderr)
    assert found, result.stderr
    assert not Path(found[1]).parent.exists() and not Path(found[2]).exists()
    status = srht_install(site, "status")
    assert status.returncode == 1
    line = next(li for li in status.stdout.splitlines() if "restore drill" in li)
    assert "FAIL" in line and "the last drill" in line and newest in line, status.stdout


def test_a_scheduled_drill_restores_the_newest_backup_onto_throwaway_hosts_and_mails_it(
    site: Site, state: dict[str, Any]
) -> None:
    """``srht-install drill --scheduled --mail`` as cron runs it, with the
    drill hosts and the admin's age key in ``[drill]``: the newest scheduled
    archive is fetched from the destination (the drill's only contact with
    the site: its hosts are unplugged once the archive is here), decrypted,
    restored onto the drill hosts, passes every smoke check and is torn
    down; the result is recorded (status green again) and mailed."""
    for drill in DRILL_HOSTS.values():
        assert bare(site, drill) == ""
    password = site.folder / "alice-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    identity = state["identity"]  # the admin's key, from the scheduled backups' step
    outbox = site.folder / "outbox"
    site.sections["mail"] = {"smtp-from": f"srht@{DOMAIN}", "outbox-dir": str(outbox)}
    site.sections["drill"] = {
        "hosts": ", ".join(drill_args(site)[1::2]),
        "identity-file": str(identity),
        "admin": "alice",
        "admin-password-file": str(password),
        "max-age": "7",
    }
    site.write()
    mailed = set(outbox.glob("*.eml"))
    newest = archives(site)[-1]

    started = time.monotonic()
    result, unplugged = srht_install_unplugging(
        site, "drill", "--scheduled", "--mail", after="Decrypting "
    )
    print(f"drill in {time.monotonic() - started:.0f}s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert unplugged, result.stderr  # the site was away from the decryption on
    # The newest archive, fetched from the destination; the copies are gone.
    assert f"Fetching {newest} from alpha:{BACKUPS}" in result.stderr
    fetched = re.search(r"Decrypting (\S+) \(into (\S+), removed afterwards\)", result.stderr)
    assert fetched and Path(fetched[1]).name == newest, result.stderr
    assert not Path(fetched[1]).parent.exists() and not Path(fetched[2]).exists()
    found = re.search(r"Drill passed: (\S+) restored to a working site in (\d+)s", result.stdout)
    assert found and found[1] == f"alpha:{BACKUPS}/{newest}", result.stdout
    print(f"time to a working site: {found[2]}s")
    checks = dict(re.findall(r"^  pass (.+?): (.*)$", result.stdout, re.M))
    assert set(checks) == SMOKE_CHECKS, result.stdout
    assert "tables match the manifest" in checks["row counts"]
    assert checks["admin signs in"].startswith("~alice signed in at meta, with the password")
    assert (
        checks["repository clones"].startswith("~alice/hello: cloned")
        and "fsck clean" in (checks["repository clones"])
    )
    assert "It crashes" in checks["ticket reads back"]
    assert "notes.md" in checks["paste reads back"]
    assert "the drill hosts hold nothing of the site" in result.stderr
    secrets = (site.keys.service_key, site.keys.network_key, PASSWORD, identity.read_text().strip())
    for secret in secrets:
        assert secret not in output

    # Torn down; the real site as it was; the result recorded for status.
    for drill in DRILL_HOSTS.values():
        assert bare(site, drill) == ""
    assert snapshot(site) == state["before"]
    record = json.loads((site.folder / "config.ini.drill.json").read_text())
    assert record["ok"] is True and record["archive"] == f"alpha:{BACKUPS}/{newest}"
    assert not record["left"] and [c["state"] for c in record["checks"]] == ["pass"] * 5
    assert record["hosts"] == {
        n: f"{n}=root@{site.hosts.address(d)}" for n, d in DRILL_HOSTS.items()
    }
    # The copy took no scheduled backups: they would have gone to the real destination.
    copied = (Path(record["folder"]) / "config.ini").read_text()
    assert "[backup]" not in copied and "[deploy]" in copied

    # The admin is told it passed: each check, the time to a working site.
    (mail,) = set(outbox.glob("*.eml")) - mailed
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert message["To"] == f"admin@{DOMAIN}"
    assert message["Subject"] == "[srht e2e] restore drill passed"
    body = message.get_content()
    assert f"{newest} restored to a working site in {found[2]}s" in body, body
    for name, detail in checks.items():
        assert f"  pass {name}: {detail}" in body, body
    assert not any(secret in body for secret in secrets)

    # Status: the drill's line green again, naming the archive (the backup's
    # own line stays red until a scheduled backup passes again).
    status = srht_install(site, "status")
    line = next(li for li in status.stdout.splitlines() if "restore drill" in li)
    assert " ok " in line and "passed" in line and newest in line, status.stdout


# -- an off-site destination (ssh://, a host outside the site) -----------------------------

OFFSITE = "/home/keeper/srht"


def test_an_offsite_destination_holds_verified_archives_and_a_wrong_host_key_fails(
    site: Site, state: dict[str, Any]
) -> None:
    import pyrage

    alpha, store = site.hosts["alpha"], site.hosts[STORE]
    # An ordinary account that authorizes a key of its own: no sudo, no srht.
    store.ssh("id keeper >/dev/null 2>&1 || useradd --create-home --shell /bin/sh keeper")
    key = site.folder / "offsite-key"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "offsite", "-f", str(key)],
            check=True,
            timeout=60,
        )
    store.ssh(
        "install -d -o keeper -g keeper -m 700 /home/keeper/.ssh && "
        "cat > /home/keeper/.ssh/authorized_keys && "
        "chown keeper:keeper /home/keeper/.ssh/authorized_keys",
        input=key.with_suffix(".pub").read_text(),
    )
    assert store.ssh("sudo -n -l -U keeper", check=False).stdout.count("may run") == 0
    scanned = subprocess.run(
        ["ssh-keyscan", "-t", "ed25519", store.address],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    identity_file = state.get("identity")
    if identity_file is None:  # this step alone
        identity_file = site.folder / "backup-key.txt"
        identity_file.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    identity = pyrage.x25519.Identity.from_str(identity_file.read_text().strip())
    url = f"ssh://keeper@{store.address}{OFFSITE}"
    backup = {
        "schedule": "*-*-* 03:00",
        "recipient": str(identity.to_public()),
        "keep-count": "2",
        "destination": url,
        "destination-host-key": scanned,
        "destination-ssh-key": str(key),
    }
    site.sections = {"backup": backup}
    site.converge()
    modes = alpha.ssh("stat -c '%n %U %a' /etc/srht-secrets/backup-offsite-*").stdout.split("\n")
    assert {line.split()[0].rsplit("/", 1)[1] for line in modes if line} == {
        "backup-offsite-known-hosts",
        "backup-offsite-ssh-key",
    }
    assert all(line.endswith("srht-backup 400") for line in modes if line), modes

    fired = fire(site)
    if fired.returncode != 0:  # what the backup said, and what the two ends say of its SSH
        tried = alpha.ssh(
            "runuser -u srht-backup -- ssh -v -i /etc/srht-secrets/backup-offsite-ssh-key "
            "-o UserKnownHostsFile=/etc/srht-secrets/backup-offsite-known-hosts "
            "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes "
            f"-o IdentitiesOnly=yes keeper@{store.address} true",
            check=False,
        )
        raise AssertionError(
            alpha.ssh("journalctl -u srht-backup -n 20 --no-pager").stdout
            + tried.stderr[-3000:]
            + store.ssh("journalctl -u ssh -n 30 --no-pager", check=False).stdout
        )
    recorded = last_state(site)
    assert recorded["ok"], recorded
    name = recorded["archive"]
    listed = store.ssh(f"ls -1A {OFFSITE}").stdout.split()
    assert listed == [name, f"{name}.json"], listed
    owners = store.ssh(f"stat -c '%U %a' {OFFSITE} {OFFSITE}/{name} {OFFSITE}/{name}.json")
    assert owners.stdout.split("\n")[:3] == ["keeper 700", "keeper 600", "keeper 600"]
    index = json.loads(store.ssh(f"cat {OFFSITE}/{name}.json").stdout)
    (sha256,) = store.ssh(f"sha256sum {OFFSITE}/{name}").stdout.split()[:1]
    assert index["archive"] == name and index["sha256"] == sha256
    fetched = subprocess.run(
        ["ssh", *store.ssh_options, f"root@{store.address}", f"cat {OFFSITE}/{name}"],
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    assert hashlib.sha256(fetched).hexdigest() == sha256
    plain = pyrage.decrypt(fetched, [identity])
    assert plain[:512].rstrip(b"\0")  # a tar: its first header names a part
    code, rows = status_lines(site)
    assert len(rows) == 1 and " ok " in rows[0] and name in rows[0], rows
    assert f"{url}" in rows[0], rows

    # The host key in the config made wrong: the next backup fails, says
    # so, writes nothing there, turns the status red and mails the admin.
    other = site.folder / "other-host-key"
    if not other.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
            check=True,
            timeout=60,
        )
    backup["destination-host-key"] = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    site.converge()
    outbox = "/var/lib/srht/outbox"
    before = set(alpha.ssh(f"ls -1 {outbox}", check=False).stdout.split())
    fired = fire(site)
    assert fired.returncode != 0
    recorded = last_state(site)
    assert not recorded["ok"] and "host key is not the one expected" in recorded["error"]
    assert store.address in recorded["error"], recorded
    assert store.ssh(f"ls -1A {OFFSITE}").stdout.split() == listed
    for service, host in PLACES.items():  # it stopped nothing either
        assert (
            site.hosts[host].ssh(f"systemctl is-active srht-{service}").stdout.strip() == "active"
        )
    code, rows = status_lines(site)
    assert code == 1 and len(rows) == 1 and "FAIL" in rows[0], rows
    assert "host key is not the one expected" in rows[0], rows
    mails = set(alpha.ssh(f"ls -1 {outbox}").stdout.split()) - before
    texts = [alpha.ssh(f"cat {outbox}/{m}").stdout for m in mails]
    assert [t for t in texts if "backup FAILED" in t], texts


# -- a drill onto machines the installer boots on a drill host -----------------------------


def test_a_drill_boots_its_own_machines_on_the_machine_host_and_removes_them(
    site: Site, state: dict[str, Any]
) -> None:
    """``[drill] machine-host = root@DRILLA`` and no drill hosts: the drill
    installs what it needs on drilla, builds the machines' image there,
    boots one systemd-nspawn machine per archived host on a private network
    of drilla, restores the archive onto them (pyinfra, the installer's SSH
    and the smoke checks' HTTPS all through drilla: the machines' network
    is not routed here), passes its smoke checks, and leaves drilla with
    nothing of it but the cached image."""
    drilla = site.hosts[MACHINE_HOST]
    password = site.folder / "alice-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    site.sections["drill"] = {
        "machine-host": f"root@{drilla.address}",
        "machine-network": "10.213.77.0/24",
        "admin": "alice",
        "admin-password-file": str(password),
    }
    site.write()
    started = time.monotonic()
    result = srht_install(site, "drill", str(state["archive"]))
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    booted = re.search(r"Machines booted on root@\S+ in (\d+)s", result.stderr)
    found = re.search(r"Drill passed: \S+ restored to a working site in (\d+)s", result.stdout)
    assert booted and found, output[-6000:]
    print(f"machine drill in {elapsed:.0f}s, booted in {booted[1]}s, working in {found[1]}s")
    checks = dict(re.findall(r"^  pass (.+?): (.*)$", result.stdout, re.M))
    assert set(checks) == SMOKE_CHECKS, result.stdout
    record = json.loads((site.folder / "config.ini.drill.json").read_text())
    assert record["ok"] is True and record["machine_host"] == f"root@{drilla.address}"
    assert record["hosts"] == {"alpha": "alpha=root@10.213.77.2", "beta": "beta=root@10.213.77.3"}
    assert not record["left"], record["left"]

    # Only through drilla: the drill's config sends SSH through it, and
    # this machine has no address or route in the machines' network (a
    # direct connect is no proof here: a sandbox's proxy may accept any).
    copied = (Path(record["folder"]) / "config.ini").read_text()
    assert f"-W %h:%p root@{drilla.address}" in copied, copied
    local = subprocess.run(
        ["sh", "-c", "ip -o addr; ip route"], capture_output=True, text=True, timeout=10
    ).stdout
    assert "10.213.77." not in local, local

    # drilla holds nothing of the drill but the cached image.
    left = drilla.ssh(
        "ip netns list | grep srht-drill; ip -o link | grep srhtdrill; "
        "nft list tables | grep srht_drill; ls -A /var/lib/srht-drill/machines /run/srht-drill "
        "2>/dev/null; ps -eo args | grep '^systemd-nspawn'; "
        "cat /proc/sys/net/ipv4/ip_forward; true"
    ).stdout.split()
    assert left == ["1"], left  # forwarding was on before the drill (the test host's)
    assert drilla.ssh("ls -d /var/cache/srht-drill/image-*").stdout.strip()
