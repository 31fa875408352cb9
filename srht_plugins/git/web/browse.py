"""Browsing a repository: its summary (README rendered), trees, files
(highlighted, with line anchors), raw files (streamed), blame, the log
(paged by commit), a commit with its diff, and its branches and tags.

Everything is read through :mod:`..plumbing` (libgit2, in this process),
which bounds what a page
reads: a file larger than :data:`DISPLAY_LIMIT` is not shown but linked
raw, and the raw view streams it whatever its size; binary files are
detected as git does and not shown as text; a diff is cut at
:data:`DIFF_LIMIT`.

A ref in a URL may contain slashes (``feature/x``), so a path inside the
tree follows ``/item/``: ``/~alice/repo/tree/feature/x/item/src/main.c``.

Each page resolves what its URL names once (a branch to its commit), then
answers through :func:`.kept.kept_page`: a strong ETag and 304s, and, for
visitors without an account, the rendering kept per worker.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, redirect, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from srht_core import (
    RenderedFile,
    highlighted_lines,
    human_size,
    language_of,
    render_file,
    render_markdown,
    sandbox,
)

from ..plumbing import Commit, Entry, GitError, GitRepo, TooLarge, is_binary
from ..repos import open_repository
from .common import Viewing, private_headers, repository_page, viewing
from .kept import kept_page

bp = Blueprint("git_browse", __name__)

#: Largest file shown on a page (larger ones get a link to the raw file).
DISPLAY_LIMIT = 1024 * 1024
#: Largest README rendered on the summary.
README_LIMIT = 256 * 1024
#: How much of a commit's patch a page shows.
DIFF_LIMIT = 2 * 1024 * 1024
#: Porcelain output blame may produce (about 10 times the file's size).
BLAME_LIMIT = 16 * 1024 * 1024
LOG_PAGE = 50
_HEX = re.compile(r"^[0-9a-f]{4,40}$")


def _git(view: Viewing) -> GitRepo:
    return open_repository(view.repository)


def _commit_of(view: Viewing, git: GitRepo, ref: str) -> str:
    commit = git.resolve(ref)
    if commit is None:
        abort(404, f"No branch, tag or commit {ref} in {view.ref}.")
    return commit


def _entry(view: Viewing, git: GitRepo, ref: str, commit: str, path: str) -> Entry:
    """The file or folder at ``path``; 404 when there is none (a path
    with a ``..`` in it never names one)."""
    entry = git.entry(commit, path)
    if entry is None:
        abort(404, f"No file or folder {path} at {ref} in {view.ref}.")
    return entry


@dataclass(frozen=True)
class Crumb:
    name: str
    path: str


def _crumbs(path: str) -> list[Crumb]:
    parts = [p for p in path.split("/") if p]
    return [Crumb(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


# -- summary ---------------------------------------------------------------------------------


@bp.get("/~<username>/<name>")
def summary(username: str, name: str) -> BaseResponse:
    view = viewing(username, name)
    git = _git(view)
    branch, head = git.default_revision()
    return kept_page(view, (branch, head), lambda: _summary(view, git, branch, head))


def _summary(view: Viewing, git: GitRepo, branch: str | None, head: str | None) -> Response:
    readme_html = None
    readme: Entry | None = None
    commits: list[Commit] = []
    if head is not None:
        commits = git.log(head, 5)
        readme = git.readme(head)
        if readme is not None and (readme.size or 0) <= README_LIMIT:
            content = git.blob_head(readme.oid, README_LIMIT)
            if not is_binary(content):
                text = content.decode(errors="replace")
                if readme.name.lower().endswith((".md", ".markdown")):
                    readme_html = render_markdown(text)
                else:
                    readme_html = Markup('<pre class="readme">{}</pre>').format(text)
    return repository_page(
        "git/summary.html",
        view,
        branch=branch,
        head=head,
        commits=_commit_rows(view, commits),
        readme=readme,
        readme_html=readme_html,
    )


# -- trees and files -------------------------------------------------------------------------


@bp.get("/~<username>/<name>/tree")
def tree_default(username: str, name: str) -> BaseResponse:
    view = viewing(username, name)
    branch, head = _git(view).default_revision()
    if head is None or branch is None:
        return redirect(
            url_for(".summary", username=view.owner.username, name=view.repository.name)
        )
    return _kept_tree_or_blob(view, branch, head, "")


@bp.get("/~<username>/<name>/tree/<path:ref>")
def tree_root(username: str, name: str, ref: str) -> BaseResponse:
    view = viewing(username, name)
    return _kept_tree_or_blob(view, ref, _commit_of(view, _git(view), ref), "")


@bp.get("/~<username>/<name>/tree/<path:ref>/item/<path:path>")
def tree_item(username: str, name: str, ref: str, path: str) -> BaseResponse:
    view = viewing(username, name)
    return _kept_tree_or_blob(view, ref, _commit_of(view, _git(view), ref), path)


def _kept_tree_or_blob(view: Viewing, ref: str, commit: str, path: str) -> BaseResponse:
    # A folder's page lists the branches too: it varies with them.
    return kept_page(
        view, (commit, tuple(_git(view).branches())), lambda: _tree_or_blob(view, ref, commit, path)
    )


def _tree_or_blob(view: Viewing, ref: str, commit: str, path: str) -> Response:
    git = _git(view)
    entry = _entry(view, git, ref, commit, path)
    context: dict[str, Any] = {"ref": ref, "commit": commit, "path": path, "crumbs": _crumbs(path)}
    if entry.is_tree:
        last = git.log(commit, 1, path)
        # One url_for for the folder, not one per entry: folders may hold thousands.
        prefix = url_for(
            ".tree_item",
            username=view.owner.username,
            name=view.repository.name,
            ref=ref,
            path=f"{path}/x" if path else "x",
        )[:-1]
        entries = git.tree(entry.oid)
        return repository_page(
            "git/tree.html",
            view,
            listing=_listing(entries, prefix),
            empty=not entries,
            entry=entry,
            last=last[0] if last else None,
            # The branch switcher (links to each branch's root: a folder
            # may not exist on another branch).
            branches=[r.name for r in git.refs(BRANCH_MENU) if r.kind == "branch"],
            **context,
        )
    return repository_page(
        "git/blob.html", view, entry=entry, shown=_show_blob(git, entry), **context
    )


def _listing(entries: list[Entry], prefix: str) -> Markup:
    """The rows of a folder's table. Made here rather than in the template:
    a folder may hold thousands of entries, and this is several times faster."""
    rows = []
    for item in entries:
        name = html.escape(item.name)
        if item.is_submodule:
            cell = f'{name} <span class="muted">@ {item.oid[:10]}</span>'
        else:
            href = html.escape(prefix + quote(item.name))
            cell = f'<a href="{href}">{name}{"/" if item.is_tree else ""}</a>'
        rows.append(
            f'<tr><td class="mode"><code>{item.mode}</code></td><td class="name">{cell}'
            f'</td><td class="size">{human_size(item.size)}</td></tr>'
        )
    return Markup("\n".join(rows))  # noqa: S704 - every value is escaped above


def _commit_rows(view: Viewing, commits: list[Commit]) -> Markup:
    """The rows of a table of commits (the log, the summary's latest):
    the short id linking to the commit's page, the subject, the author and
    the time. Made here for the same reason as :func:`_listing`: 50 rows
    through a macro each cost the log page two thirds of its time."""
    link = url_for(
        ".commit", username=view.owner.username, name=view.repository.name, commit_id="0"
    )[:-1]
    rows = []
    for commit in commits:
        when = commit.authored
        rows.append(
            f'<tr><td><a class="id" href="{html.escape(link)}{commit.id}"><code>'
            f"{commit.short_id}</code></a></td>"
            f'<td class="subject">{html.escape(commit.subject)}</td>'
            f"<td>{html.escape(commit.author_name)}</td>"
            f'<td><time datetime="{when.isoformat()}Z">{when:%Y-%m-%d %H:%M}</time></td></tr>'
        )
    return Markup("\n".join(rows))  # noqa: S704 - every value is escaped above


@dataclass(frozen=True)
class ShownBlob:
    """How a file appears on its page: ``kind`` is ``text``, ``binary``,
    ``large``, ``symlink`` or ``submodule``."""

    kind: str
    rendered: RenderedFile | None = None
    target: str = ""


def _show_blob(git: GitRepo, entry: Entry) -> ShownBlob:
    if entry.is_submodule:
        return ShownBlob("submodule", target=entry.oid)
    if entry.size is not None and entry.size > DISPLAY_LIMIT:
        return ShownBlob("large")
    content = git.blob_head(entry.oid, DISPLAY_LIMIT)
    if entry.is_symlink:
        return ShownBlob("symlink", target=content.decode(errors="replace"))
    if is_binary(content):
        return ShownBlob("binary")
    return ShownBlob("text", render_file(entry.name, content.decode(errors="replace")))


@bp.get("/~<username>/<name>/raw/<path:ref>/item/<path:path>")
def raw(username: str, name: str, ref: str, path: str) -> Response:
    view = viewing(username, name)
    git = _git(view)
    entry = _entry(view, git, ref, _commit_of(view, git, ref), path)
    if entry.type != "blob":
        abort(404, f"{path} at {ref} in {view.ref} is not a file.")
    chunks = git.blob_stream(entry.oid)
    first = next(chunks, b"")
    binary = is_binary(first)

    def body() -> Iterator[bytes]:
        try:
            yield from chain([first], chunks)
        finally:
            chunks.close()

    response = Response(
        body(),
        direct_passthrough=True,
        mimetype="application/octet-stream" if binary else "text/plain",
    )
    if entry.size is not None:
        response.content_length = entry.size
    # Even a browser that ignored the type would run nothing from here.
    return private_headers(sandbox(response), view.repository)


@bp.get("/~<username>/<name>/blame/<path:ref>/item/<path:path>")
def blame(username: str, name: str, ref: str, path: str) -> BaseResponse:
    view = viewing(username, name)
    git = _git(view)
    commit = _commit_of(view, git, ref)
    return kept_page(view, commit, lambda: _blame(view, git, ref, commit, path))


def _blame(view: Viewing, git: GitRepo, ref: str, commit: str, path: str) -> Response:
    entry = _entry(view, git, ref, commit, path)
    if entry.type != "blob" or entry.is_symlink:
        abort(404, f"{path} at {ref} in {view.ref} is not a file.")
    context: dict[str, Any] = {
        "ref": ref,
        "commit": commit,
        "path": path,
        "crumbs": _crumbs(path),
        "entry": entry,
    }
    problem = None
    if entry.size is not None and entry.size > DISPLAY_LIMIT:
        problem = "This file is too large to blame here."
    elif is_binary(git.blob_head(entry.oid, 8000)):
        problem = "This is a binary file: it has no lines to blame."
    if problem is None:
        try:
            found = git.blame(commit, path, BLAME_LIMIT)
        except TooLarge:
            problem = "This file's history is too large to blame here."
    if problem is not None:
        return repository_page("git/blame.html", view, problem=problem, rows=[], **context)
    lexer, lines = highlighted_lines(entry.name, "\n".join(line.text for line in found.lines))
    rows = []
    previous = None
    for line, line_html in zip(found.lines, lines, strict=False):
        info = found.commits.get(line.commit)
        rows.append((line, line_html, info if line.commit != previous else None))
        previous = line.commit
    return repository_page(
        "git/blame.html", view, problem=None, rows=rows, language=language_of(lexer), **context
    )


# -- history ---------------------------------------------------------------------------------


@bp.get("/~<username>/<name>/log")
def log_default(username: str, name: str) -> BaseResponse:
    view = viewing(username, name)
    branch, head = _git(view).default_revision()
    if head is None or branch is None:
        return repository_page("git/log.html", view, ref=None, commits=Markup(), next_id=None)
    return _log(view, branch, head)


@bp.get("/~<username>/<name>/log/<path:ref>")
def log(username: str, name: str, ref: str) -> BaseResponse:
    view = viewing(username, name)
    return _log(view, ref, _commit_of(view, _git(view), ref))


def _log(view: Viewing, ref: str, head: str) -> BaseResponse:
    git = _git(view)
    start = request.args.get("from", "")
    if start:
        resolved = git.resolve(start) if _HEX.match(start) else None
        if resolved is None:
            abort(404, f"No commit {start} in {view.ref}.")
        head = resolved
    return kept_page(view, head, lambda: _log_page(view, git, ref, head))


def _log_page(view: Viewing, git: GitRepo, ref: str, head: str) -> Response:
    commits = git.log(head, LOG_PAGE + 1)
    next_id = commits[LOG_PAGE].id if len(commits) > LOG_PAGE else None
    return repository_page(
        "git/log.html",
        view,
        ref=ref,
        commits=_commit_rows(view, commits[:LOG_PAGE]),
        next_id=next_id,
    )


#: How many refs the tree page's branch switcher reads.
BRANCH_MENU = 100


@dataclass
class DiffLine:
    """One line of a file's diff: its kind (``add``, ``del``, ``ctx``,
    ``hunk``, ``note``), its numbers in the old and new file (None where it
    has none), and its text without the leading ``+``/``-``/space."""

    kind: str
    old: int | None
    new: int | None
    text: str


@dataclass
class FileDiff:
    header: list[str]
    lines: list[DiffLine]
    old: str = ""
    new: str = ""
    added: int = 0
    removed: int = 0


_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def parse_patch(patch: str) -> list[FileDiff]:
    """Split ``git diff-tree -p`` output into files of classified, numbered
    lines, with the count of lines added and removed in each."""
    files: list[FileDiff] = []
    current: FileDiff | None = None
    old_no = new_no = 0
    for line in patch.split("\n"):
        if line.startswith("diff --git "):
            current = FileDiff([line], [])
            files.append(current)
            continue
        if current is None:
            continue
        if not current.lines and not line.startswith("@@"):
            current.header.append(line)
            if line.startswith("--- "):
                current.old = line[4:].removeprefix("a/")
            elif line.startswith("+++ "):
                current.new = line[4:].removeprefix("b/")
            elif line.startswith(("rename from ", "rename to ")):
                current.old = current.old or line.removeprefix("rename from ")
            continue
        mark = line[:1]
        if mark == "@":
            hunk = _HUNK.match(line)
            if hunk:
                old_no, new_no = int(hunk[1]), int(hunk[2])
            current.lines.append(DiffLine("hunk", None, None, line))
        elif mark == "+":
            current.lines.append(DiffLine("add", None, new_no, line[1:]))
            current.added += 1
            new_no += 1
        elif mark == "-":
            current.lines.append(DiffLine("del", old_no, None, line[1:]))
            current.removed += 1
            old_no += 1
        elif mark == "\\":
            current.lines.append(DiffLine("note", None, None, line))
        elif mark == " ":
            current.lines.append(DiffLine("ctx", old_no, new_no, line[1:]))
            old_no += 1
            new_no += 1
    for file in files:
        if not file.new:
            names = file.header[0].removeprefix("diff --git ").split(" b/", 1)
            file.new = names[-1]
            file.old = file.old or names[0].removeprefix("a/")
    return files


#: The mark of each kind of numbered line, shown in its own cell.
_MARKS = {"add": "+", "del": "\N{MINUS SIGN}", "ctx": " "}


def _diff_rows(file: FileDiff, file_no: int) -> Markup:
    """The rows of one file's table on the commit page: a hunk or note line
    across the number columns; a numbered line with its old and new numbers,
    the number that exists (the old one of a removed line, else the new one)
    linking to the row's anchor ``f<file_no>-n<new>`` or ``-o<old>``, its
    mark and its escaped text.

    Built here rather than in the template: a diff runs to thousands of
    lines, and Jinja's expressions cost about 20 µs a line (two thirds of a
    commit page's time before this); this loop costs about 1.5 µs."""
    rows: list[str] = []
    add = rows.append
    for line in file.lines:
        text = html.escape(line.text)
        kind = line.kind
        if kind == "hunk" or kind == "note":
            add(
                f'<tr class="{kind}"><td class="ln" colspan="2"></td>'
                f'<td class="line">{text}</td></tr>'
            )
            continue
        if line.new:
            anchor = f"f{file_no}-n{line.new}"
            numbers = (
                f'<td class="ln">{line.old or ""}</td>'
                f'<td class="ln"><a href="#{anchor}">{line.new}</a></td>'
            )
        else:
            anchor = f"f{file_no}-o{line.old}"
            numbers = f'<td class="ln"><a href="#{anchor}">{line.old}</a></td><td class="ln"></td>'
        add(
            f'<tr class="{kind}" id="{anchor}">{numbers}<td class="line">'
            f'<span class="mark" aria-hidden="true">{_MARKS[kind]}</span>{text}</td></tr>'
        )
    return Markup("\n".join(rows))  # noqa: S704 - every text is escaped above


@bp.get("/~<username>/<name>/commit/<commit_id>")
def commit(username: str, name: str, commit_id: str) -> BaseResponse:
    view = viewing(username, name)
    git = _git(view)
    found = git.commit(commit_id) if _HEX.match(commit_id) else None
    if found is None:
        abort(404, f"No commit {commit_id} in {view.ref}.")
    if found.id != commit_id:
        return redirect(
            url_for(
                ".commit",
                username=view.owner.username,
                name=view.repository.name,
                commit_id=found.id,
            )
        )

    def render() -> Response:
        patch, truncated = git.diff(found.id, DIFF_LIMIT)
        return repository_page(
            "git/commit.html",
            view,
            commit=found,
            files=parse_patch(patch),
            truncated=truncated,
            diff_rows=_diff_rows,
        )

    return kept_page(view, found.id, render)


@bp.get("/~<username>/<name>/refs")
def refs(username: str, name: str) -> BaseResponse:
    view = viewing(username, name)
    git = _git(view)
    try:
        found = git.refs()
    except GitError:
        found = []
    default = git.head_branch()
    return kept_page(
        view,
        (default, tuple((r.full_name, r.target) for r in found)),
        lambda: repository_page(
            "git/refs.html",
            view,
            branches=[r for r in found if r.kind == "branch"],
            tags=[r for r in found if r.kind == "tag"],
            default=default,
        ),
    )
