"""Clone, fetch and push over smart HTTP with the real ``git`` client
against git under real gunicorn, with tokens meta issued: who may do
what, and exactly what git tells someone who may not."""

from __future__ import annotations

import pytest

from .conftest import GitStack

pytestmark = pytest.mark.postgres


def test_push_then_clone_and_fetch_with_a_token(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "hello")
    work = git_stack.work_tree({"README.md": "# Hello\n", "src/main.c": "int main;\n"})

    pushed = git_stack.git("push", git_stack.http_url(alice, "hello", token), "main", cwd=work)
    assert pushed.ok, pushed.stderr
    # The first push says where the repository is.
    assert pushed.remote[1:3] == ["Your repository is at:", f"{git_stack.git_url}/~{alice}/hello"]

    clone = git_stack.fresh_dir()
    cloned = git_stack.git("clone", git_stack.http_url(alice, "hello"), str(clone))
    assert cloned.ok, cloned.stderr
    assert (clone / "src" / "main.c").read_text() == "int main;\n"

    second = git_stack.commit(work, {"NEWS": "more\n"}, "second commit")
    pushed = git_stack.git("push", git_stack.http_url(alice, "hello", token), "main", cwd=work)
    assert pushed.ok, pushed.stderr
    assert "Your repository is at" not in pushed.stderr
    fetched = git_stack.git("fetch", "origin", cwd=clone)
    assert fetched.ok, fetched.stderr
    assert git_stack.git("rev-parse", "origin/main", cwd=clone).stdout.strip() == second


def test_clone_urls_with_dot_git_work_too(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "dotted")
    work = git_stack.work_tree({"a": "a\n"})
    assert git_stack.git(
        "push", git_stack.http_url(alice, "dotted.git", token), "main", cwd=work
    ).ok
    cloned = git_stack.git(
        "clone", git_stack.http_url(alice, "dotted.git"), str(git_stack.fresh_dir())
    )
    assert cloned.ok, cloned.stderr


def test_anonymous_clone_of_public_and_unlisted_but_not_private(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    work = git_stack.work_tree({"a.txt": "a\n"})
    for name, visibility in (("open", "public"), ("quiet", "unlisted"), ("secret", "private")):
        git_stack.create_repo(token, name, visibility)
        assert git_stack.git("push", git_stack.http_url(alice, name, token), "main", cwd=work).ok

    for name in ("open", "quiet"):
        cloned = git_stack.git("clone", git_stack.http_url(alice, name), str(git_stack.fresh_dir()))
        assert cloned.ok, cloned.stderr

    private = git_stack.git(
        "clone", git_stack.http_url(alice, "secret"), str(git_stack.fresh_dir())
    )
    missing = git_stack.git(
        "clone", git_stack.http_url(alice, "nothing-here"), str(git_stack.fresh_dir())
    )
    # Without credentials git is asked for some, for a private repository and
    # a missing one alike; with prompts off, it says it cannot ask.
    for refused in (private, missing):
        assert not refused.ok
        assert "fatal: could not read Username for 'http://127.0.0.1:" in refused.stderr

    cloned = git_stack.git(
        "clone", git_stack.http_url(alice, "secret", token), str(git_stack.fresh_dir())
    )
    assert cloned.ok, cloned.stderr


def test_a_private_repository_is_missing_to_a_user_without_access(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    git_stack.create_repo(git_stack.token(alice), "secret", "private")
    bob_token = git_stack.token(bob, "git/repos:RW")

    private = git_stack.git(
        "clone", git_stack.http_url(alice, "secret", bob_token), str(git_stack.fresh_dir())
    )
    missing = git_stack.git(
        "clone", git_stack.http_url(alice, "nothing", bob_token), str(git_stack.fresh_dir())
    )
    assert private.remote == [f"Repository ~{alice}/secret not found, or you have no access to it."]
    assert missing.remote == [
        f"Repository ~{alice}/nothing not found, or you have no access to it."
    ]
    for refused, name in ((private, "secret"), (missing, "nothing")):
        assert (
            f"fatal: repository '{git_stack.git_url}/~{alice}/{name}/' not found" in refused.stderr
        )


def test_pushing_needs_write_access(git_stack: GitStack) -> None:
    alice, bob, carol = (git_stack.new_user(n) for n in ("alice", "bob", "carol"))
    alice_token = git_stack.token(alice)
    git_stack.create_repo(alice_token, "shared")
    git_stack.grant(alice_token, alice, "shared", bob, "ro")
    git_stack.grant(alice_token, alice, "shared", carol, "rw")
    work = git_stack.work_tree({"a.txt": "a\n"})

    anonymous = git_stack.git("push", git_stack.http_url(alice, "shared"), "main", cwd=work)
    assert not anonymous.ok
    assert "fatal: could not read Username" in anonymous.stderr

    stranger = git_stack.new_user("dave")
    for who in (bob, stranger):
        refused = git_stack.git(
            "push", git_stack.http_url(alice, "shared", git_stack.token(who)), "main", cwd=work
        )
        assert not refused.ok
        assert refused.remote == [
            f"You may read ~{alice}/shared but not push to it; ask ~{alice} for write access."
        ]
        assert "The requested URL returned error: 403" in refused.stderr

    allowed = git_stack.git(
        "push", git_stack.http_url(alice, "shared", git_stack.token(carol)), "main", cwd=work
    )
    assert allowed.ok, allowed.stderr


def test_the_token_needs_the_git_scope(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    git_stack.create_repo(git_stack.token(alice), "scoped", "private")
    work = git_stack.work_tree({"a.txt": "a\n"})

    read_only = git_stack.token(alice, "git/repos:RO")
    pushed = git_stack.git("push", git_stack.http_url(alice, "scoped", read_only), "main", cwd=work)
    assert not pushed.ok
    assert pushed.remote[0] == "The token lacks the scope git/repos:RW."
    assert "as the password" in pushed.remote[1]

    other = git_stack.token(alice, "meta/profile:RO")
    cloned = git_stack.git(
        "clone", git_stack.http_url(alice, "scoped", other), str(git_stack.fresh_dir())
    )
    assert not cloned.ok
    assert cloned.remote[0] == "The token lacks the scope git/repos:RO."

    # A push with a password that is no token is told the scope a push needs.
    import requests

    answer = requests.get(
        f"{git_stack.git_url}/~{alice}/scoped/info/refs?service=git-receive-pack",
        auth=("alice", "not-a-token"),
        timeout=30,
    )
    assert answer.status_code == 401 and "the scope git/repos:RW as the password" in answer.text


def test_a_wrong_password_is_refused_with_a_reason(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    git_stack.create_repo(git_stack.token(alice), "locked", "private")
    cloned = git_stack.git(
        "clone", git_stack.http_url(alice, "locked", "hunter2"), str(git_stack.fresh_dir())
    )
    assert not cloned.ok
    assert cloned.remote[0] == (
        "The password is not a valid token: the token is not valid "
        "(malformed, tampered with, or for another site)."
    )
    assert (
        f"fatal: Authentication failed for '{git_stack.git_url}/~{alice}/locked/'" in cloned.stderr
    )


def test_a_suspended_user_can_neither_read_nor_push(git_stack: GitStack) -> None:
    alice, mallory = git_stack.new_user("alice"), git_stack.new_user("mallory")
    alice_token = git_stack.token(alice)
    git_stack.create_repo(alice_token, "team", "private")
    git_stack.grant(alice_token, alice, "team", mallory, "rw")
    mallory_token = git_stack.token(mallory)
    git_stack.create_repo(mallory_token, "mine")
    work = git_stack.work_tree({"a.txt": "a\n"})
    assert git_stack.git(
        "push", git_stack.http_url(alice, "team", mallory_token), "main", cwd=work
    ).ok

    git_stack.suspend(mallory, "Spamming the issue trackers.")

    cloned = git_stack.git(
        "clone", git_stack.http_url(alice, "team", mallory_token), str(git_stack.fresh_dir())
    )
    refusals = [cloned]
    for owner, name in ((alice, "team"), (mallory, "mine")):
        refusals.append(
            git_stack.git("push", git_stack.http_url(owner, name, mallory_token), "main", cwd=work)
        )
    for refused in refusals:
        assert not refused.ok
        assert refused.remote == ["Your account is suspended: Spamming the issue trackers."]
        assert "The requested URL returned error: 403" in refused.stderr


def test_a_revoked_token_stops_working(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "revoked", "private")
    assert git_stack.git(
        "clone", git_stack.http_url(alice, "revoked", token), str(git_stack.fresh_dir())
    ).ok

    browser = git_stack.browser(alice)
    tokens = browser.get(git_stack.meta_url + "/tokens").text
    import re

    token_id = re.findall(r"/tokens/(\d+)/revoke", tokens)[-1]
    # meta asks first: the token page links to a confirmation, which posts.
    answer = browser.submit(git_stack.meta_url + f"/tokens/{token_id}/revoke", {})
    assert answer.status_code in (302, 303)

    from .conftest import wait_until

    # git asks meta for revocations at most every 30 seconds per worker.
    def refused() -> bool:
        result = git_stack.git(
            "clone", git_stack.http_url(alice, "revoked", token), str(git_stack.fresh_dir())
        )
        return not result.ok and "the token has been revoked" in result.stderr

    wait_until(refused, "the revocation to reach git", timeout=120)


def test_an_old_name_leads_to_the_renamed_repository(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "before")
    work = git_stack.work_tree({"a.txt": "a\n"})
    assert git_stack.git("push", git_stack.http_url(alice, "before", token), "main", cwd=work).ok
    answer = git_stack.api("PATCH", f"/api/~{alice}/repos/before", token, json={"name": "after"})
    assert answer.status_code == 200, answer.text

    clone = git_stack.fresh_dir()
    cloned = git_stack.git("clone", git_stack.http_url(alice, "before"), str(clone))
    assert cloned.ok, cloned.stderr
    assert f"warning: redirecting to {git_stack.git_url}/~{alice}/after/" in cloned.stderr
    second = git_stack.commit(work, {"b.txt": "b\n"}, "second")
    pushed = git_stack.git("push", git_stack.http_url(alice, "before", token), "main", cwd=work)
    assert pushed.ok, pushed.stderr
    fetched = git_stack.git("fetch", cwd=clone)
    assert fetched.ok
    assert git_stack.git("rev-parse", "origin/main", cwd=clone).stdout.strip() == second
