"""A runner's images: root file systems, built once and kept under
``RUNNER-DIR/images``, then used read-only as the lower layer of every
job's overlay.

An image is built with ``mmdebstrap`` (a Debian suite and packages, through
``[builds] package-proxy`` when there is one) or unpacked from a tarball,
then handed to the jobs' user range: ``systemd-nspawn
--private-users-ownership=chown`` shifts every file's owner by ``[builds]
uid-base``, so root in a job owns the image's files as root does on a
normal system, while on the runner host it is an unprivileged user. Each
image is kept by the hash of its recipe (:meth:`Image.recipe`); building it
again (after ``[builds] image-refresh``, for security updates) makes a new
tree beside the old one, which goes when no job uses it any more.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..images import Image

__all__ = ["ImageStore"]

log = logging.getLogger("srht.builds.runner.images")

#: apt options for builds: a hung download fails instead of waiting forever.
APT_OPTIONS = (
    'Acquire::http::Timeout "30";',
    'Acquire::Retries "3";',
)
READY = ".srht-ready"


def _slug(name: str) -> str:
    return name.replace("/", "-")


class ImageStore:
    """The images of one runner directory.

    :param root: ``RUNNER-DIR/images``.
    :param uid_base: the first host user id of the jobs' range.
    :param mirror: the Debian archive suites are built from.
    :param proxy: an apt proxy to build through, or ``None``.
    :param refresh: seconds after which an image is built again.
    """

    def __init__(self, root: Path, uid_base: int, mirror: str, proxy: str | None, refresh: float):
        self.root = root
        self.uid_base = uid_base
        self.mirror = mirror
        self.proxy = proxy
        self.refresh = refresh
        self.root.mkdir(parents=True, exist_ok=True)

    def _tree(self, image: Image) -> Path:
        return self.root / f"{_slug(image.name)}-{image.recipe(self.mirror)}"

    def current(self, image: Image) -> Path | None:
        """The newest ready tree of ``image``, if any."""
        trees = sorted(
            (p for p in self.root.glob(f"{self._tree(image).name}*") if (p / READY).exists()),
            key=lambda p: (p / READY).stat().st_mtime,
        )
        return trees[-1] if trees else None

    def stale(self, image: Image) -> bool:
        tree = self.current(image)
        return tree is None or time.time() - (tree / READY).stat().st_mtime > self.refresh

    def ensure(self, image: Image, log_line: Callable[[str], None] = log.info) -> Path:
        """A ready tree of ``image``, built first when there is none or it
        is older than the refresh period."""
        with open(self.root / f".{_slug(image.name)}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.stale(image):
                tree = self.current(image)
                assert tree is not None
                return tree
            base = self._tree(image)
            target = base.with_name(f"{base.name}.{int(time.time())}")
            work = target.with_name(target.name + ".part")
            shutil.rmtree(work, ignore_errors=True)
            log_line(f"building image {image.name} in {target}")
            started = time.monotonic()
            try:
                if image.tarball:
                    self._unpack(image.tarball, work)
                else:
                    self._debootstrap(image, work)
                self._prepare(work)
                self._shift(work)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            (work / READY).write_text(image.name + "\n")
            work.rename(target)
            log_line(f"image {image.name} ready in {time.monotonic() - started:.0f} s")
            return target

    def prune(self, image: Image, in_use: set[Path]) -> None:
        """Remove ``image``'s older trees that no running job uses."""
        newest = self.current(image)
        for tree in self.root.glob(f"{_slug(image.name)}-*"):
            if tree == newest or tree in in_use or tree.name.endswith(".part"):
                continue
            shutil.rmtree(tree, ignore_errors=True)

    def _unpack(self, tarball: str, work: Path) -> None:
        work.mkdir(parents=True)
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(work), "-xf", tarball],
            check=True,
            capture_output=True,
            timeout=900,
        )

    def _debootstrap(self, image: Image, work: Path) -> None:
        options = list(APT_OPTIONS)
        if self.proxy:
            options.append(f'Acquire::http::Proxy "{self.proxy}";')
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--format=directory",
            f"--include={','.join(image.packages)}",
            *(f"--aptopt={option}" for option in options),
            # Jobs' apt goes through the mirror proxy (or nothing): the
            # build's proxy setting is not theirs.
            '--customize-hook=rm -f "$1"/etc/apt/apt.conf.d/99mmdebstrap',
            str(image.suite),
            str(work),
            f"deb {self.mirror} {image.suite} main",
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=1800,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mmdebstrap failed building {image.name}: {result.stderr[-2000:]}")

    def _prepare(self, tree: Path) -> None:
        """What every job's root needs: mount points for the job's files,
        no machine id of the image's own."""
        for folder in ("srht/in", "srht/out", "srht/src"):
            (tree / folder).mkdir(parents=True, exist_ok=True)
        machine_id = tree / "etc/machine-id"
        if machine_id.exists():
            machine_id.write_text("")
        (tree / "etc/hostname").write_text("build\n")

    def _shift(self, tree: Path) -> None:
        """Give the tree to the jobs' user range (nspawn shifts every owner)."""
        script = (
            "mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && "
            "exec systemd-nspawn -q --register=no --keep-unit --private-network "
            f"--private-users={self.uid_base}:65536 --private-users-ownership=chown "
            f"-D {tree} /bin/true"
        )
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
            env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
        )
        if result.returncode != 0 or tree.stat().st_uid != self.uid_base:
            raise RuntimeError(
                f"could not give {tree} to the jobs' users: {result.stderr.strip()[-2000:]}"
            )
