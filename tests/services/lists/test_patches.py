"""Patches the way contributors send them: real ``git send-email`` posts a
3-patch series with a cover letter to ``srht lists smtp``, then a v2 of it;
the list shows each as a patchset (v1 superseded by v2), its diffs
highlighted, and its mbox download applies with ``git am`` in a clean
clone, giving the contributor's tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.ci import require

from .conftest import DOMAIN

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LIST = f"~alice/devel@{DOMAIN}"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bob Contributor",
    "GIT_AUTHOR_EMAIL": "bob@example.org",
    "GIT_COMMITTER_NAME": "Bob Contributor",
    "GIT_COMMITTER_EMAIL": "bob@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    import os

    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=120,
    )
    assert done.returncode == 0, (args, done.stdout.decode(), done.stderr.decode())
    return done.stdout.decode()


def have_send_email() -> bool:
    if shutil.which("git") is None:
        return False
    probe = subprocess.run(["git", "send-email", "-h"], capture_output=True)
    return b"--dump-aliases" in probe.stdout + probe.stderr


def write(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)


def series(repo: Path, out: Path, *extra: str) -> list[Path]:
    """``git format-patch`` of the last three commits with a cover letter
    whose subject and blurb are filled in, as a contributor does."""
    git(repo, "format-patch", "--cover-letter", "-3", "-o", str(out), *extra)
    patches = sorted(out.glob("*.patch"))
    cover = patches[0]
    text = cover.read_text()
    text = text.replace("*** SUBJECT HERE ***", "Make the frobnicator gentle")
    text = text.replace("*** BLURB HERE ***", "Three steps to a gentler frobnicator.")
    cover.write_text(text)
    return patches


def send(listener: Any, patches: list[Path], repo: Path) -> None:
    git(
        repo,
        "send-email",
        "--smtp-server=127.0.0.1",
        f"--smtp-server-port={listener.port}",
        "--smtp-encryption=none",
        f"--to={LIST}",
        "--from=Bob Contributor <bob@example.org>",
        "--confirm=never",
        "--suppress-cc=all",
        "--no-validate",
        "--quiet",
        *map(str, patches),
    )


def test_a_series_and_its_v2_from_git_send_email_apply_with_git_am(
    site: Any, listener: Any, tmp_path: Path
) -> None:
    require(have_send_email(), "git send-email is not installed (apt-get install git-email)")
    alice = site.user("alice")
    site.mailing_list(alice, "devel")

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    write(upstream, "frob.c", "int frob(void) { return HARD; }\n")
    git(upstream, "commit", "-q", "-m", "frob: the first frobnicator")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(upstream), str(work))
    write(work, "frob.c", "int frob(void) { return SOFT; }\n")
    git(work, "commit", "-q", "-m", "frob: be gentle")
    write(work, "README", "The frobnicator frobs gently.\n")
    git(work, "commit", "-q", "-m", "README: say how it frobs\n\nFrom now on, gently.")
    write(work, "Makefile", "all:\n\tcc -c frob.c\n")
    git(work, "commit", "-q", "-m", "build: a Makefile")

    send(listener, series(work, tmp_path / "v1"), work)

    api = site.api(alice)
    [v1] = api.get("/lists/alice/devel/patchsets").json["results"]
    assert (v1["subject"], v1["version"], v1["total"], v1["status"]) == (
        "Make the frobnicator gentle",
        1,
        3,
        "proposed",
    )
    # One thread: the cover letter and its three patches.
    [thread] = api.get("/lists/alice/devel/threads").json["results"]
    assert thread["messages"] == 4
    page = site.browser().get(f"/~alice/devel/patches/{v1['id']}").get_data(as_text=True)
    assert "Three steps to a gentler frobnicator." in page
    for subject in ("frob: be gentle", "README: say how it frobs", "build: a Makefile"):
        assert subject in page
    assert (
        'class="code highlight"' in page and 'class="gi">+int frob(void) { return SOFT; }' in page
    )

    # v2: the review asked for more; the last patch changes. Sent as a new
    # thread, as git send-email does by default.
    write(work, "Makefile", "all: frob.o\n\nfrob.o: frob.c\n\tcc -c frob.c\n")
    git(work, "commit", "-q", "--amend", "--no-edit")
    v2_dir = tmp_path / "v2"
    patches_v2 = series(work, v2_dir, "-v2")
    send(listener, patches_v2, work)

    found = api.get("/lists/alice/devel/patchsets").json["results"]
    by_version = {p["version"]: p for p in found}
    assert sorted(by_version) == [1, 2]
    assert by_version[1]["status"] == "superseded"
    assert by_version[1]["superseded_by"] == by_version[2]["id"]
    assert by_version[2]["status"] == "proposed"
    v2_page = site.browser().get(f"/~alice/devel/patches/{by_version[2]['id']}")
    assert 'aria-current="page">v2</span>' in v2_page.get_data(as_text=True)

    # Applying v2 in a clean clone of upstream gives the contributor's tree.
    mbox = site.browser().get(f"/~alice/devel/patches/{by_version[2]['id']}/mbox")
    assert mbox.status_code == 200
    assert mbox.headers["Content-Type"] == "application/mbox"
    clean = tmp_path / "clean"
    git(tmp_path, "clone", "-q", str(upstream), str(clean))
    git(clean, "am", "-q", stdin=mbox.get_data())
    assert git(clean, "log", "--format=%s", "-3").splitlines() == [
        "build: a Makefile",
        "README: say how it frobs",
        "frob: be gentle",
    ]
    assert git(clean, "log", "-1", "--format=%an <%ae>", "HEAD~1").strip() == (
        "Bob Contributor <bob@example.org>"
    )
    assert "From now on, gently." in git(clean, "log", "-1", "--format=%B", "HEAD~1")
    assert git(clean, "rev-parse", "HEAD^{tree}") == git(work, "rev-parse", "HEAD^{tree}")

    # The whole thread downloads too, cover letter first.
    thread_mbox = site.browser().get(f"/~alice/devel/threads/{thread['id']}/mbox").get_data()
    assert thread_mbox.count(b"From mboxrd@z ") == 4
    assert b"Subject: [PATCH 0/3] Make the frobnicator gentle" in thread_mbox
