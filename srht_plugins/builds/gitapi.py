"""What builds asks of the site's git, through git's public contracts only:
its REST API (repositories, webhooks) and smart HTTP (fetching a commit to
read its manifests), as any other client would, with a token meta issues
for the user (:mod:`.delegation`). builds never imports git nor reads its
database.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Any
from urllib.parse import urlsplit

from srht_core import ServiceUnreachable, call_service_api, current_service

from .delegation import DelegationUnavailable, user_token

__all__ = [
    "GitUnavailable",
    "NothingToBuild",
    "clone_token",
    "fetch_manifests",
    "git_origin",
    "head_of",
    "is_site_repository",
    "register_webhook",
    "remove_webhook",
    "repositories",
    "repository_of",
    "unreadable",
    "visibility",
]

READ, WRITE = "git/repos:RO", "git/repos:RW"
REPOSITORY = re.compile(
    r"^/~([a-z_][a-z0-9_-]{0,63})/([A-Za-z0-9][A-Za-z0-9._-]{0,127}?)(\.git)?/?$"
)
#: Where a repository keeps its manifests: one job for .build.yml, or one
#: per file in .builds/ (a group).
MANIFEST_FILE = ".build.yml"
MANIFEST_DIR = ".builds"
MAX_MANIFESTS = 8


class GitUnavailable(OSError):
    """git could not be asked, or refused; ``str()`` says what happened."""


class NothingToBuild(GitUnavailable):
    """The repository has no commit, or not the branch asked for: asking
    again will not help until someone pushes."""


def git_origin() -> str | None:
    return current_service().origins.get("git")


def repository_of(url: str) -> tuple[str, str] | None:
    """``(owner, name)`` of a URL of this site's git, else ``None``."""
    origin = git_origin()
    bare = url.split("#", 1)[0]
    if not origin or not (bare == origin or bare.startswith(origin + "/")):
        return None
    match = REPOSITORY.match(urlsplit(bare).path)
    return (match[1], match[2]) if match else None


def is_site_repository(url: str) -> bool:
    origin = git_origin()
    return bool(origin) and url.split("#", 1)[0].startswith(f"{origin}/")


def _call(method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """``(status, JSON or None)`` of a call of git's REST API (4xx returned).

    :raises GitUnavailable: git is not on this site, cannot be reached or
        answers 5xx.
    """
    if not git_origin():
        raise GitUnavailable("this site has no git service")
    try:
        status, answer = call_service_api("git", path, token=token, method=method, body=body)
    except ServiceUnreachable as error:
        raise GitUnavailable(f"git at {error.url} could not be asked: {error.reason}") from None
    return status, None if isinstance(answer, bytes) else answer


def _reasons(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("errors"), list):
        return "; ".join(str(e.get("reason")) for e in answer["errors"] if isinstance(e, dict))
    return ""


def unreadable(user: Any, url: str) -> str | None:
    """Why ``user``'s job could not clone ``url`` of this site's git, or
    ``None`` when it can."""
    found = repository_of(url)
    if found is None:
        return f"{url!r} does not name a repository of this site's git (~owner/name)"
    owner, name = found
    path = f"/api/~{owner}/repos/{name}"
    try:
        status, _answer = _call("GET", path)
        if status == 200:
            return None
        try:
            token = user_token(user.id, [READ])
        except DelegationUnavailable as error:
            return f"~{owner}/{name} is not public, and builds cannot act for you: {error}"
        status, _answer = _call("GET", path, token)
    except GitUnavailable as error:
        return str(error)
    if status == 200:
        return None
    if status == 404:
        return f"~{owner}/{name} does not exist, or you may not read it"
    return f"git answered {status} about ~{owner}/{name}"


def visibility(owner: str, name: str) -> str:
    """``public`` or ``unlisted`` for a repository anyone may read, as git
    says; ``private`` otherwise (or when git cannot be asked)."""
    try:
        status, answer = _call("GET", f"/api/~{owner}/repos/{name}")
    except GitUnavailable:
        return "private"
    if status == 200 and isinstance(answer, dict) and answer.get("visibility") == "public":
        return "public"
    return "unlisted" if status == 200 else "private"


def clone_token(user_id: int) -> str | None:
    """A token for a runner to clone ``user_id``'s sources with, or
    ``None`` (public sources clone without one)."""
    try:
        return user_token(user_id, [READ])
    except DelegationUnavailable:
        return None


def repositories(user: Any) -> list[str]:
    """The names of ``user``'s repositories.

    :raises GitUnavailable: (or :class:`DelegationUnavailable`) saying why not.
    """
    token = user_token(user.id, [READ])
    names: list[str] = []
    cursor = ""
    for _page in range(20):
        status, answer = _call("GET", f"/api/repos?limit=100{cursor}", token)
        if status != 200 or not isinstance(answer, dict):
            raise GitUnavailable(f"git answered {status} listing your repositories")
        names += [str(r["name"]) for r in answer.get("results", []) if "name" in r]
        following = answer.get("next")
        if not following:
            break
        cursor = f"&cursor={following}"
    return sorted(names)


def register_webhook(user: Any, name: str, url: str) -> int:
    """Ask git to POST ``repo:push`` of ``user``'s repository ``name`` to
    ``url``; the webhook's id."""
    token = user_token(user.id, [WRITE])
    status, answer = _call(
        "POST", f"/api/~{user.username}/repos/{name}/webhooks", token, {"url": url}
    )
    if status == 404:
        raise GitUnavailable(f"you have no repository {name} on git")
    if status not in (200, 201) or not isinstance(answer, dict) or "id" not in answer:
        raise GitUnavailable(
            f"git refused the webhook ({status}{': ' + _reasons(answer) if answer else ''})"
        )
    return int(answer["id"])


def remove_webhook(user: Any, name: str, webhook_id: int) -> None:
    token = user_token(user.id, [WRITE])
    status, answer = _call(
        "DELETE", f"/api/~{user.username}/repos/{name}/webhooks/{webhook_id}", token
    )
    if status not in (200, 204, 404):
        raise GitUnavailable(f"git answered {status} removing the webhook {_reasons(answer)}")


def _git(*args: str, cwd: str, token: str | None = None, timeout: float = 120) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": cwd,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ALLOW_PROTOCOL": "http:https",
        "LC_ALL": "C",
    }
    if token:
        # In the environment, never on a command line others can read.
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Bearer {token}",
        )
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise GitUnavailable(result.stderr.strip().splitlines()[-1] if result.stderr else "failed")
    return result.stdout


def fetch_manifests(user_id: int, owner: str, name: str, commit: str) -> list[tuple[str, str]]:
    """``[(path, text)]`` of the manifests of commit ``commit`` of
    ``~owner/name``: ``.build.yml``, or each ``.builds/*.yml``; empty when
    it has none. Fetched over git's smart HTTP with a token of ``user_id``.
    """
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ValueError(f"not a commit id: {commit!r}")
    origin = git_origin()
    token = clone_token(user_id)
    with tempfile.TemporaryDirectory(prefix="srht-builds-") as work:
        _git("init", "-q", "--bare", ".", cwd=work)
        _git(
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            f"{origin}/~{owner}/{name}",
            commit,
            cwd=work,
            token=token,
        )
        listed = _git("ls-tree", "--name-only", commit, MANIFEST_FILE, f"{MANIFEST_DIR}/", cwd=work)
        paths = [p for p in listed.splitlines() if p]
        if MANIFEST_FILE in paths:
            chosen = [MANIFEST_FILE]
        else:
            chosen = sorted(
                p
                for p in paths
                if p.startswith(MANIFEST_DIR + "/") and p.endswith((".yml", ".yaml"))
            )[:MAX_MANIFESTS]
        out = []
        for path in chosen:
            blob = _git("cat-file", "blob", f"{commit}:{path}", cwd=work)
            out.append((path, blob))
        return out


def head_of(user_id: int, owner: str, name: str, branch: str | None = None) -> tuple[str, str]:
    """``(ref, commit)`` of ``~owner/name``'s default branch (or of
    ``branch``) now: ``("refs/heads/main", "1f3c...")``. Asked over git's
    smart HTTP with a token of ``user_id``.

    :raises NothingToBuild: no commit there (or no such branch).
    :raises GitUnavailable: saying why (no such repository, git
        unreachable).
    """
    origin = git_origin()
    token = clone_token(user_id)
    wanted = f"refs/heads/{branch}" if branch else "HEAD"
    with tempfile.TemporaryDirectory(prefix="srht-builds-") as work:
        listed = _git(
            "ls-remote", "--symref", f"{origin}/~{owner}/{name}", wanted, cwd=work, token=token
        )
    target, commit = wanted, None
    for line in listed.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            target = line[len("ref: ") : -len("\tHEAD")]
        elif "\t" in line:
            found, _, ref = line.partition("\t")
            if ref == wanted and re.fullmatch(r"[0-9a-f]{40}", found):
                commit = found
    if commit is None:
        what = f"no branch {branch}" if branch else "no commits"
        raise NothingToBuild(f"~{owner}/{name} has {what}")
    return target, commit
