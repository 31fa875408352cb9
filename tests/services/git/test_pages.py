"""git's pages from the outside, over real HTTP, signed in through meta's
login form: making a repository, browsing it (summary with README, tree,
file with highlighting and line anchors, raw, blame, log, commit, refs),
what private repositories show to whom, settings, renames and deletion."""

from __future__ import annotations

import html
import http.client
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import GitStack, linear_history, text

pytestmark = pytest.mark.postgres

README = """# Hello

Some *text*, a [link](https://example.org) and an attempt:
<script>alert("owned")</script>

```python
def greet():
    return "hi"
```
"""
PYTHON = "def greet(name):\n    return f'hi {name}'\n"


def test_make_a_repository_on_the_web(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    browser = git_stack.browser(alice)
    created = browser.submit(
        git_stack.git_url + "/create",
        {"name": "fresh", "description": "A new start.", "visibility": "unlisted"},
    )
    assert created.status_code == 303
    assert created.headers["Location"].endswith(f"/~{alice}/fresh")

    summary = browser.get(git_stack.git_url + created.headers["Location"])
    # URLs may break after their slashes (<wbr>), never mid-word.
    shown = text(summary).replace("<wbr>", "")
    assert summary.status_code == 200
    assert "A new start." in shown and "Unlisted" in shown
    assert "Nothing here yet" in shown
    # HTTPS first (every site serves it), with the way to a token; then SSH.
    https = f"git remote add origin {git_stack.git_url}/~{alice}/fresh"
    ssh = f"git remote add origin {git_stack.config['git']['ssh-user']}@127.0.0.1:~{alice}/fresh"
    assert https in shown and ssh in shown and shown.index(https) < shown.index(ssh)
    assert f'href="{git_stack.meta_url}/tokens">personal access token</a>' in shown
    assert "git/repos:RW" in shown
    assert f"git clone {git_stack.git_url}/~{alice}/fresh" in shown

    again = browser.submit(git_stack.git_url + "/create", {"name": "fresh", "visibility": "public"})
    assert again.status_code == 400
    assert "You have a repository named fresh already." in text(again)
    bad = browser.submit(
        git_stack.git_url + "/create", {"name": "no/slashes", "visibility": "public"}
    )
    assert bad.status_code == 400
    assert "Use letters, digits, dots, dashes and underscores" in text(bad)


def test_anonymous_visitors_are_sent_to_meta_to_create(git_stack: GitStack) -> None:
    answer = requests.get(git_stack.git_url + "/create", allow_redirects=False, timeout=30)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(git_stack.meta_url + "/login?return_to=")


def test_browse_summary_tree_file_raw_and_blame(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    git_stack.publish(
        alice,
        "browse",
        {
            "README.md": README,
            "src/greet.py": PYTHON,
            "data.bin": bytes(range(256)) * 4,
            "zz.txt": "z\n",
        },
        description="Things to browse.",
    )
    base = f"{git_stack.git_url}/~{alice}/browse"

    summary = requests.get(base, timeout=30)
    assert summary.status_code == 200
    body = summary.text
    assert "<h1>Hello</h1>" in body
    assert "<em>text</em>" in body
    assert 'href="https://example.org"' in body
    assert "<script>" not in body and "alert(" not in text(summary).replace(
        '<script>alert("owned")</script>', ""
    )
    assert '<span class="k">def</span>' in body  # the fenced code is highlighted
    assert "first commit" in body

    tree = requests.get(base + "/tree", timeout=30).text
    names = re.findall(r'href="/~[^"]+/tree/main/item/([^"]+)"', tree)
    assert names == ["src", "data.bin", "README.md", "zz.txt"]  # folders first

    page = requests.get(base + "/tree/main/item/src/greet.py", timeout=30)
    assert page.status_code == 200
    assert "Python" in page.text
    assert '<span class="k">def</span>' in page.text
    assert '<tr id="L2"><td class="ln"><a href="#L2">2</a></td>' in page.text

    raw = requests.get(base + "/raw/main/item/src/greet.py", timeout=30)
    assert raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert raw.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert raw.text == PYTHON

    binary = requests.get(base + "/tree/main/item/data.bin", timeout=30)
    assert "This is a binary file." in text(binary)
    raw = requests.get(base + "/raw/main/item/data.bin", timeout=30)
    assert raw.headers["Content-Type"] == "application/octet-stream"
    assert raw.content == bytes(range(256)) * 4

    blame = requests.get(base + "/blame/main/item/src/greet.py", timeout=30)
    assert blame.status_code == 200
    assert "Test Author" in blame.text
    assert '<tr id="L1" class="first">' in blame.text
    assert "return" in blame.text

    repo = f"~{alice}/browse"
    for missing, said in (
        ("/tree/main/item/nope.txt", f"No file or folder nope.txt at main in {repo}."),
        ("/tree/no-such-branch", f"No branch, tag or commit no-such-branch in {repo}."),
        ("/raw/main/item/src", f"src at main in {repo} is not a file."),
        ("/blame/main/item/data.bin/x", f"No file or folder data.bin/x at main in {repo}."),
        ("/commit/zzzz", f"No commit zzzz in {repo}."),
        ("/log/nothing", f"No branch, tag or commit nothing in {repo}."),
        ("-not-here/tree", f"No repository ~{alice}/browse-not-here here."),
    ):
        answer = requests.get(base + missing, timeout=30)
        assert answer.status_code == 404, missing
        assert said in text(answer), missing


def test_log_pages_commits_and_refs(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "history")
    work = git_stack.fast_import(linear_history(120))
    assert git_stack.git("tag", "-a", "v1.0", "-m", "First release", "main~20", cwd=work).ok
    assert git_stack.git("branch", "feature/x", "main~5", cwd=work).ok
    pushed = git_stack.git("push", git_stack.http_url(alice, "history", token), "--all", cwd=work)
    assert pushed.ok, pushed.stderr
    assert git_stack.git("push", git_stack.http_url(alice, "history", token), "--tags", cwd=work).ok
    base = f"{git_stack.git_url}/~{alice}/history"

    first = requests.get(base + "/log", timeout=30).text
    subjects = re.findall(r'<td class="subject">Commit number (\d+)</td>', first)
    assert subjects == [str(n) for n in range(120, 70, -1)]
    older = re.search(r'href="([^"]+\?from=[0-9a-f]{40})"', first)
    assert older is not None
    second = requests.get(git_stack.git_url + older.group(1).replace("&amp;", "&"), timeout=30).text
    assert re.findall(r'<td class="subject">Commit number (\d+)</td>', second) == [
        str(n) for n in range(70, 20, -1)
    ]

    branch_log = requests.get(base + "/log/feature/x", timeout=30).text
    assert re.findall(r"Commit number (\d+)</td>", branch_log)[0] == "115"

    head = git_stack.git("rev-parse", "main", cwd=work).stdout.strip()
    commit = requests.get(f"{base}/commit/{head}", timeout=30)
    assert commit.status_code == 200
    assert "Commit number 120" in commit.text
    # A table of numbered lines, one per row (not double-spaced), with counts.
    assert re.search(
        r'<tr class="del" id="f1-o(\d+)"><td class="ln"><a href="#f1-o\1">\1</a>', commit.text
    )
    assert re.search(r'<span class="mark" aria-hidden="true">−</span>119</td>', commit.text)
    assert re.search(r'<span class="mark" aria-hidden="true">\+</span>120</td>', commit.text)
    assert 'aria-label="1 added">+1</span>' in commit.text
    assert 'aria-label="1 removed">−1</span>' in commit.text
    short = requests.get(f"{base}/commit/{head[:8]}", allow_redirects=False, timeout=30)
    assert short.status_code == 302
    assert short.headers["Location"].endswith(f"/commit/{head}")

    # The tree page switches branches with links.
    tree = requests.get(base + "/tree", timeout=30).text
    assert "<summary>Branch: <code>main</code></summary>" in tree
    assert f'href="/~{alice}/history/tree/feature/x"' in tree

    refs = requests.get(base + "/refs", timeout=30).text
    assert '>main</a> <span class="muted">(default)</span>' in refs
    assert ">feature/x</a>" in refs
    assert ">v1.0</a>" in refs


def test_a_private_repository_is_missing_to_those_without_access(git_stack: GitStack) -> None:
    alice, bob, carol = (git_stack.new_user(n) for n in ("alice", "bob", "carol"))
    token = git_stack.publish(alice, "hidden", {"a.txt": "secret\n"}, visibility="private")
    base = f"{git_stack.git_url}/~{alice}/hidden"
    pages = [
        "",
        "/tree",
        "/tree/main/item/a.txt",
        "/raw/main/item/a.txt",
        "/log",
        "/refs",
        "/blame/main/item/a.txt",
        "/settings",
    ]

    anonymous, stranger = requests.Session(), git_stack.browser(bob)
    for who in (anonymous, stranger):
        for page in pages:
            answer = who.get(base + page, allow_redirects=False, timeout=30)
            assert answer.status_code in (404, 302), page
            if answer.status_code == 302:  # settings wants a login first
                assert page == "/settings" and who is anonymous
    # Their lists do not show it either.
    link = f'href="/~{alice}/hidden"'
    assert link not in stranger.get(f"{git_stack.git_url}/~{alice}").text

    git_stack.grant(token, alice, "hidden", carol, "ro")
    reader = git_stack.browser(carol)
    for page in pages[:-1]:
        assert reader.get(base + page, timeout=30).status_code == 200, page
    assert reader.get(base + "/settings", timeout=30).status_code == 404
    answer = reader.get(base + "/raw/main/item/a.txt", timeout=30)
    assert answer.headers["Cache-Control"] == "private, no-store"
    assert link in reader.get(f"{git_stack.git_url}/~{alice}").text

    owner = git_stack.browser(alice)
    assert link in owner.get(f"{git_stack.git_url}/~{alice}").text


def test_settings_rename_access_and_delete(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    git_stack.publish(alice, "project", {"a.txt": "a\n"})
    git_stack.browser(bob).get(git_stack.git_url + "/")  # bob signs in to git once
    owner = git_stack.browser(alice)
    base = f"{git_stack.git_url}/~{alice}/project"

    saved = owner.submit(
        base + "/settings",
        {"description": "Now described.", "visibility": "private", "default_branch": "main"},
    )
    assert saved.status_code == 303
    page = text(owner.get(base + "/settings"))
    assert "Settings saved." in page
    summary = owner.get(base)
    assert "Now described." in text(summary) and "Private" in text(summary)

    granted = owner.submit(base + "/settings/access", {"username": bob, "mode": "rw"})
    assert granted.status_code == 303
    access_page = text(owner.get(base + "/settings/access"))
    assert f"~{bob} now has read and write access." in access_page
    unknown = owner.submit(base + "/settings/access", {"username": "nobody-here", "mode": "ro"})
    assert unknown.status_code == 400
    assert "No user ~nobody-here is known here yet" in text(unknown)
    assert git_stack.browser(bob).get(base, timeout=30).status_code == 200

    renamed = owner.submit(base + "/settings/rename", {"name": "renamed"})
    assert renamed.status_code == 303
    old = requests.get(base + "/tree/main/item/a.txt?x=1", allow_redirects=False, timeout=30)
    assert old.status_code == 404  # private now: the old name leads nowhere for strangers
    old = owner.get(base + "/tree/main/item/a.txt?x=1", allow_redirects=False)
    assert old.status_code == 301
    assert old.headers["Location"].endswith(f"/~{alice}/renamed/tree/main/item/a.txt?x=1")

    # Taking access away asks first; only the question's button does it.
    new_base = f"{git_stack.git_url}/~{alice}/renamed"
    question = owner.get(f"{new_base}/settings/access/{bob}/remove")
    assert question.status_code == 200
    assert f"Take ~{bob}'s access to ~{alice}/renamed away?" in text(question)
    assert "can read and push to it now" in text(question)
    assert git_stack.browser(bob).get(new_base, timeout=30).status_code == 200
    removed = owner.submit(f"{new_base}/settings/access/{bob}/remove", {})
    assert removed.status_code == 303
    assert git_stack.browser(bob).get(new_base, timeout=30).status_code == 404
    gone = owner.get(f"{new_base}/settings/access/{bob}/remove")
    assert gone.status_code == 404
    assert f"~{bob} has no access to ~{alice}/renamed to take away." in text(gone)

    repo_id = git_stack.api("GET", f"/api/~{alice}/repos/renamed", git_stack.token(alice)).json()[
        "id"
    ]
    folder = git_stack.repos / f"{repo_id}.git"
    assert folder.is_dir()
    question = owner.get(f"{new_base}/settings/delete")
    assert question.status_code == 200
    assert f"Delete ~{alice}/renamed?" in text(question)
    wrong = owner.submit(f"{new_base}/settings/delete", {"typed": "project"})
    assert wrong.status_code == 400
    assert "Type renamed exactly to confirm; nothing was changed." in text(wrong)
    assert folder.is_dir()
    deleted = owner.submit(f"{new_base}/settings/delete", {"typed": "renamed"})
    assert deleted.status_code == 303
    assert deleted.headers["Location"].endswith(f"/~{alice}")
    assert owner.get(new_base).status_code == 404
    assert not folder.exists()
    assert owner.get(base).status_code == 404


def test_settings_pages_share_the_kit_layout(git_stack: GitStack) -> None:
    alice, bob = git_stack.new_user("alice"), git_stack.new_user("bob")
    git_stack.publish(alice, "laid-out", {"a.txt": "a\n"}, description="Laid out.")
    base = f"/~{alice}/laid-out"
    owner = git_stack.browser(alice)
    sections = {
        "/settings": "Details",
        "/settings/rename": "Name",
        "/settings/access": "Access",
    }
    for suffix, label in sections.items():
        page = owner.get(git_stack.git_url + base + suffix)
        assert page.status_code == 200, suffix
        body = page.text
        # The repository's header with its tabs, Settings current.
        assert '<header class="page">' in body
        assert f'<a href="{base}/settings" aria-current="page">Settings</a>' in body
        assert f'<a href="{base}">Summary</a>' in body
        assert '<p class="description">Laid out.</p>' in body
        # The side menu, this section current.
        menu = re.search(r'<nav class="settings-menu".*?</nav>', body, re.S)
        assert menu is not None, suffix
        links = re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', menu.group(0))
        assert [(href, text_) for href, _, text_ in links] == [
            (base + "/settings", "Details"),
            (base + "/settings/rename", "Name"),
            (base + "/settings/access", "Access"),
            (base + "/settings/delete", "Delete"),
        ]
        assert [text_ for _, current, text_ in links if current] == [label]
    # A reader sees no Settings tab; the settings are missing to them.
    reader = git_stack.browser(bob)
    summary = reader.get(git_stack.git_url + base).text
    assert ">Settings</a>" not in summary and '<nav class="tabs"' in summary
    for suffix in (*sections, "/settings/delete", f"/settings/access/{alice}/remove"):
        assert reader.get(git_stack.git_url + base + suffix).status_code == 404, suffix
    # Everything a form got wrong is shown at once, each at its field.
    bad = owner.submit(git_stack.git_url + base + "/settings/rename", {"name": "no/slashes"})
    assert bad.status_code == 400
    assert '<div class="flash error form-problems" role="alert">' in bad.text
    assert "Use letters, digits, dots, dashes and underscores" in text(bad)


def raw_get(url: str, path: str) -> tuple[int, str]:
    """GET ``path`` exactly as written (``requests`` would resolve ``..``)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, html.unescape(answer.read().decode(errors="replace"))
    finally:
        connection.close()


def test_a_path_outside_the_tree_is_a_404_that_says_so(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    git_stack.publish(alice, "dots", {"src/a.txt": "a\n", ":(glob)x": "odd\n"})
    base = f"/~{alice}/dots"
    for kind in ("tree", "raw", "blame"):
        for path in ("../a.txt", "src/../../x", "src/./a.txt", "%2e%2e/%2E%2E/etc/passwd"):
            status, body = raw_get(git_stack.git_url, f"{base}/{kind}/main/item/{path}")
            assert status == 404, (kind, path)
            shown = path.replace("%2e", ".").replace("%2E", ".")
            assert f"No file or folder {shown} at main in ~{alice}/dots." in body, (kind, path)
    # Paths are taken literally: pathspec magic is a file name like any other.
    status, body = raw_get(git_stack.git_url, f"{base}/raw/main/item/:(glob)x")
    assert (status, body) == (200, "odd\n")
    status, body = raw_get(git_stack.git_url, f"{base}/tree/main/item/:(top)nothing")
    assert status == 404
    # The file itself is still there.
    status, body = raw_get(git_stack.git_url, f"{base}/raw/main/item/src/a.txt")
    assert (status, body) == (200, "a\n")


def test_the_index_lists_recent_public_pushes(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    git_stack.publish(alice, "shown", {"a.txt": "a\n"})
    git_stack.publish(alice, "unshown", {"a.txt": "a\n"}, visibility="unlisted")
    index = requests.get(git_stack.git_url + "/", timeout=30).text
    assert f"~{alice}/shown" in index
    assert f"~{alice}/unshown" not in index


def test_the_default_branch_follows_the_first_push(git_stack: GitStack, tmp_path: Path) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "trunk")
    work = git_stack.work_tree({"a.txt": "a\n"}, branch="trunk")
    pushed = git_stack.git("push", git_stack.http_url(alice, "trunk", token), "trunk", cwd=work)
    assert pushed.ok
    assert "remote: The default branch is now trunk." in pushed.stderr
    clone = git_stack.fresh_dir()
    assert git_stack.git("clone", git_stack.http_url(alice, "trunk"), str(clone)).ok
    branch = subprocess.run(
        ["git", "branch", "--show-current"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    assert branch == "trunk"


def test_deleting_an_account_at_meta_deletes_its_repositories(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.publish(alice, "doomed", {"a.txt": "a\n"})
    repo_id = git_stack.api("GET", f"/api/~{alice}/repos/doomed", token).json()["id"]
    folder = git_stack.repos / f"{repo_id}.git"
    assert folder.is_dir()

    git_stack.delete_account(alice)

    assert requests.get(f"{git_stack.git_url}/~{alice}/doomed", timeout=30).status_code == 404
    assert not folder.exists()


def test_a_patch_is_split_into_numbered_lines_with_counts_per_file() -> None:
    from srht_plugins.git.web.browse import parse_patch

    patch = (
        "diff --git a/walk.py b/walk.py\n"
        "index 1..2 100644\n"
        "--- a/walk.py\n"
        "+++ b/walk.py\n"
        "@@ -10,3 +10,4 @@ def walk():\n"
        " same\n"
        "-old\n"
        "+new\n"
        "+newer\n"
        " \n"
        "diff --git a/gone.txt b/gone.txt\n"
        "deleted file mode 100644\n"
        "--- a/gone.txt\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-bye\n"
        "\\ No newline at end of file\n"
    )
    walk, gone = parse_patch(patch)
    assert (walk.new, walk.added, walk.removed) == ("walk.py", 2, 1)
    assert [(line.kind, line.old, line.new, line.text) for line in walk.lines] == [
        ("hunk", None, None, "@@ -10,3 +10,4 @@ def walk():"),
        ("ctx", 10, 10, "same"),
        ("del", 11, None, "old"),
        ("add", None, 11, "new"),
        ("add", None, 12, "newer"),
        ("ctx", 12, 13, ""),
    ]
    assert (gone.old, gone.new, gone.added, gone.removed) == ("gone.txt", "/dev/null", 0, 1)
    assert [line.kind for line in gone.lines] == ["hunk", "del", "note"]
