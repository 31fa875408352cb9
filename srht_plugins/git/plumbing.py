"""Reading repositories through the git CLI, with bounded memory.

Every read runs a git plumbing command (``rev-parse``, ``ls-tree``,
``cat-file``, ``log``, ``diff-tree``, ``blame``, ``for-each-ref``) on the
bare repository and reads at most a fixed number of bytes of its output:
a page never holds more of a repository in memory than it can show, and a
raw file is streamed in chunks however large it is. A command that runs
longer than :data:`TIMEOUT` is killed.

Revisions and paths come from URLs, so they are passed after
``--end-of-options`` or ``--`` and never read as options; paths are taken
literally (no pathspec magic such as ``:(glob)``), and a path with an
empty, ``.`` or ``..`` part names nothing, as no tree holds such an entry
(git would otherwise resolve it against the folder it runs in).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
    """A bare repository on disk, read with the git CLI."""

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

    # -- refs -------------------------------------------------------------------

    def resolve(self, revision: str) -> str | None:
        """The commit id ``revision`` (a branch, tag or id) names, or ``None``."""
        if not revision or revision.startswith("-") or "\0" in revision:
            return None
        out = self.run(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            revision + "^{commit}",
            ok=(0, 1, 128),
        )
        commit = out.decode().strip()
        return commit if len(commit) == 40 else None

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
        return branch, self.resolve("HEAD") if branch else None

    def refs(self, limit: int = 1000) -> list[Ref]:
        """Branches, then tags, most recent first."""
        fmt = (
            _US.join(
                [
                    "%(refname)",
                    "%(objectname)",
                    "%(*objectname)",
                    "%(creatordate:unix)",
                    "%(contents:subject)",
                ]
            )
            + _RS
        )
        out = self.run(
            "for-each-ref",
            f"--count={limit}",
            "--sort=-creatordate",
            f"--format={fmt}",
            "refs/heads",
            "refs/tags",
        )
        refs = []
        for record in out.decode(errors="replace").split(_RS):
            fields = record.strip("\n").split(_US)
            if len(fields) != 5:
                continue
            name, target, peeled, stamp, subject = fields
            kind = "branch" if name.startswith("refs/heads/") else "tag"
            short = name.removeprefix("refs/heads/").removeprefix("refs/tags/")
            refs.append(Ref(short, kind, peeled or target, _utc(stamp) if stamp else None, subject))
        return refs

    def branches(self) -> list[str]:
        out = self.run("for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads")
        return [line for line in out.decode(errors="replace").splitlines() if line]

    def is_empty(self) -> bool:
        return not self.run("for-each-ref", "--count=1", "--format=x").strip()

    # -- trees and blobs ------------------------------------------------------------

    def entry(self, commit: str, path: str) -> Entry | None:
        """The entry at ``path`` in ``commit`` (the root tree for ``""``),
        or ``None`` when there is none, or ``path`` cannot name one."""
        path = path.strip("/")
        if not is_tree_path(path):
            return None
        if not path:
            tree = (
                self.run("rev-parse", "--verify", "--quiet", "--end-of-options", commit + "^{tree}")
                .decode()
                .strip()
            )
            return Entry("040000", "tree", tree, None, "")
        entries = self._ls_tree(commit, "--", path)
        return entries[0] if entries and entries[0].name == path else None

    def tree(self, oid: str) -> list[Entry]:
        """The entries of the tree ``oid``: folders first, then by name."""
        entries = self._ls_tree(oid)
        return sorted(entries, key=lambda e: (not e.is_tree, e.name.lower()))

    def _ls_tree(self, *args: str) -> list[Entry]:
        out = self.run("ls-tree", "-z", "--long", "--full-tree", *args)
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split(None, 3)
            entries.append(
                Entry(
                    mode,
                    kind,
                    oid,
                    int(size) if size.strip().isdigit() else None,
                    name.decode(errors="surrogateescape"),
                )
            )
        return entries

    def blob_head(self, oid: str, limit: int) -> bytes:
        """The first ``limit`` bytes of a blob."""
        return self.run("cat-file", "blob", oid, limit=limit, truncate=True)

    def blob_stream(self, oid: str) -> Generator[bytes, None, None]:
        """A blob's content in chunks, however large."""
        return self.stream("cat-file", "blob", oid)

    def readme(self, commit: str) -> Entry | None:
        """The README at the root of ``commit``: Markdown preferred."""
        root = self.entry(commit, "")
        if root is None:
            return None
        found: dict[str, Entry] = {}
        for entry in self._ls_tree(root.oid):
            if entry.type == "blob" and entry.name.lower().startswith("readme"):
                found[entry.name.lower()] = entry
        for name in ("readme.md", "readme.markdown", "readme", "readme.txt", "readme.rst"):
            if name in found:
                return found[name]
        return found[min(found)] if found else None

    # -- history --------------------------------------------------------------------

    _LOG_FORMAT = _US.join(["%H", "%P", "%an", "%ae", "%at", "%cn", "%ct", "%s", "%b"]) + _RS

    def _commits(self, out: bytes) -> list[Commit]:
        commits = []
        for record in out.decode(errors="replace").split(_RS):
            fields = record.lstrip("\n").split(_US)
            if len(fields) != 9:
                continue
            cid, parents, an, ae, at, cn, ct, subject, body = fields
            commits.append(
                Commit(
                    cid,
                    tuple(parents.split()),
                    an,
                    ae,
                    _utc(at),
                    cn,
                    _utc(ct),
                    subject,
                    body.strip(),
                )
            )
        return commits

    def log(self, commit: str, count: int, path: str = "") -> list[Commit]:
        """Up to ``count`` commits reachable from ``commit``, newest first,
        touching ``path`` if given."""
        args = [
            "log",
            f"--format={self._LOG_FORMAT}",
            f"--max-count={count}",
            "--end-of-options",
            commit,
        ]
        if path:
            args += ["--", path]
        return self._commits(self.run(*args))

    def commit(self, revision: str) -> Commit | None:
        found = self.resolve(revision)
        if found is None:
            return None
        commits = self._commits(
            self.run(
                "log", f"--format={self._LOG_FORMAT}", "--max-count=1", "--end-of-options", found
            )
        )
        return commits[0] if commits else None

    def diff(self, commit: str, limit: int) -> tuple[str, bool]:
        """The patch of ``commit`` against its first parent (or the empty
        tree), at most ``limit`` bytes; and whether it was cut short."""
        out = self.run(
            "diff-tree",
            "-p",
            "-M",
            "--root",
            "-m",
            "--first-parent",
            "--no-commit-id",
            "--end-of-options",
            commit,
            limit=limit + 1,
            truncate=True,
        )
        truncated = len(out) > limit
        return out[:limit].decode(errors="replace"), truncated

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
