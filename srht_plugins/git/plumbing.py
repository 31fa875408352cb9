"""Reading repositories, with bounded memory.

Objects (refs, commits, trees, blobs, diffs, history) are read in the
worker's own process through libgit2 (pygit2): a page starts no process.
Each worker thread opens a repository once and keeps it (a bounded number
of them), as opening costs more than most reads. ``git blame``, raw files
(streamed in chunks however large) and changes (``symbolic-ref``) still run
the git CLI, whose output is read at most a fixed number of bytes at a time;
a command that runs longer than :data:`TIMEOUT` is killed. A page never
holds more of a repository in memory than it can show: a blob larger than
what is asked for is read through git, cut, and a diff stops before a file
whose versions would pass its limit.

Revisions and paths come from URLs: a revision starting with ``-`` names
nothing, and a path with an empty, ``.`` or ``..`` part names nothing, as
no tree holds such an entry. For git commands they are passed after
``--end-of-options`` or ``--`` and never read as options; paths are taken
literally (no pathspec magic such as ``:(glob)``).
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pygit2

from srht_core import BoundedCache

__all__ = [
    "Blame",
    "Commit",
    "Entry",
    "GitError",
    "GitRepo",
    "Ref",
    "TooLarge",
    "is_binary",
    "is_tree_path",
]

#: Seconds a git command may run for a page, and may go without output
#: while its output is streamed.
TIMEOUT = 30.0
#: Bytes read from a pipe at a time.
CHUNK = 64 * 1024
#: How much output a listing command (ls-tree, log, for-each-ref) may give.
LISTING_LIMIT = 8 * 1024 * 1024
#: git's own test for binary content: a NUL byte in the first 8000 bytes.
BINARY_SAMPLE = 8000
ZERO_ID = "0" * 40
_RS, _US = "\x1e", "\x1f"
_ZERO_OID = pygit2.Oid(hex=ZERO_ID)
_TREE, _GITLINK = 0o040000, 0o160000
_BLOB_MODES = (0o100644, 0o100755, 0o120000)
#: By date, never a parent before its child (``SortMode`` from pygit2 1.14).
_DATE_ORDER: Any = pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_TIME
#: Repositories opened with libgit2, by path and thread.
_OPENED: BoundedCache[tuple[str, int], pygit2.Repository] = BoundedCache(64)


class GitError(Exception):
    """A git command failed; ``str()`` has its error output."""


class TooLarge(Exception):
    """A command's output went past the limit it was read with."""


def is_binary(head: bytes) -> bool:
    """Whether content starting with ``head`` is binary, as git decides it."""
    return b"\0" in head[:BINARY_SAMPLE]


def is_tree_path(path: str) -> bool:
    """Whether ``path`` (slashes stripped) could name an entry of a tree:
    the root (``""``), or names none of which is empty, ``.`` or ``..``."""
    return path == "" or all(part not in ("", ".", "..") for part in path.split("/"))


@dataclass(frozen=True)
class Entry:
    """An entry of a tree: a file (blob), folder (tree) or submodule (commit)."""

    mode: str
    type: str
    oid: str
    size: int | None
    name: str

    @property
    def is_tree(self) -> bool:
        return self.type == "tree"

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"

    @property
    def is_submodule(self) -> bool:
        return self.type == "commit"


@dataclass(frozen=True)
class Commit:
    id: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    authored: datetime
    committer_name: str
    committed: datetime
    subject: str
    body: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:10]


@dataclass(frozen=True)
class Ref:
    """A branch or tag: ``name`` is short (``main``), ``kind`` ``branch`` or
    ``tag``, ``target`` the commit it points to (a tag peeled)."""

    name: str
    kind: str
    target: str
    date: datetime | None
    subject: str

    @property
    def full_name(self) -> str:
        """``refs/heads/<name>`` or ``refs/tags/<name>``: unique in a repository."""
        return ("refs/heads/" if self.kind == "branch" else "refs/tags/") + self.name


@dataclass(frozen=True)
class BlameLine:
    number: int
    commit: str
    text: str


@dataclass(frozen=True)
class Blame:
    lines: list[BlameLine]
    commits: dict[str, Commit]


def _utc(stamp: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(stamp), UTC).replace(tzinfo=None)
    except ValueError:
        return datetime(1970, 1, 1)


def _split_message(message: str) -> tuple[str, str]:
    """A commit or tag message's subject (its first paragraph on one line,
    as git's ``%s``) and body (the rest, as ``%b``, stripped)."""
    lines = message.lstrip("\n").split("\n")
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    subject = " ".join(line.strip() for line in lines[:end])
    return subject, "\n".join(lines[end:]).strip()


def _commit_of(found: pygit2.Commit) -> Commit:
    subject, body = _split_message(found.raw_message.decode(errors="replace"))
    author, committer = found.author, found.committer
    return Commit(
        str(found.id),
        tuple(str(parent) for parent in found.parent_ids),
        author.raw_name.decode(errors="replace"),
        author.raw_email.decode(errors="replace"),
        _utc(str(author.time)),
        committer.raw_name.decode(errors="replace"),
        _utc(str(committer.time)),
        subject,
        body,
    )


class _Process:
    """A git command whose output is read in chunks; killed when closed, or
    when it gives no output for ``idle`` seconds, or (if given) when it
    runs past ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(
        self, args: list[str], env: dict[str, str], idle: float, deadline: float | None = None
    ):
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.idle = idle
        self.deadline = deadline
        #: The git command's name (``git --git-dir PATH NAME ...``), for errors.
        self.name = args[3] if len(args) > 3 else args[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def chunks(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            wait = self.idle
            if self.deadline is not None:
                wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                self.kill()
                raise GitError(f"git {self.name} took too long")
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return
            yield chunk

    def close(self) -> tuple[int, str]:
        """Stop the command (if still running); its exit status and errors."""
        self.kill()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        errors = self.proc.stderr.read(CHUNK).decode(errors="replace")
        self.proc.stderr.close()
        return self.proc.wait(), errors


class GitRepo:
    """A bare repository on disk, read through libgit2 (and the git CLI where said)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def _args(self, *args: str) -> list[str]:
        return ["git", "--git-dir", str(self.path), *args]

    @staticmethod
    def _env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_NO_REPLACE_OBJECTS="1", GIT_LITERAL_PATHSPECS="1")
        return env

    def run(
        self,
        *args: str,
        limit: int = LISTING_LIMIT,
        ok: tuple[int, ...] = (0,),
        truncate: bool = False,
    ) -> bytes:
        """The output of ``git ARGS``, at most ``limit`` bytes.

        :param truncate: return the first ``limit`` bytes when there is
            more, instead of raising :class:`TooLarge`.
        :raises GitError: when git exits with a status not in ``ok``.
        """
        process = _Process(self._args(*args), self._env(), TIMEOUT, time.monotonic() + TIMEOUT)
        parts: list[bytes] = []
        size = 0
        over = False
        try:
            for chunk in process.chunks():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    over = True
                    break
        finally:
            status, errors = process.close()
        output = b"".join(parts)
        if over:
            if not truncate:
                raise TooLarge(f"git {args[0]} gave more than {limit} bytes")
            return output[:limit]
        if status not in ok:
            raise GitError(errors.strip() or f"git {args[0]} exited with {status}")
        return output

    def stream(self, *args: str) -> Generator[bytes, None, None]:
        """The output of ``git ARGS`` in chunks, however long; the command is
        stopped when the iterator is closed."""
        process = _Process(self._args(*args), self._env(), TIMEOUT)
        try:
            yield from process.chunks()
        finally:
            process.close()

    # -- objects, through libgit2 ----------------------------------------------------

    @property
    def objects(self) -> pygit2.Repository:
        """The repository opened with libgit2: once per worker thread, kept
        (bounded) between requests."""
        key = (str(self.path), threading.get_ident())
        found = _OPENED.get(key)
        if found is None:
            try:
                found = pygit2.Repository(str(self.path))
            except (pygit2.GitError, KeyError) as error:
                raise GitError(f"{self.path} is not a repository: {error}") from None
            _OPENED.put(key, found)
        return found

    def _size(self, oid: pygit2.Oid) -> int:
        """A blob's size, read from its header when libgit2 can (no content)."""
        odb = self.objects.odb
        if hasattr(odb, "read_header"):  # pygit2 >= 1.15
            return int(odb.read_header(oid)[1])
        blob: Any = self.objects[oid]
        return int(blob.size)

    def _commit(self, commit: str) -> pygit2.Commit | None:
        try:
            found = self.objects[commit]
            return found if isinstance(found, pygit2.Commit) else None
        except (KeyError, ValueError):
            return None

    def _entry(self, item: pygit2.Object, name: str) -> Entry:
        mode = item.filemode
        kind = {_TREE: "tree", _GITLINK: "commit"}.get(mode, "blob")
        size = self._size(item.id) if kind == "blob" else None
        return Entry(f"{mode:06o}", kind, str(item.id), size, name)

    # -- refs -------------------------------------------------------------------

    def resolve(self, revision: str) -> str | None:
        """The commit id ``revision`` (a branch, tag or id) names, or ``None``."""
        if not revision or revision.startswith("-") or "\0" in revision:
            return None
        try:
            found = self.objects.revparse_single(revision).peel(pygit2.Commit)
        except (KeyError, ValueError, TypeError, pygit2.GitError):
            return None
        return str(found.id)

    def head_branch(self) -> str | None:
        """The branch HEAD points to (whether or not it exists yet)."""
        try:
            # A bare repository's HEAD is a small file: read it, as lists of
            # repositories would otherwise run git once per repository.
            head = (self.path / "HEAD").read_text(errors="replace").strip()
        except OSError:
            head = ""
        if head.startswith("ref: refs/heads/"):
            return head.removeprefix("ref: refs/heads/")
        out = self.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1, 128))
        return out.decode().strip() or None

    def set_head(self, branch: str) -> None:
        self.run("symbolic-ref", "HEAD", "refs/heads/" + branch)

    def default_revision(self) -> tuple[str | None, str | None]:
        """The default branch and the commit it points to (either may be
        ``None`` in a repository nothing was pushed to)."""
        branch = self.head_branch()
        return branch, self.resolve("refs/heads/" + branch) if branch else None

    def _ref_names(self) -> list[str]:
        return [
            name
            for name in self.objects.listall_references()
            if name.startswith(("refs/heads/", "refs/tags/"))
        ]

    def refs(self, limit: int = 1000) -> list[Ref]:
        """Branches and tags, most recent first (as ``git for-each-ref
        --sort=-creatordate``: a tag's date is its tagger's, else its commit's)."""
        repo = self.objects
        refs = []
        for name in self._ref_names():
            try:
                target: Any = repo[repo.lookup_reference(name).resolve().target]
            except (KeyError, ValueError, pygit2.GitError):
                continue
            stamp: int | None = None
            message = b""
            if isinstance(target, pygit2.Tag):
                if target.tagger is not None:
                    stamp = target.tagger.time
                message = target.raw_message or b""
                try:
                    target = target.peel(None)
                except (KeyError, ValueError, pygit2.GitError):
                    continue
            if isinstance(target, pygit2.Commit):
                stamp = target.committer.time if stamp is None else stamp
                message = message or target.raw_message
            kind = "branch" if name.startswith("refs/heads/") else "tag"
            short = name.removeprefix("refs/heads/").removeprefix("refs/tags/")
            subject = _split_message(message.decode(errors="replace"))[0]
            date = _utc(str(stamp)) if stamp is not None else None
            refs.append(Ref(short, kind, str(target.id), date, subject))
        refs.sort(key=lambda ref: ref.full_name)
        refs.sort(key=lambda ref: ref.date or datetime.min, reverse=True)
        return refs[:limit]

    def branches(self) -> list[str]:
        return sorted(
            name.removeprefix("refs/heads/")
            for name in self._ref_names()
            if name.startswith("refs/heads/")
        )

    def is_empty(self) -> bool:
        return not self._ref_names()

    # -- trees and blobs ------------------------------------------------------------

    def entry(self, commit: str, path: str) -> Entry | None:
        """The entry at ``path`` in ``commit`` (the root tree for ``""``),
        or ``None`` when there is none, or ``path`` cannot name one."""
        path = path.strip("/")
        found = self._commit(commit)
        if found is None or not is_tree_path(path):
            return None
        if not path:
            return Entry("040000", "tree", str(found.tree_id), None, "")
        try:
            item = found.tree[path]
        except (KeyError, ValueError, UnicodeError):
            return None
        return self._entry(item, path)

    def tree(self, oid: str) -> list[Entry]:
        """The entries of the tree ``oid``: folders first, then by name."""
        tree = self.objects[oid]
        if not isinstance(tree, pygit2.Tree):
            raise GitError(f"{oid} is not a tree")
        entries = [self._entry(item, item.name or "") for item in tree]
        return sorted(entries, key=lambda e: (not e.is_tree, e.name.lower()))

    def blob_head(self, oid: str, limit: int) -> bytes:
        """The first ``limit`` bytes of a blob."""
        blob = pygit2.Oid(hex=oid)
        if self._size(blob) > limit:
            # Never the whole of a large blob in memory: git gives its start.
            return self.run("cat-file", "blob", oid, limit=limit, truncate=True)
        found: Any = self.objects[blob]
        return bytes(found.data)

    def blob_stream(self, oid: str) -> Generator[bytes, None, None]:
        """A blob's content in chunks, however large."""
        return self.stream("cat-file", "blob", oid)

    def readme(self, commit: str) -> Entry | None:
        """The README at the root of ``commit``: Markdown preferred."""
        found_commit = self._commit(commit)
        if found_commit is None:
            return None
        found: dict[str, pygit2.Object] = {}
        for item in found_commit.tree:
            name = item.name or ""
            if item.filemode in _BLOB_MODES and name.lower().startswith("readme"):
                found[name.lower()] = item
        for name in ("readme.md", "readme.markdown", "readme", "readme.txt", "readme.rst"):
            if name in found:
                return self._entry(found[name], found[name].name or "")
        if not found:
            return None
        first = found[min(found)]
        return self._entry(first, first.name or "")

    # -- history --------------------------------------------------------------------

    def log(self, commit: str, count: int, path: str = "") -> list[Commit]:
        """Up to ``count`` commits reachable from ``commit``, newest first,
        touching ``path`` if given (a commit whose ``path`` differs from
        each of its parents'). A walk stops after :data:`TIMEOUT` seconds."""
        start = self._commit(commit)
        if start is None:
            return []
        # By date, never a parent before its child (libgit2's date order
        # alone may put one first when their dates are equal).
        walker = self.objects.walk(start.id, _DATE_ORDER)
        if not path:
            return [_commit_of(found) for found in islice(walker, count)]
        path = path.strip("/")
        seen: dict[pygit2.Oid, pygit2.Oid | None] = {}

        def at(found: pygit2.Commit) -> pygit2.Oid | None:
            if found.id not in seen:
                try:
                    seen[found.id] = found.tree[path].id
                except (KeyError, ValueError, UnicodeError):
                    seen[found.id] = None
            return seen[found.id]

        deadline = time.monotonic() + TIMEOUT
        commits = []
        for walked, found in enumerate(walker):
            mine = at(found)
            parents = found.parents
            if (mine is not None and not parents) or (
                parents and all(at(parent) != mine for parent in parents)
            ):
                commits.append(_commit_of(found))
                if len(commits) >= count:
                    break
            if walked % 1000 == 999:
                seen = {} if len(seen) > 100_000 else seen
                if time.monotonic() > deadline:
                    break
        return commits

    def commit(self, revision: str) -> Commit | None:
        found = self.resolve(revision)
        commit = self._commit(found) if found is not None else None
        return _commit_of(commit) if commit is not None else None

    def diff(self, commit: str, limit: int) -> tuple[str, bool]:
        """The patch of ``commit`` against its first parent (or the empty
        tree), renames found, at most ``limit`` bytes; and whether it was cut
        short. A file whose two versions together would pass the limit is
        not diffed (nor anything after it)."""
        found = self._commit(commit)
        if found is None:
            raise GitError(f"no commit {commit}")
        if found.parents:
            changes = found.parents[0].tree.diff_to_tree(found.tree)
        else:
            changes = found.tree.diff_to_tree(swap=True)
        changes.find_similar()
        parts: list[bytes] = []
        size = 0
        for index, delta in enumerate(changes.deltas):
            weight = sum(
                self._size(side.id)
                for side in (delta.old_file, delta.new_file)
                if side.id != _ZERO_OID and side.mode not in (0, _GITLINK)
            )
            if size + weight > limit * 2:
                return b"".join(parts).decode(errors="replace"), True
            patch = changes[index]
            data = patch.data if patch is not None else b""
            parts.append(data)
            size += len(data)
            if size > limit:
                return b"".join(parts)[:limit].decode(errors="replace"), True
        return b"".join(parts).decode(errors="replace"), False

    def blame(self, commit: str, path: str, limit: int) -> Blame:
        """Who last changed each line of ``path`` (``git blame --porcelain``).

        :raises TooLarge: past ``limit`` bytes of porcelain output.
        """
        out = self.run("blame", "--porcelain", commit, "--", path, limit=limit)
        lines: list[BlameLine] = []
        commits: dict[str, Commit] = {}
        info: dict[str, dict[str, str]] = {}
        current = ""
        number = 0
        for raw in out.decode(errors="replace").split("\n"):
            if raw.startswith("\t"):
                lines.append(BlameLine(number, current, raw[1:]))
                continue
            parts = raw.split(" ")
            if len(parts) >= 3 and len(parts[0]) == 40 and parts[1].isdigit():
                current, number = parts[0], int(parts[2])
                info.setdefault(current, {})
            elif current and parts and parts[0]:
                info[current][parts[0]] = raw.partition(" ")[2]
        for cid, fields in info.items():
            commits[cid] = Commit(
                cid,
                (),
                fields.get("author", ""),
                fields.get("author-mail", "").strip("<>"),
                _utc(fields.get("author-time", "0")),
                fields.get("committer", ""),
                _utc(fields.get("committer-time", "0")),
                fields.get("summary", ""),
            )
        return Blame(lines, commits)
