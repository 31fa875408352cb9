"""An upgrade from an earlier srht, as a self-hoster meets it.

The site (meta on gamma with PostgreSQL, paste on delta) is installed by
the installer of ``OLD``, a commit of main from before the core's migration
core0004 and meta's and paste's service-kit migrations, taken from this
repository's own history (``git archive``) into a virtualenv of its own;
the deploy builds that tree's wheelhouse. The site gets data through its
interfaces (users and their tokens from meta's CLI),
then this tree's ``srht-install upgrade`` lists the migrations in its plan,
backs up, rehearses them on copies, applies them, and the data reads back
the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from installsite import DOMAIN, Installer, answers_toml

if TYPE_CHECKING:  # the class itself would be collected as a test class
    from testhosts import TestHosts

pytestmark = [
    pytest.mark.installer,
    pytest.mark.deploy,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]

#: main just before "idempotency: every API write commits once" (core0004).
OLD = "920765087e579ebe29742b98ffd79063f175e2ae"
REPOSITORY = Path(__file__).parents[2]
SCOPES = "paste/pastes:RW"
#: What must read back the same: (database, table, ORDER BY).
TABLES = [
    ("srht_meta", "user", "id"),
    ("srht_paste", "paste", "id"),
    ("srht_paste", "paste_file", "id"),
]
#: The columns both versions have (the upgrade adds others).
KEPT_COLUMNS = {
    "user": "id, username, email, password_hash, user_type",
    "paste": "id, slug, owner_id, visibility",
    "paste_file": "id, paste_id, position, filename, size, content",
}


@pytest.fixture(scope="module")
def old_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with srht at ``OLD`` (an editable install of its tree,
    so the deploy builds its wheel from that tree)."""
    folder = tmp_path_factory.mktemp("old-srht")
    source = folder / "src"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", OLD], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        + ["-e", str(source)],
        check=True,
        capture_output=True,
    )
    return python


def rows(hosts: TestHosts) -> dict[str, Any]:
    """Count and hash of the kept columns of each table of ``TABLES``."""
    out = {}
    for database, table, order in TABLES:
        query = f'COPY (SELECT {KEPT_COLUMNS[table]} FROM "{table}" ORDER BY {order}) TO STDOUT'  # noqa: S608
        text = (
            hosts["gamma"]
            .ssh(f"runuser -u postgres -- psql -XAtq -d {database} -c '{query}'")
            .stdout
        )
        out[f"{database}.{table}"] = (
            len(text.splitlines()),
            hashlib.sha256(text.encode()).hexdigest(),
        )
    return out


def paste_api(
    hosts: TestHosts, workdir: Path, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    args = ["-X", method, "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "--cacert",
            str(workdir / "site-ca.pem"),
            "--resolve",
            f"paste.{DOMAIN}:443:{hosts.address('delta')}",
            "-w",
            "\n%{http_code}",
            *args,
            f"https://paste.{DOMAIN}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text, _, status = result.stdout.rpartition("\n")
    return int(status or 0), json.loads(text) if text.strip().startswith(("{", "[")) else text


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    return {}


def test_the_older_srht_installs_a_site_with_data(
    test_hosts: TestHosts, workdir: Path, old_python: Path, state: dict[str, Any]
) -> None:
    (workdir / "answers.toml").write_text(answers_toml(test_hosts))
    env = {**os.environ, "COLUMNS": "200", "PYINFRA_PROGRESS": "off"}
    env.pop("SRHT_CONFIG", None)
    env["PATH"] = f"{old_python.parent}:{env['PATH']}"

    installed = subprocess.run(
        [str(old_python), "-m", "srht_installer.cli", "--answers", "answers.toml", "--yes"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        stdin=subprocess.DEVNULL,
    )

    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-6000:]
    gamma = test_hosts["gamma"]
    core = "SELECT version_num FROM alembic_version_srht"
    paste_core = gamma.ssh(f"runuser -u postgres -- psql -XAt -d srht_paste -c '{core}'").stdout
    assert paste_core == "core0003\n"
    gamma.ssh(
        f"runuser -u srht-meta -- srht meta create-user bob --email bob@{DOMAIN} --password-stdin",
        input="a long enough password\n",
    )
    tokens = {}
    for username in ("alice", "bob"):
        made = gamma.ssh(f"runuser -u srht-meta -- srht meta token {username} --scopes '{SCOPES}'")
        tokens[username] = made.stdout.strip().splitlines()[-1].split()[-1]
    # The older paste answered the API 503 here ("token revocations cannot
    # be checked right now"), so the data is meta's: users and their tokens.
    state.update(tokens=tokens, rows=rows(test_hosts))


def test_the_upgrade_plan_lists_the_new_migrations_and_changes_nothing(
    test_hosts: TestHosts, srht_install: Installer, state: dict[str, Any]
) -> None:
    result = srht_install("upgrade", "--dry-run")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # Each database's own (meta's and paste's) and the core's, in each.
    assert result.stdout.count("srht core0004: idempotency keys") == 2
    assert result.stdout.count("srht core0005: the core's own tables never reuse ids") == 2
    for migration in ("meta meta0003", "meta meta0004", "paste paste0002", "paste paste0003"):
        assert migration in result.stdout
    assert re.search(
        r"│ gamma\s+│ srht\s+│ \S+ \(\w{12}\)\s+│ \S+ \(\w{12}\) changes", result.stdout
    )
    assert re.search(r"Restarts on gamma: .*srht-meta\.service", result.stdout)
    assert "Dry run: nothing was changed" in result.stdout
    assert rows(test_hosts) == state["rows"]


def test_the_upgrade_applies_them_and_the_data_reads_back(
    test_hosts: TestHosts, workdir: Path, srht_install: Installer, state: dict[str, Any]
) -> None:
    result = srht_install("upgrade", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for service in ("meta", "paste"):
        assert re.search(rf"{service}: its migrations ran on a copy in \d+\.\ds", result.stdout)
    assert "meta: migrations applied: core0004, core0005, meta0003, meta0004" in result.stdout
    assert "paste: migrations applied: core0004, core0005, paste0002, paste0003" in result.stdout
    assert "Upgraded." in result.stdout
    assert len(list((workdir / "backups").glob("srht-backup-*.tar"))) == 1
    assert rows(test_hosts) == state["rows"]
    # The tokens meta issued before the upgrade work after it.
    for token in state["tokens"].values():
        status, listed = paste_api(test_hosts, workdir, "GET", "/api/pastes", token)
        assert status == 200 and listed["results"] == [], listed
    assert srht_install("status").returncode == 0

    again = srht_install("upgrade", "--dry-run")
    assert again.returncode == 0
    assert again.stdout.count("none (up to date)") == 2
