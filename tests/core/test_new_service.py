"""``srht dev new-service``: what it writes installs with pip, migrates,
serves its pages and its API under real gunicorn (with a real meta issuing
the token), passes its own tests and is listed with its hooks, all without
an edit; and the names and folders it refuses, with what to do instead."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from srht_core.config import dump_ini
from srht_core.newservice import NewServiceError, write_service
from srht_core.testing import free_port, page_kind_problems, serve_service, site_config

#: The service new_service_venv has written and installed (see conftest.py).
NEW_SERVICE = "field-notes"
PACKAGE = "srht_field_notes"
HOOKS = (
    "blueprints,config_schema,database_schema,nav_entries,oauth_scopes,service_info,webhook_events"
)


def written_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- what it writes -------------------------------------------------------------------


def test_it_writes_the_shape_every_service_has(srht, tmp_path):
    result = srht("dev", "new-service", "field-notes")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "srht-field-notes"
    assert result.output.splitlines()[0] == (
        f"Wrote {Path('srht-field-notes')} (19 files), the service field-notes. Next:"
    )
    assert written_files(folder) == [
        "README.md",
        "pyproject.toml",
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/access.py",
        f"{PACKAGE}/api.py",
        f"{PACKAGE}/config.py",
        f"{PACKAGE}/events.py",
        f"{PACKAGE}/migrations/0001_users_and_notes.py",
        f"{PACKAGE}/models.py",
        f"{PACKAGE}/static/field-notes.css",
        f"{PACKAGE}/templates/field-notes/index.html",
        f"{PACKAGE}/templates/field-notes/new.html",
        f"{PACKAGE}/templates/field-notes/note.html",
        f"{PACKAGE}/web/__init__.py",
        f"{PACKAGE}/web/notes.py",
        "tests/conftest.py",
        "tests/test_api.py",
        "tests/test_migrations.py",
        "tests/test_pages.py",
    ]
    pyproject = (folder / "pyproject.toml").read_text()
    assert '\nfield-notes = "srht_field_notes"\n' in pyproject
    assert 'dependencies = ["srht>=0.1.0.dev0,<0.2"]' in pyproject
    plugin = (folder / PACKAGE / "__init__.py").read_text()
    assert 'core_requires=">=0.1.0.dev0,<0.2"' in plugin
    assert '"Field notes",' in plugin
    # Built only on the core's public facade (and its pytest plugin, in tests).
    for path in folder.rglob("*.py"):
        for module in re.findall(r"^(?:from|import) (srht_core\S*)", path.read_text(), re.M):
            assert module in ("srht_core", "srht_core.testing"), (path, module)


@pytest.mark.parametrize("name", ["a", "the-longest-name-allowed"])
def test_the_code_it_writes_passes_the_linters(srht, tmp_path, name):
    """With the rules srht's own code follows, whatever the name's length."""
    assert srht("dev", "new-service", name).exit_code == 0
    folder = tmp_path / f"srht-{name}"
    rules = ["--select", "E,F,W,I,B,UP,S,SIM", "--ignore", "S101"]
    for command in (["check", *rules], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "."],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_its_default_port_is_one_no_installed_service_uses(srht, tmp_path):
    assert srht("dev", "new-service", "one").exit_code == 0
    plugin = (tmp_path / "srht-one" / "srht_one" / "__init__.py").read_text()
    assert "default_port=5100," in plugin
    written = write_service("two", tmp_path, taken=["one"], ports=[5000, 5100, 5101])
    assert "default_port=5102," in (written / "srht_two" / "__init__.py").read_text()


# -- what it refuses ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Notes", "2fa", "my_notes", "notes-", "a--b", "n" * 25, ""])
def test_a_name_that_is_not_a_service_name_is_refused(srht, tmp_path, name):
    result = srht("dev", "new-service", name)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {name!r} is not a service name: use lower-case letters, digits and single "
        "dashes, starting with a letter, at most 24 characters (like 'notes' or "
        "'build-logs')\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_name_of_an_installed_service_is_refused(srht, demo_service, tmp_path):
    for name in ("demo", "todo"):
        result = srht("dev", "new-service", name)
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: a service named {name!r} is installed already (see `srht services`); "
            "choose another name\n"
        )
    result = srht("dev", "new-service", "mail")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: 'mail' is the name of the core's [mail] config section; choose another name\n",
    )
    # srht-core would be the package srht_core: the core itself.
    result = srht("dev", "new-service", "core")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: a Python package named srht_core is installed already; choose another name\n",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["site-packages"]  # demo_service's


def test_an_existing_folder_is_never_overwritten(srht, tmp_path):
    (tmp_path / "srht-notes").mkdir()
    (tmp_path / "srht-notes" / "README.md").write_text("mine\n")
    result = srht("dev", "new-service", "notes")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {Path('srht-notes')} exists already; nothing was written. Choose another "
        "name or --path, or move that folder away\n"
    )
    assert written_files(tmp_path) == ["srht-notes/README.md"]
    assert (tmp_path / "srht-notes" / "README.md").read_text() == "mine\n"


def test_a_path_that_is_not_a_folder_is_refused(srht, tmp_path):
    result = srht("dev", "new-service", "notes", "--path", "nowhere")
    assert result.exit_code == 2
    assert "Invalid value for '--path': Directory 'nowhere' does not exist." in result.stderr


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path):
    skeleton = tmp_path / "skeleton"
    (skeleton / "srht_@ident@").mkdir(parents=True)
    (skeleton / "README.md.tmpl").write_text("# @title@\n")
    (skeleton / "srht_@ident@" / "__init__.py.tmpl").write_text("@misspelt@\n")
    with pytest.raises(KeyError, match="misspelt"):
        write_service("notes", tmp_path, skeleton=skeleton)
    assert not (tmp_path / "srht-notes").exists()
    with pytest.raises(NewServiceError):
        write_service("Notes", tmp_path, skeleton=skeleton)


# -- installed by pip, as its author would -------------------------------------------------


def service_row(output: str, name: str) -> list[str]:
    """The cells of ``name``'s row in `srht services` (the last, WHY, may be empty)."""
    lines = output.splitlines()
    header = lines[0].split()
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip(), maxsplit=len(header) - 1)
        if cells[0] == name:
            return cells + [""] * (len(header) - len(cells))
    raise AssertionError(f"no row for {name} in:\n{output}")


@pytest.mark.slow
def test_it_is_listed_with_its_hooks(new_service_venv, tmp_path):
    config = tmp_path / "config.ini"
    config.write_text(dump_ini(site_config(tmp_path / "data", {NEW_SERVICE: {}})))
    listed = new_service_venv.run("--config", str(config), "services", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert service_row(listed.stdout, NEW_SERVICE) == [
        NEW_SERVICE,
        "srht-field-notes 0.1.0",
        "enabled",
        "",
    ]
    hooks = new_service_venv.run("--config", str(config), "services", "--hooks", cwd=tmp_path)
    assert hooks.returncode == 0, hooks.stderr
    assert hooks.stdout.splitlines()[0].split() == ["SERVICE", "PACKAGE", "STATUS", "HOOKS", "WHY"]
    assert service_row(hooks.stdout, NEW_SERVICE) == [
        NEW_SERVICE,
        "srht-field-notes 0.1.0",
        "enabled",
        HOOKS,
        "",
    ]


@pytest.mark.slow
@pytest.mark.postgres
def test_it_passes_its_own_tests(new_service_venv, srht_postgres):
    """Its tests run with the fixtures srht ships, on SQLite and on this
    suite's PostgreSQL: none is skipped."""
    folder = new_service_venv.sources / "srht-field-notes"
    result = subprocess.run(
        [new_service_venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        env={**new_service_venv.env, "SRHT_TEST_DATABASE_URL": srht_postgres.url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), result.stdout


@pytest.fixture(scope="module")
def served(new_service_venv: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """meta and the new service under `srht serve` (gunicorn) from the venv,
    each on the port of its origin, their SQLite databases made by `srht
    migrate`, and a token meta issued to alice for the new service."""
    folder = tmp_path_factory.mktemp("served")
    meta_port, port = free_port(), free_port()
    config = folder / "config.ini"
    services = {
        "meta": {"origin": f"http://127.0.0.1:{meta_port}"},
        NEW_SERVICE: {"origin": f"http://127.0.0.1:{port}"},
    }
    config.write_text(dump_ini(site_config(folder / "data", services)))

    def srht(*args: str) -> str:
        done = new_service_venv.run("--config", str(config), *args, cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    migrated = srht("migrate")
    srht("meta", "create-user", "alice", "--email", "alice@example.org", "--no-password")
    token = srht("meta", "token", "alice", "--scopes", f"{NEW_SERVICE}/notes:RW")
    python, env = new_service_venv.python, new_service_venv.env
    with (
        serve_service("meta", config, python=python, env=env, port=meta_port),
        serve_service(NEW_SERVICE, config, python=python, env=env, port=port) as url,
    ):
        yield {"url": url, "token": token.strip().splitlines()[-1], "migrated": migrated}


@pytest.mark.slow
def test_it_migrates_and_serves_its_pages_and_api(served):
    assert re.search(
        rf"^{NEW_SERVICE}: .*{NEW_SERVICE}: empty -> field_notes0001", served["migrated"], re.M
    )
    url, headers = served["url"], {"Authorization": f"Bearer {served['token']}"}

    empty = requests.get(url + "/", timeout=30)
    assert empty.status_code == 200
    assert "<title>Field notes · srht test</title>" in empty.text
    assert "<p>No notes yet.</p>" in empty.text
    # Its pages are the kit's, as every built-in service's are
    # (tests/services/test_kit.py checks theirs the same way).
    assert page_kind_problems(empty.text, "header") == []
    assert page_kind_problems(empty.text, "list") == []
    missing = requests.get(url + "/notes/999", timeout=30)
    assert missing.status_code == 404
    assert page_kind_problems(missing.text, "404") == []
    # Its own stylesheet comes after the core's, in the page's one stylesheet.
    stylesheet = re.search(r'<link rel="stylesheet" href="(/style\.css\?v=\w+)">', empty.text)
    assert stylesheet, empty.text
    assert ".note-text {" in requests.get(url + stylesheet.group(1), timeout=30).text

    # The token meta issued: checked here, alice mirrored from meta on first sight.
    created = requests.post(
        url + "/api/notes",
        json={"title": "First <light>", "body": "**dawn**"},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    note = created.json()
    assert (note["id"], note["owner"], note["title"]) == (1, "~alice", "First <light>")
    listed = requests.get(url + "/api/notes", headers=headers, timeout=30).json()
    assert listed == {"results": [note], "next": None}
    refused = requests.post(url + "/api/notes", json={"title": 7}, headers=headers, timeout=30)
    assert refused.status_code == 400
    assert refused.json() == {"errors": [{"field": "title", "reason": "must be a string"}]}

    page = requests.get(url + f"/notes/{note['id']}", timeout=30)
    assert page.status_code == 200
    assert "<span>First &lt;light&gt;</span>" in page.text
    assert "<strong>dawn</strong>" in page.text
    index = requests.get(url + "/", timeout=30).text
    assert f'<a href="/notes/{note["id"]}">First &lt;light&gt;</a>' in index

    document = requests.get(url + "/api/openapi.json", timeout=30).json()
    assert sorted(document["paths"]) == ["/api/notes", "/api/notes/{note_id}"]

    # Its migration made the table never reuse an id, on SQLite too.
    gone = requests.delete(url + f"/api/notes/{note['id']}", headers=headers, timeout=30)
    assert gone.status_code == 204
    again = requests.post(url + "/api/notes", json={"title": "Again"}, headers=headers, timeout=30)
    assert again.json()["id"] == note["id"] + 1
