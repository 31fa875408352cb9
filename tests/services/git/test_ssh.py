"""Clone and push over SSH: an sshd started here, on a loopback port, with
its own host key and config, configured with the service's own sshd
snippet, so its AuthorizedKeysCommand is ``curl`` asking the running git
service, and every login runs the forced command the service puts in the
key's line (``ssh_programs.py`` under the service's interpreter). Keys are
registered at meta through its keys page, as a person does.

sshd runs the key lookup as ``nobody``, who can read nothing of the site
but the lookup's curl config, when the tests run as root (else as the
account running the tests). The git account is
the account running the tests (root in CI), so sshd may switch to it;
root logs in only with the forced command (``PermitRootLogin
forced-commands-only``).
"""

from __future__ import annotations

import base64
import getpass
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from srht_plugins.git.ssh import CURL, keys_secret, sshd_snippet
from srht_plugins.git.ssh_programs import (
    HEADER,
    KEY_HEADER,
    KEYS,
    SHELL,
    access_request,
    credential,
    fingerprint,
    read_answer,
)

from .conftest import GitResult, GitStack, KeyPair, make_key, register_key, require_program

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SSHD = "/usr/sbin/sshd"


def _keys_user() -> str:
    """``nobody`` (who can read nothing of the site) when the tests run as
    root, else the account running the tests."""
    return "nobody" if os.geteuid() == 0 else getpass.getuser()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Sshd:
    port: int
    user: str
    keys_user: str
    log: Path
    folder: Path

    def url(self, owner: str, name: str) -> str:
        return f"{self.user}@127.0.0.1:~{owner}/{name}"


@pytest.fixture(scope="module")
def sshd(git_stack: GitStack) -> Iterator[Sshd]:
    require_program(Path(SSHD).exists(), "openssh-server is not installed")
    require_program(os.geteuid() == 0, "sshd must start as root to log users in")
    require_program(Path(CURL).exists(), "curl is not installed")
    # sshd's privilege separation folder; systemd makes it on a real host.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="srht-sshd-"))
    os.chmod(folder, 0o755)  # noqa: S103 - the key command's user reads the config here
    try:
        host_key = folder / "host_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
        )
        from srht_core.testing import free_port

        port = free_port()
        user = getpass.getuser()
        keys_user = _keys_user()
        # The site as the sshd sees it: the test's config, with this account as
        # the git account.
        site = {**{name: dict(git_stack.config[name]) for name in ("srht", "git")}}
        site["git"]["ssh-user"] = user
        # The lookup credential, as the deploy writes it: the keys account's alone.
        lookup = _credential_file(folder, keys_user, keys_secret(site).text)
        config = folder / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {folder / 'sshd.pid'}\nUsePAM no\nPermitRootLogin forced-commands-only\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "LogLevel VERBOSE\n"
            + sshd_snippet(site, keys_user=keys_user, credential_file=str(lookup))
        )
        assert credential(site["srht"]["network-key"], KEYS) not in config.read_text()
        checked = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        log = folder / "sshd.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + 30
            while not _port_open(port):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "sshd did not listen"
                time.sleep(0.05)
            yield Sshd(port, user, keys_user, log, folder)
        finally:
            process.terminate()
            process.wait(15)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ssh_command(sshd: Sshd, key: KeyPair) -> list[str]:
    return [
        "ssh",
        "-p",
        str(sshd.port),
        "-i",
        str(key.private),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
    ]


def git_over_ssh(
    git_stack: GitStack, sshd: Sshd, key: KeyPair, *args: str, cwd: Path | None = None
) -> GitResult:
    env = git_stack.git_env(GIT_SSH_COMMAND=shlex.join(ssh_command(sshd, key)))
    return git_stack.git(*args, cwd=cwd, env=env)


def run_ssh(sshd: Sshd, key: KeyPair, *command: str, user: str | None = None) -> GitResult:
    result = subprocess.run(
        [*ssh_command(sshd, key), "-T", f"{user or sshd.user}@127.0.0.1", *command],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return GitResult(result.returncode, result.stdout, result.stderr)


def test_push_clone_and_fetch_over_ssh(git_stack: GitStack, sshd: Sshd) -> None:
    alice = git_stack.new_user("alice")
    key = register_key(git_stack, alice)
    git_stack.create_repo(git_stack.token(alice), "over-ssh", "private")
    work = git_stack.work_tree({"hello.txt": "hello\n"})

    pushed = git_over_ssh(
        git_stack, sshd, key, "push", sshd.url(alice, "over-ssh"), "main", cwd=work
    )
    assert pushed.ok, pushed.stderr + sshd.log.read_text()[-3000:]
    assert f"remote:   {git_stack.git_url}/~{alice}/over-ssh" in pushed.stderr

    clone = git_stack.fresh_dir()
    cloned = git_over_ssh(git_stack, sshd, key, "clone", sshd.url(alice, "over-ssh"), str(clone))
    assert cloned.ok, cloned.stderr
    assert (clone / "hello.txt").read_text() == "hello\n"

    second = git_stack.commit(work, {"more.txt": "more\n"}, "second")
    assert git_over_ssh(
        git_stack, sshd, key, "push", sshd.url(alice, "over-ssh"), "main", cwd=work
    ).ok
    fetched = git_over_ssh(git_stack, sshd, key, "fetch", "origin", cwd=clone)
    assert fetched.ok, fetched.stderr
    assert git_stack.git("rev-parse", "origin/main", cwd=clone).stdout.strip() == second

    archived = git_over_ssh(
        git_stack,
        sshd,
        key,
        "archive",
        "--format=tar",
        "--remote=" + sshd.url(alice, "over-ssh"),
        "main",
        "hello.txt",
    )
    assert archived.ok, archived.stderr
    assert "hello.txt" in archived.stdout


def test_ssh_access_follows_the_repository_rules(git_stack: GitStack, sshd: Sshd) -> None:
    alice, bob, carol = (git_stack.new_user(n) for n in ("alice", "bob", "carol"))
    alice_token = git_stack.token(alice)
    git_stack.create_repo(alice_token, "public-one")
    git_stack.create_repo(alice_token, "private-one", "private")
    git_stack.grant(alice_token, alice, "public-one", carol, "rw")
    bob_key, carol_key = register_key(git_stack, bob), register_key(git_stack, carol)
    work = git_stack.work_tree({"a.txt": "a\n"})

    # bob may clone the public repository, not push to it, and not see the private one.
    cloned = git_over_ssh(
        git_stack, sshd, bob_key, "clone", sshd.url(alice, "public-one"), str(git_stack.fresh_dir())
    )
    assert cloned.ok, cloned.stderr
    pushed = git_over_ssh(
        git_stack, sshd, bob_key, "push", sshd.url(alice, "public-one"), "main", cwd=work
    )
    assert not pushed.ok
    assert pushed.stderr.startswith(
        f"You may read ~{alice}/public-one but not push to it; "
        f"ask ~{alice} for write access.\n"
        "fatal: Could not read from remote repository."
    )
    for name in ("private-one", "no-such-repo"):
        refused = git_over_ssh(
            git_stack, sshd, bob_key, "clone", sshd.url(alice, name), str(git_stack.fresh_dir())
        )
        assert not refused.ok
        assert refused.stderr.splitlines()[1:3] == [
            f"Repository ~{alice}/{name} not found, or you have no access to it.",
            "fatal: Could not read from remote repository.",
        ]

    # carol was granted write access.
    pushed = git_over_ssh(
        git_stack, sshd, carol_key, "push", sshd.url(alice, "public-one"), "main", cwd=work
    )
    assert pushed.ok, pushed.stderr


def test_nothing_but_git_runs(git_stack: GitStack, sshd: Sshd) -> None:
    alice = git_stack.new_user("alice")
    key = register_key(git_stack, alice)
    git_stack.create_repo(git_stack.token(alice), "mine")

    shell = run_ssh(sshd, key)
    assert shell.returncode == 1
    assert shell.stderr == (
        f"Hi ~{alice}! You have authenticated, but there is no shell here: "
        f"use git with a URL like {sshd.user}@127.0.0.1:~{alice}/REPO.\n"
    )

    # Each is a login of its own; the shell's parsing has its own table of
    # cases in test_service.py.
    refused = run_ssh(sshd, key, "sh", "-c", "id")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "Refused to run 'sh -c id': this account runs only git-upload-pack, "
        "git-upload-archive, git-receive-pack on a repository (~user/repo); there is no "
        "shell.\n"
    )
    refused = run_ssh(sshd, key, "git-upload-pack", "/etc")
    assert refused.returncode == 1
    assert refused.stderr == "Refused: '/etc' is not a repository; give one as ~user/repo.\n"


def test_unknown_keys_and_other_accounts_are_refused(git_stack: GitStack, sshd: Sshd) -> None:
    alice = git_stack.new_user("alice")
    git_stack.create_repo(git_stack.token(alice), "mine")
    stranger_key = make_key(git_stack)
    refused = git_over_ssh(
        git_stack, sshd, stranger_key, "clone", sshd.url(alice, "mine"), str(git_stack.fresh_dir())
    )
    assert not refused.ok
    assert f"{sshd.user}@127.0.0.1: Permission denied (publickey)." in refused.stderr

    # A registered key works only for the git account.
    key = register_key(git_stack, alice)
    other = run_ssh(sshd, key, "git-upload-pack", f"~{alice}/mine", user="nobody")
    assert other.returncode == 255
    assert "Permission denied (publickey)" in other.stderr


def test_a_suspended_user_is_told_over_ssh(git_stack: GitStack, sshd: Sshd) -> None:
    mallory = git_stack.new_user("mallory")
    key = register_key(git_stack, mallory)
    git_stack.create_repo(git_stack.token(mallory), "mine")
    assert git_over_ssh(
        git_stack, sshd, key, "clone", sshd.url(mallory, "mine"), str(git_stack.fresh_dir())
    ).ok

    git_stack.suspend(mallory, "Abuse of the service.")

    refused = git_over_ssh(
        git_stack, sshd, key, "clone", sshd.url(mallory, "mine"), str(git_stack.fresh_dir())
    )
    assert not refused.ok
    assert refused.stderr.splitlines()[1:3] == [
        "Your account is suspended: Abuse of the service.",
        "fatal: Could not read from remote repository.",
    ]


def _credential_file(folder: Path, owner: str, text: str) -> Path:
    """A credential file readable by ``owner`` alone (mode 0400)."""
    path = Path(tempfile.mkstemp(prefix="credential-", dir=folder)[1])
    path.write_text(text)
    if owner != getpass.getuser():
        shutil.chown(path, owner)
    path.chmod(0o400)
    return path


def _keys_command(
    git_stack: GitStack, sshd: Sshd, key: KeyPair, keys_credential: str | None
) -> Any:
    """Run the key lookup as sshd does (its AuthorizedKeysCommand, as its
    account), with ``keys_credential`` in its curl config (``None``: a
    config it cannot read)."""
    key_type, blob = key.public.split()[:2]
    site = {name: dict(git_stack.config[name]) for name in ("srht", "git")}
    text = keys_secret(site).text.replace(
        credential(site["srht"]["network-key"], KEYS), keys_credential or "x"
    )
    owner = sshd.keys_user if keys_credential is not None else "root"
    lookup = _credential_file(sshd.folder, owner, text)
    snippet = sshd_snippet(site, keys_user=sshd.keys_user, credential_file=str(lookup))
    line = next(x for x in snippet.splitlines() if "AuthorizedKeysCommand " in x)
    command = [
        word.replace("%u", sshd.user).replace("%t", key_type).replace("%k", blob)
        for word in shlex.split(line.split(None, 1)[1])
    ]
    assert command[:2] == [CURL, "--disable"] and command[-1].startswith(KEY_HEADER + ": ")
    if sshd.keys_user != getpass.getuser():
        command = ["runuser", "-u", sshd.keys_user, "--", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_the_key_lookup_writes_nothing_and_needs_its_credential(
    git_stack: GitStack, sshd: Sshd
) -> None:
    """sshd asks for keys before the client has proved it holds one: the
    lookup mirrors no user (the first login does), and its credential is
    good for nothing else."""
    network_key = str(git_stack.config["srht"]["network-key"])
    bob = git_stack.new_user("bob")
    key = register_key(git_stack, bob)

    looked_up = _keys_command(git_stack, sshd, key, credential(network_key, KEYS))
    assert looked_up.returncode == 0, looked_up.stderr
    options, _, listed_key = looked_up.stdout.strip().rpartition('" ')
    assert listed_key == key.public.rsplit(" ", 1)[0]
    # The forced command: this file of the git package, under the service's
    # interpreter without site-packages.
    assert options.startswith('restrict,command="') and " -I -S " in options
    assert "/srht_plugins/git/ssh_programs.py --config " in options
    assert git_stack.git_user_type(bob) is None

    # A key nobody registered: no line, and no error for sshd to log.
    unknown = _keys_command(git_stack, sshd, make_key(git_stack), credential(network_key, KEYS))
    assert (unknown.returncode, unknown.stdout) == (0, "")
    # The wrong credential finds nothing: sshd logs curl's error, lets no key in.
    forged = _keys_command(git_stack, sshd, key, credential(network_key, SHELL))
    assert (forged.returncode, forged.stdout) == (22, "")
    assert "404" in forged.stderr
    if sshd.keys_user != getpass.getuser():
        # A curl config it cannot read: sshd logs why, no key is let in.
        unreadable = _keys_command(git_stack, sshd, key, None)
        assert unreadable.returncode != 0 and unreadable.stdout == ""
        assert "Permission denied" in unreadable.stderr or "config" in unreadable.stderr

    # The first login mirrors bob, after sshd has checked the key.
    hello = run_ssh(sshd, key)
    assert hello.returncode == 1
    assert hello.stderr.startswith(f"Hi ~{bob}! You have authenticated")
    assert git_stack.git_user_type(bob) == "active"

    # The lookup credential cannot ask for access, nor can no credential.
    body = access_request(fingerprint_of(key), f"git-upload-pack '~{bob}/x'".encode())
    for headers in ({HEADER: credential(network_key, KEYS)}, {}):
        asked = requests.post(
            git_stack.git_url + "/internal/ssh/access", data=body, headers=headers, timeout=30
        )
        assert asked.status_code == 404
    allowed = requests.post(
        git_stack.git_url + "/internal/ssh/access",
        data=body,
        headers={HEADER: credential(network_key, SHELL)},
        timeout=30,
    )
    assert read_answer(allowed.content) == {
        "program": "",
        "path": "",
        "env": {},
        "refused": f"Repository ~{bob}/x not found, or you have no access to it.",
    }


def test_a_removed_key_stops_working_at_once(git_stack: GitStack, sshd: Sshd) -> None:
    """Nothing keeps keys between logins: every lookup asks the git service,
    which asks meta, so the login right after a removal is refused."""
    dave = git_stack.new_user("dave")
    key = register_key(git_stack, dave)
    git_stack.create_repo(git_stack.token(dave), "mine")
    assert git_over_ssh(git_stack, sshd, key, "ls-remote", sshd.url(dave, "mine")).ok

    token = git_stack.token(dave, "meta/keys:RW")
    auth = {"Authorization": f"Bearer {token}"}
    listed = requests.get(git_stack.meta_url + "/api/ssh-keys", headers=auth, timeout=30)
    assert listed.status_code == 200, listed.text
    (registered,) = listed.json()["results"]
    removed = requests.delete(
        f"{git_stack.meta_url}/api/ssh-keys/{registered['id']}", headers=auth, timeout=30
    )
    assert removed.status_code == 204, removed.text

    refused = git_over_ssh(git_stack, sshd, key, "ls-remote", sshd.url(dave, "mine"))
    assert not refused.ok
    assert f"{sshd.user}@127.0.0.1: Permission denied (publickey)." in refused.stderr


def fingerprint_of(key: KeyPair) -> str:
    return fingerprint(base64.b64decode(key.public.split()[1]))
