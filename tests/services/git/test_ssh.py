"""Clone and push over SSH: an sshd started here, on a loopback port, with
its own host key and config, configured with the service's own sshd
snippet, so its AuthorizedKeysCommand is ``srht-git-keys`` (the installed
program, asking the running git service) and every login runs
``srht-git-shell``. Keys are registered at meta through its keys page, as a
person does.

sshd runs the key command as ``nobody``, who can read nothing of the site,
when that account can run the installed program; where it cannot (an
interpreter under a private home, as with pyenv as root), as the account
running the tests. The git account is
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

from srht_plugins.git.ssh import default_program, keys_secret, sshd_snippet
from srht_plugins.git.ssh_programs import HEADER, KEYS, SHELL, credential, fingerprint

from .conftest import GitResult, GitStack, KeyPair, make_key, register_key, require_program

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SSHD = "/usr/sbin/sshd"


def _keys_user(program: str) -> str:
    """``nobody`` (who can read nothing of the site) if it can run the
    installed ``srht-git-keys``, else the account running the tests."""
    if os.geteuid() == 0:
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", program + "-git-keys", "--help"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        if probe.returncode == 0:
            return "nobody"
    return getpass.getuser()


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
    program = default_program()
    require_program(Path(program).exists(), f"{program} (the installed srht) is missing")
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
        keys_user = _keys_user(program)
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
            + sshd_snippet(
                site,
                program,
                str(git_stack.config_path),
                keys_user=keys_user,
                credential_file=str(lookup),
            )
        )
        assert keys_secret(site).text.strip() not in config.read_text()
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
    """Run ``srht-git-keys`` as sshd does, as sshd's keys account, with
    ``keys_credential`` in a file of that account's (``None``: a file it
    cannot read)."""
    key_type, blob = key.public.split()[:2]
    program = default_program() + "-git-keys"
    owner = sshd.keys_user if keys_credential is not None else "root"
    lookup = _credential_file(sshd.folder, owner, (keys_credential or "x") + "\n")
    command = [
        program,
        "--origin",
        git_stack.git_url,
        "--credential-file",
        str(lookup),
        "--config",
        str(git_stack.config_path),
        "--ssh-user",
        sshd.user,
        sshd.user,
        blob,
        key_type,
    ]
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
    assert options.startswith('restrict,command="') and "srht-git-shell" in options
    assert git_stack.git_user_type(bob) is None

    # A key nobody registered: no line, and no error for sshd to log.
    unknown = _keys_command(git_stack, sshd, make_key(git_stack), credential(network_key, KEYS))
    assert (unknown.returncode, unknown.stdout) == (0, "")
    # The wrong credential finds nothing.
    forged = _keys_command(git_stack, sshd, key, credential(network_key, SHELL))
    assert (forged.returncode, forged.stdout) == (0, "")
    if sshd.keys_user != getpass.getuser():
        # A credential file it cannot read: sshd logs why, no key is let in.
        unreadable = _keys_command(git_stack, sshd, key, None)
        assert (unreadable.returncode, unreadable.stdout) == (1, "")
        assert unreadable.stderr.startswith("srht-git-keys: cannot read the lookup credential: ")

    # The first login mirrors bob, after sshd has checked the key.
    hello = run_ssh(sshd, key)
    assert hello.returncode == 1
    assert hello.stderr.startswith(f"Hi ~{bob}! You have authenticated")
    assert git_stack.git_user_type(bob) == "active"

    # The lookup credential cannot ask for access, nor can no credential.
    body = {"fingerprint": fingerprint_of(key), "command": f"git-upload-pack '~{bob}/x'"}
    for headers in ({HEADER: credential(network_key, KEYS)}, {}):
        asked = requests.post(
            git_stack.git_url + "/internal/ssh/access", json=body, headers=headers, timeout=30
        )
        assert asked.status_code == 404
    allowed = requests.post(
        git_stack.git_url + "/internal/ssh/access",
        json=body,
        headers={HEADER: credential(network_key, SHELL)},
        timeout=30,
    )
    assert allowed.json() == {
        "refused": f"Repository ~{bob}/x not found, or you have no access to it."
    }


def fingerprint_of(key: KeyPair) -> str:
    return fingerprint(base64.b64decode(key.public.split()[1]))
