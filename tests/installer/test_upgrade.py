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
import shutil
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


# -- a service whose upgrade fails, rolled back by itself --------------------------------
#
# On the same site, now on this tree's srht: notes (tests/fixtures/notes-plugin),
# a third-party service, is added at 1.0 on delta and given data, then
# upgraded to 2.0, whose migration fails on the real database (its rehearsal
# on a copy passes: the failing check needs live rows), while paste, on the
# same host, gets a new config in the same run. notes comes back on 1.0 with
# its data as before, paste goes on, the exit status says it failed; 2.1,
# fixed, then upgrades.

NOTES_PLUGIN = REPOSITORY / "tests" / "fixtures" / "notes-plugin"
NOTES = [("first", "a body"), ("second", None), ("third", "another body")]
#: The release each of notes' versions follows: it ships that one's
#: migrations too (upgrades/VERSION holds only what is new in VERSION).
NOTES_BASE = {"3.0": "2.1", "3.1": "3.0"}


@pytest.fixture(scope="module")
def notes_venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A virtualenv with this tree's srht (editable) where notes' versions
    are installed in turn; ``install(version)`` puts one there."""
    folder = tmp_path_factory.mktemp("notes-venv")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "-e", str(REPOSITORY)], check=True, capture_output=True)

    def install(version: str) -> None:
        source = folder / f"notes-{version}"
        shutil.copytree(NOTES_PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__"))
        project = source / "pyproject.toml"
        project.write_text(project.read_text().replace('version = "1.0"', f'version = "{version}"'))
        release: str | None = version
        while release is not None:
            for migration in (source / "upgrades" / release).glob("*.py"):
                shutil.copy(migration, source / "srht_test_notes" / "migrations")
            release = NOTES_BASE.get(release)
        for module in (source / "upgrades" / version / "package").glob("*.py"):
            shutil.copy(module, source / "srht_test_notes")
        subprocess.run(
            [*pip, "--no-index", "--force-reinstall", str(source)], check=True, capture_output=True
        )

    return {"python": python, "install": install}


def notes_install(workdir: Path, notes_venv: dict[str, Any], *args: str) -> Any:
    """``srht-install ARGS`` run by the Python holding notes."""
    python = notes_venv["python"]
    env = {**os.environ, "COLUMNS": "200", "PYINFRA_PROGRESS": "off"}
    env.pop("SRHT_CONFIG", None)
    env["PATH"] = f"{python.parent}:{env['PATH']}"
    result = subprocess.run(
        [str(python), "-m", "srht_installer.cli", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    with open(workdir / "installer-output.log", "a") as log:
        log.write(f"\n$ srht-install {' '.join(args)}  (exit {result.returncode})\n")
        log.write(result.stdout + result.stderr)
    return result


def notes_page(hosts: TestHosts, workdir: Path) -> Any:
    """What notes' ``/`` answers through nginx on delta: its version and count."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "--cacert",
            str(workdir / "site-ca.pem"),
            "--resolve",
            f"notes.{DOMAIN}:443:{hosts.address('delta')}",
            f"https://notes.{DOMAIN}/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def notes_rows(hosts: TestHosts) -> str:
    """notes' rows and its migrations' revisions, as PostgreSQL reads them."""
    query = (
        "SELECT id, title, body FROM note ORDER BY id; "
        "SELECT version_num FROM alembic_version_notes"
    )
    psql = "runuser -u postgres -- psql -XAtq -d srht_notes"
    return hosts["gamma"].ssh(f"{psql} -c '{query}'").stdout


def restarted_for(hosts: TestHosts, host: str, unit: str) -> str:
    """What the deploy last restarted ``unit`` for (the fingerprint of its
    software, config and unit, recorded once the restart succeeded)."""
    return hosts[host].ssh(f"cat /var/lib/srht-deploy/applied-{unit}").stdout


def test_a_third_party_service_is_added_with_data(
    test_hosts: TestHosts, workdir: Path, notes_venv: dict[str, Any], state: dict[str, Any]
) -> None:
    notes_venv["install"]("1.0")

    added = notes_install(workdir, notes_venv, "add", "notes", "--host", "delta", "--yes")

    assert added.returncode == 0, (added.stdout + added.stderr)[-6000:]
    # The rows themselves, as the site's data: notes 1.0 has no API to write them.
    values = ", ".join(
        f"('{title}', {'NULL' if body is None else repr(body)}, now(), now())"
        for title, body in NOTES
    )
    insert = f"INSERT INTO note (title, body, created, updated) VALUES {values}"  # noqa: S608
    psql = "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d srht_notes"
    test_hosts["gamma"].ssh(f'{psql} -c "{insert}"')
    assert notes_page(test_hosts, workdir) == {"version": "1.0", "notes": 3}
    state["notes_rows"] = notes_rows(test_hosts)
    assert state["notes_rows"].endswith("notes0001\n")


def test_a_failing_migration_rolls_its_service_back_and_the_others_go_on(
    test_hosts: TestHosts, workdir: Path, notes_venv: dict[str, Any], state: dict[str, Any]
) -> None:
    notes_venv["install"]("2.0")
    config = workdir / "config.ini"
    config.write_text(config.read_text().replace("[paste]\n", "[paste]\nmax-file-size = 2097152\n"))
    paste_before = restarted_for(test_hosts, "delta", "srht-paste.service")

    result = notes_install(workdir, notes_venv, "upgrade", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert "notes: its migrations ran on a copy" in result.stdout  # the rehearsal passed
    assert "notes: its migration failed on delta:" in result.stderr, output[-6000:]
    assert 'column "body" of relation "note" contains null values' in result.stderr
    assert re.search(
        r"Rolled back notes: its code \(srht-test-notes 1\.0\) on delta; its database "
        r"\(srht_notes on gamma, from srht-backup-\S+\.tar\)\.",
        result.stderr,
    ), output[-6000:]
    assert "notes answers again on its previous code." in result.stderr
    assert "The upgrade rolled back notes; the other services are upgraded." in result.stderr
    # notes: its old code on its old data.
    assert notes_page(test_hosts, workdir) == {"version": "1.0", "notes": 3}
    assert notes_rows(test_hosts) == state["notes_rows"]
    # paste, on the same host, went through its steps: restarted with its
    # new config, and answering.
    assert restarted_for(test_hosts, "delta", "srht-paste.service") != paste_before
    status, listed = paste_api(test_hosts, workdir, "GET", "/api/pastes", state["tokens"]["alice"])
    assert status == 200, listed
    assert rows(test_hosts) == state["rows"]


def test_after_the_fix_the_upgrade_completes(
    test_hosts: TestHosts, workdir: Path, notes_venv: dict[str, Any], state: dict[str, Any]
) -> None:
    notes_venv["install"]("2.1")

    result = notes_install(workdir, notes_venv, "upgrade", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"notes: migrations applied: notes0002", result.stdout)
    assert "Upgraded." in result.stdout
    assert notes_page(test_hosts, workdir) == {"version": "2.1", "notes": 3}
    assert notes_rows(test_hosts).endswith("notes0002\n")


# -- a service whose new code fails its health check, rolled back by itself ------------
#
# notes 3.0's migration (notes0003) runs, its daemons start on the new code,
# and every request, /healthz too, answers 503: the deploy's health check
# fails. notes comes back on 2.1's code with its database as the backup
# taken before this upgrade holds it (notes0002: the migration that ran is
# undone); paste, upgraded in the same run, stays so. 3.1, fixed, upgrades.


def test_a_failing_health_check_rolls_its_service_back_and_the_others_go_on(
    test_hosts: TestHosts, workdir: Path, notes_venv: dict[str, Any], state: dict[str, Any]
) -> None:
    notes_venv["install"]("3.0")
    config = workdir / "config.ini"
    config.write_text(
        config.read_text().replace("max-file-size = 2097152", "max-file-size = 3145728")
    )
    paste_before = restarted_for(test_hosts, "delta", "srht-paste.service")
    notes_before = notes_rows(test_hosts)
    assert notes_before.endswith("notes0002\n")

    result = notes_install(workdir, notes_venv, "upgrade", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert "notes: its migrations ran on a copy" in result.stdout
    assert "notes: its health check failed on delta:" in result.stderr, output[-6000:]
    assert "notes answered 503" in result.stderr
    assert "notes 3.0 cannot serve: its new code is broken" in result.stderr
    assert re.search(
        r"Rolled back notes: its code \(srht-test-notes 2\.1\) on delta; its database "
        r"\(srht_notes on gamma, from srht-backup-\S+\.tar\)\.",
        result.stderr,
    ), output[-6000:]
    assert "notes answers again on its previous code." in result.stderr
    assert "The upgrade rolled back notes; the other services are upgraded." in result.stderr
    # notes: 2.1's code, on its database of before the upgrade (notes0003 undone).
    assert notes_page(test_hosts, workdir) == {"version": "2.1", "notes": 3}
    assert notes_rows(test_hosts) == notes_before
    # paste restarted onto its new config, and answers.
    assert restarted_for(test_hosts, "delta", "srht-paste.service") != paste_before
    status, listed = paste_api(test_hosts, workdir, "GET", "/api/pastes", state["tokens"]["alice"])
    assert status == 200, listed


def test_after_the_code_is_fixed_the_upgrade_completes(
    test_hosts: TestHosts, workdir: Path, notes_venv: dict[str, Any]
) -> None:
    notes_venv["install"]("3.1")

    result = notes_install(workdir, notes_venv, "upgrade", "--yes")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"notes: migrations applied: notes0003", result.stdout)
    assert "Upgraded." in result.stdout
    assert notes_page(test_hosts, workdir) == {"version": "3.1", "notes": 3}
    assert notes_rows(test_hosts).endswith("notes0003\n")
