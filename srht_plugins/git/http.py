"""Clone, fetch and push over smart HTTP, at the same URL that browses a
repository (``https://git.example.org/~alice/repo``).

The service decides who may do what, then hands the request to ``git
http-backend`` as a CGI program and streams both ways: the request body
into it, its output back to the client, a chunk at a time, so no pack is
ever held in memory. Each chunk counts as progress (``report_progress``),
so a transfer runs past the service's ``timeout`` as long as it keeps
moving, and one that stalls for longer is cut off like any request
(upload-pack and receive-pack send a keep-alive every 5 s while they work
without output). The password of HTTP basic auth is a token from meta (any
user name will do); a read needs ``git/repos:RO``, a push ``git/repos:RW``.

Refusals are ``text/plain``, which git shows its user as ``remote:``
lines. To anyone without a token a private repository answers as a missing
one does: 401, so that git asks for credentials; to someone with a token
but no access, both answer 404.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import IO, cast

from flask import Blueprint, Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from srht_core import (
    ApiError,
    TokenGrant,
    client_address,
    current_service,
    db_session,
    report_progress,
    token_user,
    verify_token,
)

from .access import access_of, find_repository
from .models import WRITE, Repository, User
from .post_receive import git_environment
from .repos import repos_dir

__all__ = ["bp"]

log = logging.getLogger("srht.git.http")
bp = Blueprint("git_http", __name__)

SCOPE = "git/repos"
CHUNK = 64 * 1024
READ_SERVICES = ("git-upload-pack",)
WRITE_SERVICES = ("git-receive-pack",)
#: Request headers git http-backend reads (as CGI ``HTTP_*`` variables).
PASSED_HEADERS = ("Content-Encoding", "Git-Protocol", "Accept-Encoding")
#: While upload-pack prepares a pack and receive-pack applies one (its hooks
#: included), they send a keep-alive after this many quiet seconds: output
#: that counts as progress, well within the least ``timeout`` (5 s), where
#: git's default of 5 s would race it.
KEEPALIVE = {"uploadpack.keepAlive": "2", "receive.keepAlive": "2"}


class Refusal(Exception):
    """An answer to a git client in place of the repository."""

    def __init__(self, status: int, message: str, *, challenge: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge

    def response(self) -> Response:
        response = Response(
            self.message.rstrip("\n") + "\n", status=self.status, mimetype="text/plain"
        )
        if self.challenge:
            realm = str(current_service().config["srht"]["site-name"]).replace('"', "'")
            response.headers["WWW-Authenticate"] = f'Basic realm="{realm} git"'
        response.headers["Cache-Control"] = "no-store"
        return response


def _token_help(scope: str) -> str:
    meta = current_service().origins.get("meta", "")
    return (
        f"Use a personal access token with the scope {scope} as the password "
        f"(make one at {meta}/tokens); any user name will do."
    )


def _authenticate(write: bool) -> tuple[User | None, TokenGrant | None]:
    """The user and token of the request's credentials, or ``(None, None)``;
    ``write`` says whether the request pushes (so which scope to ask for)."""
    auth = request.authorization
    if auth is None:
        return None, None
    if auth.type == "basic":
        token = auth.password or ""
    elif auth.type == "bearer":
        token = auth.token or ""
    else:
        raise Refusal(401, "Send your token as the password of HTTP basic auth.", challenge=True)
    try:
        grant = verify_token(token)
    except ApiError as error:
        raise Refusal(
            401,
            f"The password is not a valid token: {error}.\n"
            + _token_help(f"{SCOPE}:{'RW' if write else 'RO'}"),
            challenge=True,
        ) from None
    try:
        user = token_user(grant)
    except ApiError as error:
        if error.status == 403:
            suspended = db_session.get(User, grant.user_id)
            notice = suspended.suspension_notice if suspended is not None else None
            raise Refusal(
                403, "Your account is suspended" + (f": {notice}" if notice else ".")
            ) from None
        raise Refusal(401, f"The token is not valid: {error}.", challenge=True) from None
    return user, grant


def _not_found(username: str, name: str, user: User | None, write: bool) -> Refusal:
    if user is None:
        return Refusal(
            401,
            f"Repository ~{username}/{name} not found, or it is private: "
            "sign in to see it.\n" + _token_help(f"{SCOPE}:{'RW' if write else 'RO'}"),
            challenge=True,
        )
    return Refusal(404, f"Repository ~{username}/{name} not found, or you have no access to it.")


def _check(
    username: str, name: str, service: str, suffix: str
) -> tuple[Repository, User | None] | BaseResponse:
    """The repository and user a git request may go on with, or the
    redirect to a renamed repository's new URL.

    :raises Refusal: saying why not.
    """
    write = service in WRITE_SERVICES
    user, grant = _authenticate(write)
    name = name.removesuffix(".git")
    found = find_repository(username, name)
    access = access_of(found.repository, user) if found is not None else None
    if found is None or access is None:
        raise _not_found(username, name, user, write)
    repository = found.repository
    if found.moved:
        # git follows the redirect of its first request and goes on at the
        # new URL; it tells its user so.
        query = request.query_string.decode("latin-1")
        target = f"/~{repository.owner.username}/{repository.name}/{suffix}"
        return redirect(target + (f"?{query}" if query else ""), code=301)
    if grant is not None and not grant.allows(SCOPE, write=write):
        access_word = "RW" if write else "RO"
        raise Refusal(
            403,
            f"The token lacks the scope {SCOPE}:{access_word}.\n"
            + _token_help(f"{SCOPE}:{access_word}"),
        )
    if write:
        if user is None:
            raise Refusal(
                401,
                f"Pushing to ~{username}/{name} needs authentication.\n"
                + _token_help(f"{SCOPE}:RW"),
                challenge=True,
            )
        if access != WRITE:
            raise Refusal(
                403,
                f"You may read ~{username}/{name} but not push to it; ask "
                f"~{repository.owner.username} for write access.",
            )
    return repository, user


def _serve(username: str, name: str, service: str, suffix: str) -> BaseResponse:
    try:
        checked = _check(username, name, service, suffix)
    except Refusal as refusal:
        db_session.rollback()
        return refusal.response()
    if isinstance(checked, BaseResponse):
        return checked
    repository, user = checked
    env = _cgi_environment(repository, user, suffix)
    db_session.commit()  # nothing to write; end the transaction before streaming
    return run_backend(env, request.environ["wsgi.input"], request.headers.get("Content-Length"))


def _cgi_environment(repository: Repository, user: User | None, suffix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env.update(git_environment(repository, user))
    _add_git_config(env, KEEPALIVE)
    env.update(
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "GIT_PROJECT_ROOT": str(repos_dir()),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repository.folder}/{suffix}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string.decode("latin-1"),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": client_address(),
            "SERVER_PROTOCOL": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        }
    )
    if user is not None:
        # http-backend serves receive-pack only to an authenticated user.
        env["REMOTE_USER"] = user.username
    if request.headers.get("Content-Length"):
        env["CONTENT_LENGTH"] = request.headers["Content-Length"]
    for header in PASSED_HEADERS:
        value = request.headers.get(header)
        if value:
            env["HTTP_" + header.upper().replace("-", "_")] = value
    return env


def _add_git_config(env: dict[str, str], settings: dict[str, str]) -> None:
    """Add ``settings`` to the git config given in ``env`` (``GIT_CONFIG_*``)."""
    count = int(env.get("GIT_CONFIG_COUNT", "0"))
    for index, (key, value) in enumerate(settings.items(), start=count):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + len(settings))


def _pump(source: IO[bytes], target: IO[bytes], length: int | None) -> None:
    """Copy the request body into the backend, then close its input."""
    try:
        remaining = length
        while remaining is None or remaining > 0:
            size = CHUNK if remaining is None else min(CHUNK, remaining)
            chunk = source.read(size)
            if not chunk:
                break
            target.write(chunk)
            report_progress()
            if remaining is not None:
                remaining -= len(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass  # the backend stopped reading: its answer says why
    finally:
        with contextlib.suppress(OSError):
            target.close()


def run_backend(
    env: dict[str, str],
    body: IO[bytes],
    content_length: str | None,
    command: tuple[str, ...] = ("git", "http-backend"),
) -> Response:
    """Run a CGI program (``git http-backend``) on the request and stream
    its answer: the request body goes in from a thread while the answer
    comes out, so neither side waits on a full pipe."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdin is not None and process.stdout is not None
    # A pipe opened with the default buffering: read1 gives what is there.
    stdout = cast(io.BufferedReader, process.stdout)
    length = int(content_length) if content_length and content_length.isdigit() else None
    if env.get("REQUEST_METHOD") == "GET":
        length = 0
    writer = threading.Thread(target=_pump, args=(body, process.stdin, length), daemon=True)
    writer.start()
    errors: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
    reader.start()

    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = stdout.read1(CHUNK)
        if not chunk:
            break
        head += chunk
        if len(head) > CHUNK:
            break
    separator = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
    header_block, _, rest = head.partition(separator)
    status = 200
    headers: list[tuple[str, str]] = []
    for line in header_block.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0] or 200)
        elif key:
            headers.append((key.strip(), value.strip()))
    if not header_block or separator not in head:
        process.kill()
        process.wait()
        writer.join()
        reader.join()
        log.error(
            "git http-backend gave no answer: %s", b"".join(errors).decode(errors="replace").strip()
        )
        return Response(
            "The repository could not be read; this has been logged.\n",
            status=500,
            mimetype="text/plain",
        )

    def stream() -> Iterator[bytes]:
        try:
            if rest:
                yield rest
            while chunk := stdout.read1(CHUNK):
                report_progress()
                yield chunk
        finally:
            if process.poll() is None:
                stdout.close()
            code = process.wait()
            writer.join()
            reader.join()
            if code != 0:
                log.warning(
                    "git http-backend exited with %s: %s",
                    code,
                    b"".join(errors).decode(errors="replace").strip(),
                )

    response = Response(stream(), status=status, headers=headers, direct_passthrough=True)
    response.headers["Cache-Control"] = "no-cache, max-age=0, must-revalidate"
    return response


def _drain(source: IO[bytes] | None, into: list[bytes]) -> None:
    """Keep the last few KiB of a program's errors, for the log."""
    if source is None:
        return
    kept = 0
    while chunk := source.read(4096):
        if kept < 16 * 1024:
            into.append(chunk)
            kept += len(chunk)
    source.close()


@bp.get("/~<username>/<name>/info/refs")
def info_refs(username: str, name: str) -> BaseResponse:
    service = request.args.get("service", "")
    if service not in READ_SERVICES + WRITE_SERVICES:
        return Refusal(
            403, "Only the smart HTTP protocol is served here: use git 1.6.6 or newer."
        ).response()
    return _serve(username, name, service, "info/refs")


@bp.post("/~<username>/<name>/git-upload-pack")
def upload_pack(username: str, name: str) -> BaseResponse:
    return _serve(username, name, "git-upload-pack", "git-upload-pack")


@bp.post("/~<username>/<name>/git-receive-pack")
def receive_pack(username: str, name: str) -> BaseResponse:
    return _serve(username, name, "git-receive-pack", "git-receive-pack")


for _view in (upload_pack, receive_pack):
    _view.srht_csrf_exempt = True  # type: ignore[attr-defined]
