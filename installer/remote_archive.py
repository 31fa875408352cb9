"""The plumbing of ``srht-install backup`` and ``restore``: commands on the
site's hosts over SSH, streamed both ways, and the backup archive format.

Hosts are reached exactly as the deploy reaches them (``[deploy] hosts``,
``ssh-key``, ``ssh-known-hosts``, ``ssh-host-key-checking``), with the
OpenSSH client, through :func:`srht_installer.hosts.ssh_argv`; a user
other than root runs every command through ``sudo -n`` (except on a
backup destination outside the site, whose ordinary account runs them
itself: ``Remote(..., sudo=False)``).
Commands never carry a secret: the databases are dumped as the ``postgres``
superuser over its local socket (peer authentication), so no password is
needed at all.

The archive is an uncompressed tar (its big parts are compressed already:
``pg_dump -Fc`` output and gzipped tars of the data folders). Parts are
streamed from SSH straight into it, a chunk at a time: a part's size is not
known until it ends, so its tar header is written first and rewritten in
place once the part is complete (the archive is a regular file, and a GNU
header of a short name keeps its length whatever the size). Nothing is held
in memory and nothing is spooled to a second file.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from srht_core.schema import SshTarget

from .hosts import SshSettings, ssh_argv, ssh_settings

__all__ = ["ArchiveError", "ArchiveReader", "ArchiveWriter", "Remote", "RemoteError", "remotes"]

CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


class RemoteError(Exception):
    """A command on a host failed; the message says where, what and why."""


class ArchiveError(Exception):
    """The archive cannot be written or read as a backup."""


# -- hosts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One host of the site, reached over SSH as the deploy reaches it
    (through :mod:`srht_installer.hosts`, which the rest of the installer
    uses too)."""

    name: str
    target: SshTarget
    settings: SshSettings
    #: False for a host outside the site: commands run as the SSH user.
    sudo: bool = True

    def argv(self, command: str) -> list[str]:
        """The ``ssh`` command line running ``command`` (a shell line) as
        root, or as the SSH user without ``sudo``."""
        return ssh_argv(self.settings, self.target, ["sh", "-c", command], sudo=self.sudo)

    @property
    def where(self) -> str:
        target = self.target
        return f"{self.name} ({target.user}@{target.address}:{target.port})"

    def _failed(self, what: str, code: int, stderr: str) -> RemoteError:
        reason = stderr.strip()[-1500:] or "no message"
        if code == 255 and "host key verification failed" in reason.lower():
            # ssh's warning is a banner of many lines: keep what it found.
            sent = re.search(r"SHA256:[A-Za-z0-9+/=]+", reason)
            found = f"it sent {sent[0]}" if sent else reason.splitlines()[-1]
            return RemoteError(
                f"could not reach {self.where} over SSH to {what}: its host key is not the "
                f"one expected ({found}); nothing was written there. If its key changed "
                "on purpose, put the new one in the config (an off-site backup destination's "
                "in [backup] destination-host-key) and deploy again; if not, something else "
                "answers at that address"
            )
        if code == 255:
            return RemoteError(f"could not reach {self.where} over SSH to {what}: {reason}")
        return RemoteError(f"on {self.where}, {what} failed (exit {code}): {reason}")

    def run(
        self,
        command: str,
        what: str,
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command``; raise :class:`RemoteError` naming ``what`` if it fails."""
        result = subprocess.run(
            self.argv(command),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check and result.returncode != 0:
            raise self._failed(what, result.returncode, result.stderr)
        return result

    def read(self, command: str, what: str, sink: Callable[[bytes], None]) -> None:
        """Run ``command`` and hand its standard output to ``sink``, a chunk
        at a time."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                self.argv(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
            assert process.stdout is not None
            try:
                while chunk := process.stdout.read(CHUNK):
                    sink(chunk)
            finally:
                process.stdout.close()
                code = process.wait()
            if code != 0:
                errors.seek(0)
                raise self._failed(what, code, errors.read().decode(errors="replace"))

    def write(self, command: str, what: str, chunks: Iterable[bytes]) -> str:
        """Run ``command`` with ``chunks`` as its standard input; returns its
        standard output (expected to be small)."""
        with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as output:
            process = subprocess.Popen(
                self.argv(command), stdin=subprocess.PIPE, stdout=output, stderr=errors
            )
            assert process.stdin is not None
            try:
                for chunk in chunks:
                    process.stdin.write(chunk)
                process.stdin.close()
            except BrokenPipeError:
                pass  # the command stopped reading: its exit code says why
            code = process.wait()
            errors.seek(0)
            output.seek(0)
            if code != 0:
                raise self._failed(what, code, errors.read().decode(errors="replace"))
            return output.read().decode(errors="replace")


def remotes(site: Any) -> dict[str, Remote]:
    """Every host of ``site`` (an :class:`srht_deploy.Site`), by name."""
    settings = ssh_settings(site.config.path)
    return {name: Remote(name, target, settings) for name, target in settings.targets.items()}


# -- the archive -------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """A part as it went into the archive."""

    name: str
    size: int
    sha256: str


class ArchiveWriter:
    """A tar archive written to ``path`` + ``.partial`` (mode 0600 from the
    start: it holds the site's secrets) and renamed to ``path`` only when
    complete, so a file of the final name is always a whole backup."""

    def __init__(self, path: Path):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        try:
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ArchiveError(
                f"{self.partial} exists: another backup is being written "
                "there, or one was interrupted (remove it)"
            ) from None
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._names: set[str] = set()

    def add(self, name: str, fill: Callable[[Callable[[bytes], None]], None]) -> Written:
        """Add a part named ``name`` whose bytes ``fill`` passes to the
        callback it is given; returns its size and SHA-256."""
        if len(name.encode()) >= 100 or name in self._names:
            raise ArchiveError(f"bad or repeated part name {name!r}")
        self._names.add(name)
        info = tarfile.TarInfo(name)
        info.mode, info.mtime, info.type = 0o600, int(time.time()), tarfile.REGTYPE
        start = self._file.tell()
        self._file.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        digest = hashlib.sha256()
        size = 0

        def sink(chunk: bytes) -> None:
            nonlocal size
            digest.update(chunk)
            size += len(chunk)
            self._file.write(chunk)

        fill(sink)
        self._file.write(b"\0" * (-size % _BLOCK))
        end = self._file.tell()
        info.size = size
        header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        assert len(header) == _BLOCK
        self._file.seek(start)
        self._file.write(header)
        self._file.seek(end)
        return Written(name, size, digest.hexdigest())

    def add_bytes(self, name: str, data: bytes) -> Written:
        return self.add(name, lambda sink: sink(data))

    def commit(self) -> Path:
        """End the archive, flush it to disk and give it its final name."""
        self._file.write(b"\0" * (2 * _BLOCK))
        self._file.write(b"\0" * (-self._file.tell() % _RECORD))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Remove the unfinished archive."""
        if not self._file.closed:
            self._file.close()
        self.partial.unlink(missing_ok=True)


class ArchiveReader:
    """A backup archive opened for reading (parts are streamed, never loaded
    whole)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as error:
            raise ArchiveError(
                f"{path} is not a readable backup archive (a tar file): {error}"
            ) from None
        self.members = {m.name: m for m in self._tar.getmembers() if m.isfile()}

    def read_bytes(self, name: str, limit: int = 16 * 1024 * 1024) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(
                f"{self.path} has no {name}: it is not a backup made by "
                "`srht-install backup`, or it is cut short"
            )
        if member.size > limit:
            raise ArchiveError(f"{name} in {self.path} is implausibly large")
        handle = self._tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def chunks(self, name: str) -> Iterator[bytes]:
        handle = self._tar.extractfile(self.members[name])
        assert handle is not None
        while chunk := handle.read(CHUNK):
            yield chunk

    def digest(self, name: str) -> tuple[int, str]:
        """Size and SHA-256 of a part, read through."""
        digest, size = hashlib.sha256(), 0
        for chunk in self.chunks(name):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def close(self) -> None:
        self._tar.close()
