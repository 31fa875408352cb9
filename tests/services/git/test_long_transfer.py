"""A push that takes longer than the service's request timeout completes,
while a request that stops moving is still cut off at the timeout.

git is served (real gunicorn, sync workers) with ``[git] timeout = 5``, the
least the config allows, beside the session's stack (same databases and
repositories). The real ``git`` client pushes 1 MiB of random data through
a relay that passes what the client sends at 128 KiB/s, as a slow uplink
would: the server receives the pack for about 8 s, longer than the timeout,
and the push succeeds because each chunk that moves counts as the worker's
heartbeat. Meanwhile two requests whose bodies stop half-way (a form post
to a page and a fetch's ``git-upload-pack`` request) are cut off: the
server hangs up without an answer, and the two workers that held them are
replaced, the one that took the push is not.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from srht_core.testing import free_port, serve_service

from .conftest import GitStack, served_pids, wait_until

pytestmark = [pytest.mark.postgres]

TIMEOUT = 5  # the least [git] timeout accepts
RATE = 128 * 1024  # bytes a second from the client to the server
SIZE = 1024 * 1024  # random, so the pack is as large: about 8 s at RATE


@contextlib.contextmanager
def slow_uplink(port: int, rate: int) -> Iterator[int]:
    """A TCP relay to ``127.0.0.1:port`` that passes what its clients send
    at ``rate`` bytes a second and what the server answers at full speed;
    yields the relay's port."""
    listener = socket.create_server(("127.0.0.1", 0))
    chunk = rate // 16

    def pipe(source: socket.socket, target: socket.socket, throttled: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(chunk if throttled else 65536):
                target.sendall(data)
                if throttled:
                    time.sleep(len(data) / rate)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", port)) as server:
            up = threading.Thread(target=pipe, args=(client, server, True), daemon=True)
            up.start()
            pipe(server, client, False)
            up.join()

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def stalled_request(port: int, head: str, body_start: bytes) -> bytes:
    """Send ``head`` announcing a longer body than ``body_start``, send no
    more, and return whatever the server answers before it hangs up."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(head.encode() + b"\r\n" + body_start)
        connection.settimeout(60)  # only stops a hung test; the cut comes far sooner
        answer = b""
        while data := connection.recv(65536):
            answer += data
        return answer


@pytest.fixture
def short_timeout_git(git_stack: GitStack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """git served with ``[git] timeout = 5`` and three workers beside the
    stack: its URL and config."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(git_stack.config_path, encoding="utf-8")
    parser["git"]["timeout"] = str(TIMEOUT)
    config = tmp_path / "config.ini"
    with config.open("w", encoding="utf-8") as out:
        parser.write(out)
    os.chmod(config, 0o644)
    with serve_service("git", config, port=free_port(), workers=3) as url:
        yield url, config


def test_a_push_longer_than_the_timeout_completes_a_stalled_request_is_cut(
    git_stack: GitStack, short_timeout_git: tuple[str, Path]
) -> None:
    url, config = short_timeout_git
    port = int(url.rsplit(":", 1)[1])
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "slow")
    work = git_stack.work_tree({"noise.bin": os.urandom(SIZE)}, message="A megabyte of noise")
    head = git_stack.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    _, workers = served_pids(config, "git")

    # Two requests that stop half-way hold two of the three workers...
    answers: dict[str, bytes] = {}
    stalled = {
        "form": (
            f"POST /create HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n",
            b"name=half",
        ),
        "fetch": (
            f"POST /~{alice}/slow/git-upload-pack HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 1000\r\n",
            f"0032want {head}\n".encode(),
        ),
    }
    threads = [
        threading.Thread(
            target=lambda name, request: answers.__setitem__(name, stalled_request(port, *request)),
            args=(name, request),
        )
        for name, request in stalled.items()
    ]
    for thread in threads:
        thread.start()

    # ... while a slow push goes through the third.
    with slow_uplink(port, RATE) as relay:
        remote = f"http://git:{token}@127.0.0.1:{relay}/~{alice}/slow"
        started = time.monotonic()
        pushed = git_stack.git("push", remote, "main", cwd=work, timeout=120)
        took = time.monotonic() - started
    assert pushed.ok, pushed.stderr
    # Not a speed check: the relay makes the push slow, this says it did.
    assert took > TIMEOUT + 1, f"the push took {took:.1f} s, not longer than the timeout"
    listed = git_stack.git("ls-remote", git_stack.http_url(alice, "slow"), "main")
    assert listed.stdout.split() == [head, "refs/heads/main"]

    for thread in threads:
        thread.join()
    # Cut off: gunicorn answers 500 for a worker it aborts, when it can.
    for name, answer in answers.items():
        assert not answer or answer.startswith(b"HTTP/1.1 500"), (name, answer[:500])
    gone = wait_until(
        lambda: set(workers) - set(served_pids(config, "git")[1]),
        "the workers of the stalled requests to be replaced",
    )
    assert len(gone) == 2, f"workers {sorted(gone)} of {workers} were replaced"
