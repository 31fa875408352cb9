"""A repository of 10,000 commits with a 50 MB text file at its tip, pushed
and cloned over HTTP and browsed, while the web workers' memory stays
bounded: no page or transfer holds the file or the pack in memory.

Memory is measured, not time: the peak resident size (``VmHWM``) of every
gunicorn worker of the service, after everything, is under a generous
bound.
"""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import requests

from .conftest import GitStack, linear_history, peak_rss, served_pids

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

COMMITS = 10_000
BIG = 50 * 1024 * 1024
MEMORY_BOUND = 300 * 1024 * 1024


def big_text() -> bytes:
    """50 MB of text: lines of random hex (so git sees text, not binary)."""
    raw = os.urandom(BIG // 2).hex().encode()
    return b"\n".join(raw[i : i + 127] for i in range(0, len(raw), 127))[: BIG - 1] + b"\n"


def test_a_large_repository_browses_and_clones_in_bounded_memory(git_stack: GitStack) -> None:
    alice = git_stack.new_user("alice")
    token = git_stack.token(alice)
    git_stack.create_repo(token, "large")
    content = big_text()
    message = b"Add a very large file\n"
    stream = linear_history(COMMITS) + (
        b"commit refs/heads/main\n"
        b"author Test Author <author@example.org> 1800000000 +0000\n"
        b"committer Test Author <author@example.org> 1800000000 +0000\n"
        + f"data {len(message)}\n".encode()
        + message
        + f"from :{COMMITS}\nM 100644 inline big.txt\ndata {len(content)}\n".encode()
        + content
        + b"\n"
    )
    work = git_stack.fast_import(stream)
    pushed = git_stack.git(
        "push", git_stack.http_url(alice, "large", token), "main", cwd=work, timeout=900
    )
    assert pushed.ok, pushed.stderr
    del stream
    base = f"{git_stack.git_url}/~{alice}/large"

    summary = requests.get(base, timeout=120)
    assert summary.status_code == 200
    assert "Add a very large file" in summary.text

    log = requests.get(base + "/log", timeout=120).text
    assert re.findall(r"Commit number (\d+)</td>", log)[:3] == ["10000", "9999", "9998"]
    older = re.search(r'href="([^"]+\?from=[0-9a-f]{40})"', log)
    assert older is not None
    deep = requests.get(git_stack.git_url + older.group(1), timeout=120).text
    assert re.findall(r"Commit number (\d+)</td>", deep)[0] == "9951"

    tree = requests.get(base + "/tree/main/item/files", timeout=120)
    assert tree.status_code == 200
    assert tree.text.count('href="/~') >= COMMITS // 100

    page = requests.get(base + "/tree/main/item/big.txt", timeout=120)
    assert page.status_code == 200
    assert "This file is too large to display (50 MiB)." in page.text
    assert f'href="/~{alice}/large/raw/main/item/big.txt"' in page.text
    assert len(page.content) < 64 * 1024

    blame = requests.get(base + "/blame/main/item/big.txt", timeout=120)
    assert "This file is too large to blame here." in blame.text
    counter = requests.get(base + "/blame/main/item/counter.txt", timeout=120)
    assert '<td class="line">10000</td>' in counter.text

    head = git_stack.git("rev-parse", "main", cwd=work).stdout.strip()
    commit = requests.get(f"{base}/commit/{head}", timeout=120)
    assert commit.status_code == 200
    assert "This diff is too large to show in full; it stops here." in commit.text
    assert len(commit.content) < 16 * 1024 * 1024

    digest = hashlib.sha256()
    size = 0
    with requests.get(base + "/raw/main/item/big.txt", stream=True, timeout=120) as raw:
        assert raw.headers["Content-Length"] == str(len(content))
        for chunk in raw.iter_content(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    assert size == len(content)
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest()

    clone = git_stack.fresh_dir()
    cloned = git_stack.git(
        "clone", "--quiet", git_stack.http_url(alice, "large"), str(clone), timeout=900
    )
    assert cloned.ok, cloned.stderr
    assert (clone / "big.txt").stat().st_size == len(content)
    count = git_stack.git("rev-list", "--count", "HEAD", cwd=clone).stdout.strip()
    assert count == str(COMMITS + 1)

    _master, workers = served_pids(git_stack.config_path, "git")
    assert workers
    peaks = {pid: peak_rss(pid) for pid in workers}
    assert max(peaks.values()) < MEMORY_BOUND, {p: f"{v / 2**20:.0f} MiB" for p, v in peaks.items()}
