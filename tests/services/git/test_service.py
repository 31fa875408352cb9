"""What git declares to the core and the deploy: its config keys, what a
host needs (packages, the SSH account, the repositories folder, an sshd
snippet sshd accepts), and the rules of its SSH shell's command line."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import srht_plugins.git as git_plugin
from srht_core import HostNeeds
from srht_plugins.git.events import RefUpdate
from srht_plugins.git.post_receive import parse_updates
from srht_plugins.git.ssh import Refused, Request, parse_command, sshd_snippet
from srht_plugins.git.ssh_programs import (
    KEYS,
    SHELL,
    access_answer,
    access_request,
    credential,
    read_answer,
    read_site,
)

from .conftest import require_program


@pytest.fixture
def git_config(register_plugin: Any, make_config: Any) -> Any:
    record = register_plugin(git_plugin, "git", distribution="srht")
    assert record.ok, record.reason
    return make_config


def test_host_needs(git_config: Any, plugin_host: Any, tmp_path: Path) -> None:
    config = git_config({"git": {"ssh-user": "forge"}})
    assert plugin_host.check_config(config) == []
    needs = plugin_host.call_one("host_needs", "git", config=config)
    # curl is sshd's key lookup.
    assert needs.packages == ("git", "openssh-server", "curl")
    # sshd runs the key lookup as an account of its own.
    assert needs.login_users == ("forge",) and needs.users == ("srht-git-keys",)
    assert needs.paths == (str(tmp_path / "data" / "git"),)
    assert needs.ports == (22,)
    (snippet,) = needs.sshd_snippets
    assert snippet.splitlines()[2] == "Match User forge"
    command = next(
        line.split(None, 1)[1] for line in snippet.splitlines() if "AuthorizedKeysCommand " in line
    )
    keys_credential = credential(config["srht"]["network-key"], KEYS)
    assert shlex.split(command) == [
        "/usr/bin/curl",
        "--disable",
        "--config",
        "/etc/srht-secrets/git-ssh-keys",
        "--header",
        "X-Srht-Git-Key: %u %t %k",
    ]
    # The credential allows looking keys up and nothing else.
    assert keys_credential != credential(config["srht"]["network-key"], SHELL)
    assert config["srht"]["network-key"] not in snippet and keys_credential not in snippet
    # It is in curl's config, a file for the keys account alone, which the
    # deploy writes, with where to ask.
    (secret,) = needs.secret_files
    assert (secret.path, secret.owner) == ("/etc/srht-secrets/git-ssh-keys", "srht-git-keys")
    assert f'header = "X-Srht-Git-Ssh: {keys_credential}"\n' in secret.text
    assert f'url = "{config["git"]["origin"]}/internal/ssh/key"\n' in secret.text
    assert "    AuthorizedKeysCommandUser srht-git-keys\n" in snippet

    other = git_config({"git": {"repos": "/srv/git"}})
    plugin_host.check_config(other)
    needs = plugin_host.call_one("host_needs", "git", config=other)
    assert needs.paths == ("/srv/git",) and needs.login_users == ("git",)


def test_sshd_accepts_the_snippet(git_config: Any, plugin_host: Any, tmp_path: Path) -> None:
    site = git_config({"git": {"ssh-user": "git"}})
    plugin_host.check_config(site)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    require_program(Path(sshd).exists(), "openssh-server is not installed")
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # sshd -t wants its privilege separation folder, which only sshd's own
    # unit creates: missing on a fresh machine where sshd never ran.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {key}\nUsePAM no\n" + sshd_snippet(site))
    checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git-upload-pack '~alice/repo'", Request("git-upload-pack", "alice", "repo")),
        ("git-receive-pack '/~alice/repo.git'", Request("git-receive-pack", "alice", "repo")),
        ("git upload-pack 'alice/my.repo'", Request("git-upload-pack", "alice", "my.repo")),
        ("git-upload-archive '~bob/x/'", Request("git-upload-archive", "bob", "x")),
    ],
)
def test_the_shell_accepts_git_commands_on_repositories(command: str, expected: Request) -> None:
    assert parse_command(command) == expected


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("", "Refused to run ''"),
        ("bash", "Refused to run 'bash'"),
        ("git-upload-pack '~alice/repo'; rm -rf /", "Refused: "),
        ("git-upload-pack ~alice/../etc", "Refused: '~alice/../etc' is not a repository"),
        (
            "git-upload-pack '/etc/ssh/sshd_config'",
            "Refused: '/etc/ssh/sshd_config' is not a repository",
        ),
        ("git-upload-pack ~alice/repo --help", "Refused: "),
        ("git-upload-pack 'unterminated", "Refused to run"),
        ("scp -t /tmp", "Refused to run 'scp -t /tmp'"),
    ],
)
def test_the_shell_refuses_everything_else(command: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_command(command)
    assert str(refused.value).startswith(reason)


def test_post_receive_lines_become_ref_updates() -> None:
    zero = "0" * 40
    a, b = "a" * 40, "b" * 40
    lines = [
        f"{zero} {a} refs/heads/main",
        f"{a} {b} refs/heads/main",
        f"{b} {zero} refs/tags/v1",
        "garbage",
    ]
    assert parse_updates(lines) == [
        RefUpdate("refs/heads/main", None, a),
        RefUpdate("refs/heads/main", a, b),
        RefUpdate("refs/tags/v1", b, None),
    ]


def test_a_site_without_ssh_offers_only_https(
    git_config: Any, plugin_host: Any, make_app: Any, tmp_path: Path
) -> None:
    """``[git] ssh = no`` (what ``srht up`` writes: it runs no sshd): the
    deploy sets up no sshd for git, and the pages and the API offer HTTPS
    alone, rather than an SSH URL nothing answers."""
    from srht_core import db_session, mirror_user, state_of
    from srht_core.testing import sign_in
    from srht_plugins.git.api import repository_json
    from srht_plugins.git.repos import create_repository

    config = git_config({"git": {"ssh": "no"}})
    assert plugin_host.check_config(config) == []
    needs = plugin_host.call_one("host_needs", "git", config=config)
    assert needs == HostNeeds(packages=("git",), paths=(str(tmp_path / "data" / "git"),))

    app = make_app("git", config)
    state_of(app).revoked = lambda kind, ident: False  # no meta to ask here
    with app.app_context():
        alice = mirror_user({"id": 1, "username": "alice", "email": "alice@example.org"})
        db_session.commit()
        repository = create_repository(alice, "empty")
        assert repository_json(repository, alice)["clone_urls"]["ssh"] is None
    client = app.test_client()
    sign_in(client, 1)
    page = client.get("/~alice/empty").get_data(as_text=True)
    assert "git remote add origin" in page and "SSH" not in page and "git@" not in page


def test_a_development_config_serves_no_ssh(tmp_path: Path) -> None:
    from srht_core.config import load_config
    from srht_core.devconfig import write_dev_config
    from srht_core.plugins import PluginHost

    path = tmp_path / "config.ini"
    write_dev_config(path, PluginHost())
    assert "\n[git]\n" in path.read_text() and "\nssh = no\n" in path.read_text()
    assert load_config(path).raw_value("git", "ssh") == "no"


def test_the_forced_command_reads_the_config_and_answers_as_written(tmp_path: Path) -> None:
    """The forced command reads two keys without configparser and its
    answer without json: both as the service and the config mean them."""
    config = tmp_path / "config.ini"
    config.write_text(
        "# a comment: origin = no\n[srht]\nnetwork-key: k3y=with=signs\n"
        "[git]\n; origin = http://commented\nOrigin =  http://127.0.0.1:5001  \n"
        "repos = /srv/git\n  continued\n"
    )
    assert read_site(str(config)) == ("http://127.0.0.1:5001", "k3y=with=signs")
    answer = {
        "program": "upload-pack",
        "path": "/srv/git/1.git",
        "env": {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_VALUE_0": "a b=c"},
        "notice": "~a/b is now ~a/c; update your remote:\n  git remote set-url origin x",
    }
    assert read_answer(access_answer(answer)) == answer
    assert read_answer(access_answer({"refused": "No."})) == {
        "program": "",
        "path": "",
        "env": {},
        "refused": "No.",
    }
    assert access_request("SHA256:x", b"git-upload-pack '~a/b'") == (
        b"SHA256:x\0git-upload-pack '~a/b'"
    )
