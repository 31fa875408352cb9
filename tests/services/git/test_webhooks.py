"""Pushes fire signed ``repo:push`` webhooks with each ref's old and new
id, recorded in the push's hook and delivered by ``srht worker git`` (a
real worker process) to a receiver on loopback."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from srht_core.webhooks import verify

from .conftest import GitStack, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class Receiver:
    """An HTTP server on loopback keeping every POST it gets."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def git_worker(git_stack: GitStack) -> Iterator[None]:
    """``srht worker git``, running until the test ends."""
    log = git_stack.workdir / "worker.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "srht_core.cli",
                "--config",
                str(git_stack.config_path),
                "worker",
                "git",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)


def test_pushes_fire_signed_webhooks_with_old_and_new_ids(
    git_stack: GitStack, receiver: Receiver, git_worker: None
) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "hooked")
    added = git_stack.api(
        "POST", f"/api/~{alice}/repos/hooked/webhooks", token, json={"url": receiver.url + "/hook"}
    )
    assert added.status_code == 201, added.text

    url = git_stack.http_url(alice, "hooked", token)
    work = git_stack.work_tree({"a.txt": "a\n"})
    first = git_stack.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert git_stack.git("push", url, "main", cwd=work).ok
    second = git_stack.commit(work, {"b.txt": "b\n"}, "second")
    assert git_stack.git("branch", "topic", cwd=work).ok
    assert git_stack.git("push", url, "main", "topic", cwd=work).ok
    assert git_stack.git("push", url, "--delete", "topic", cwd=work).ok

    payloads = wait_until(
        lambda: len(receiver.payloads("/hook")) >= 3 and receiver.payloads("/hook"),
        "three webhook deliveries",
    )
    assert all(p["event"] == "repo:push" for p in payloads)
    refs = sorted(
        (
            tuple(sorted((r["name"], r["old"] or "", r["new"] or "") for r in p["data"]["refs"]))
            for p in payloads
        ),
        key=len,
    )
    assert sorted(refs) == sorted(
        [
            (("refs/heads/main", "", first),),
            (("refs/heads/main", first, second), ("refs/heads/topic", "", second)),
            (("refs/heads/topic", second, ""),),
        ]
    )
    data = payloads[0]["data"]
    assert data["pusher"] == f"~{alice}"
    assert data["repository"]["name"] == "hooked"
    assert data["repository"]["url"] == f"{git_stack.git_url}/~{alice}/hooked"

    # Each is signed with the site's webhook key.
    private = Ed25519PrivateKey.from_private_bytes(
        base64.b64decode(git_stack.config["webhooks"]["private-key"])
    )
    for request in receiver.received:
        headers = request["headers"]
        verify(
            request["body"],
            headers["X-Srht-Nonce"],
            int(headers["X-Srht-Timestamp"]),
            headers["X-Srht-Signature"],
            private.public_key(),
        )

    def delivered() -> list[dict[str, Any]] | None:
        answer = git_stack.api("GET", f"/api/~{alice}/repos/hooked/webhooks/deliveries", token)
        results: list[dict[str, Any]] = answer.json()["results"]
        return results if all(d["status"] == "delivered" for d in results) else None

    log = wait_until(delivered, "the deliveries to be marked delivered")
    assert len(log) == 3
    assert {d["response_status"] for d in log} == {204}


def test_webhooks_are_managed_by_the_owner_only(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "managed")
    path = f"/api/~{alice}/repos/managed/webhooks"
    bad = git_stack.api("POST", path, token, json={"url": "ftp://example.org/"})
    assert bad.status_code == 400
    assert bad.json() == {
        "errors": [{"field": "url", "reason": "is not valid: An http:// or https:// URL."}]
    }
    made = git_stack.api("POST", path, token, json={"url": "https://example.org/hook"})
    assert made.status_code == 201
    other = git_stack.token(bob)
    assert git_stack.api("GET", path, other).status_code == 403
    assert (
        git_stack.api("POST", path, other, json={"url": "https://example.org/x"}).status_code == 403
    )
    listed = git_stack.api("GET", path, token).json()["results"]
    assert [h["url"] for h in listed] == ["https://example.org/hook"]
    gone = git_stack.api("DELETE", f"{path}/{listed[0]['id']}", token)
    assert gone.status_code == 204
    assert git_stack.api("GET", path, token).json()["results"] == []
