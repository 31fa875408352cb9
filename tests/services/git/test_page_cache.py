"""What browsers and caches see of git's kept pages, over real HTTP: a
strong ETag on every repository page, a 304 when it is sent back, a new
page once a push moves the branch, and nothing of a private repository for
anyone who may not read it, whatever they send."""

from __future__ import annotations

import requests

from .conftest import GitStack, text

PAGES = [
    "",
    "/tree",
    "/tree/main/item/src",
    "/tree/main/item/src/greet.py",
    "/blame/main/item/src/greet.py",
    "/log",
    "/log/main",
    "/refs",
]


def _publish(git_stack: GitStack, owner: str, name: str, **kwargs: str) -> tuple[str, str]:
    """A repository of two files; the owner's token and its commit."""
    token = git_stack.publish(
        owner,
        name,
        {"README.md": "# Zanzibar\n\nA <b>page</b>.\n", "src/greet.py": "print('quokka')\n"},
        **kwargs,
    )
    found = git_stack.api("GET", f"/api/~{owner}/repos/{name}/refs", token)
    commit = next(ref["target"] for ref in found.json()["results"] if ref["name"] == "main")
    return token, commit


def test_every_page_answers_304_to_the_etag_it_gave(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    _token, commit = _publish(git_stack, alice, "kept")
    base = f"{git_stack.git_url}/~{alice}/kept"
    anonymous = requests.Session()
    for page in [*PAGES, f"/commit/{commit}"]:
        first = anonymous.get(base + page, timeout=30)
        assert first.status_code == 200, page
        tag = first.headers["ETag"]
        assert tag.startswith('"') and not tag.startswith("W/"), (page, tag)
        assert first.headers["Cache-Control"] == "no-cache", page
        assert "Cookie" in first.headers["Vary"], page
        again = anonymous.get(base + page, headers={"If-None-Match": tag}, timeout=30)
        assert again.status_code == 304, page
        assert again.headers["ETag"] == tag and again.content == b"", page
        # The same bytes the second time (kept by the worker that answers).
        assert anonymous.get(base + page, timeout=30).text == first.text, page

    # A signed-in reader's page holds their menu: another ETag, never the
    # page anonymous visitors get, and only their browser may keep it.
    bob = git_stack.new_user("bob")
    reader = git_stack.browser(bob)
    shown = reader.get(f"{base}/commit/{commit}", timeout=30)
    anonymous_tag = anonymous.get(f"{base}/commit/{commit}", timeout=30).headers["ETag"]
    assert shown.status_code == 200 and f"~{bob}" in text(shown)
    assert shown.headers["ETag"] != anonymous_tag
    assert shown.headers["Cache-Control"] == "private, no-cache"
    sent_theirs = reader.get(
        f"{base}/commit/{commit}", headers={"If-None-Match": anonymous_tag}, timeout=30
    )
    assert sent_theirs.status_code == 200 and f"~{bob}" in text(sent_theirs)
    revalidated = reader.get(
        f"{base}/commit/{commit}", headers={"If-None-Match": shown.headers["ETag"]}, timeout=30
    )
    assert revalidated.status_code == 304


def test_a_branch_page_changes_after_a_push(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token, first_commit = _publish(git_stack, alice, "moving")
    base = f"{git_stack.git_url}/~{alice}/moving"
    before = {page: requests.get(base + page, timeout=30) for page in ("", "/tree", "/log/main")}
    assert all(answer.status_code == 200 for answer in before.values())
    assert "news.txt" not in before["/tree"].text

    work = git_stack.fresh_dir()
    assert git_stack.git("clone", git_stack.http_url(alice, "moving", token), str(work)).ok
    second = git_stack.commit(work, {"news.txt": "fresh\n"}, "Add the news")
    assert git_stack.git("push", "origin", "main", cwd=work).ok

    for page, old in before.items():
        answer = requests.get(
            base + page, headers={"If-None-Match": old.headers["ETag"]}, timeout=30
        )
        assert answer.status_code == 200, page
        assert answer.headers["ETag"] != old.headers["ETag"], page
        assert second[:10] in answer.text, page
    assert "news.txt" in requests.get(base + "/tree", timeout=30).text
    # The first commit's page still shows that commit.
    old_commit = requests.get(f"{base}/commit/{first_commit}", timeout=30)
    assert old_commit.status_code == 200 and "news.txt" not in old_commit.text


def test_a_private_repository_never_leaks_through_the_cache(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    token, commit = _publish(git_stack, alice, "closing")
    base = f"{git_stack.git_url}/~{alice}/closing"
    pages = [*PAGES, f"/commit/{commit}"]
    # Seen while public by everyone: kept, with ETags.
    anonymous = requests.Session()
    tags = {}
    for page in pages:
        answer = anonymous.get(base + page, timeout=30)
        assert answer.status_code == 200, page
        tags[page] = answer.headers["ETag"]

    closed = git_stack.api(
        "PATCH", f"/api/~{alice}/repos/closing", token, json={"visibility": "private"}
    )
    assert closed.status_code == 200, closed.text

    stranger = git_stack.browser(bob)
    owner = git_stack.browser(alice)
    assert "quokka" in owner.get(base + "/tree/main/item/src/greet.py", timeout=30).text
    for page in pages:
        # The owner reads it (rendered for them, not kept)...
        mine = owner.get(base + page, timeout=30)
        assert mine.status_code == 200, page
        assert mine.headers["Cache-Control"] == "private, no-store", page
        # ... and neither an anonymous visitor nor another user gets it,
        # with or without the ETags they or the owner were given.
        for who in (anonymous, stranger):
            for tag in (None, tags[page], mine.headers["ETag"]):
                sent = {"If-None-Match": tag} if tag else {}
                answer = who.get(base + page, headers=sent, timeout=30)
                assert answer.status_code == 404, (page, sent)
                assert "Zanzibar" not in answer.text and "quokka" not in answer.text, page
