"""The wheelhouse: every wheel the hosts need, built on the deploying
machine and uploaded as one file, so hosts never reach a package index
(air-gapped servers, and the test hosts, have none).

It holds the distributions that provide the site's services (``srht``
itself and any third-party service), built from their source folder when
they are installed from one (an editable or local install) or fetched at
the installed version otherwise, and all their dependencies as wheels for
the hosts' Python (Debian 12's 3.11) and architecture.

A wheelhouse is cached under ``~/.cache/srht/wheelhouse/KEY`` where KEY
hashes the sources and versions that went into it; its *id* is the hash
of its tarball, which is built reproducibly, so the same sources give the
same id and a re-run uploads and installs nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["Wheelhouse", "WheelhouseError", "build_wheelhouse", "load_wheelhouse", "source_of"]

#: The hosts' Python and platforms: Debian 12 (glibc 2.36) on this
#: machine's architecture takes wheels for any manylinux up to 2.36 (named
#: one by one: pip does not widen a --platform to the older ones).
TARGET_PYTHON = "3.11.2"  # exact: some requirements' markers compare the full version
TARGET_PLATFORMS = (
    *(f"manylinux_2_{minor}_{platform.machine()}" for minor in range(36, 16, -1)),
    f"manylinux2014_{platform.machine()}",
)
#: Bumped when the recipe below changes what a wheelhouse holds.
RECIPE = 1
#: Fixed timestamps make built wheels and the tarball byte-for-byte reproducible.
EPOCH = 315532800
_IGNORED = {".git", ".hg", "build", "dist", "__pycache__", ".venv", "venv", "node_modules",
            ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox"}


#: One build at a time in this process (pyinfra prepares hosts concurrently).
_BUILDING = threading.Lock()


class WheelhouseError(Exception):
    """The wheelhouse could not be built; the message says why."""


@dataclass(frozen=True)
class Wheelhouse:
    """A built wheelhouse.

    :param tarball: one uncompressed tar of every wheel.
    :param id: the tarball's hash (16 hex digits), naming it on the hosts.
    :param requirements: the distributions to install (the rest are their
        dependencies).
    """

    tarball: Path
    id: str
    requirements: tuple[str, ...]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "srht" / "wheelhouse"


def source_of(distribution: str) -> Path | None:
    """The folder ``distribution`` was installed from (an editable or local
    install), or ``None`` when it came from an index or a wheel file."""
    wanted = canonicalize_name(distribution)
    for dist in metadata.distributions():
        if canonicalize_name(dist.metadata["Name"] or "") != wanted:
            continue
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        info = json.loads(text)
        url = urlsplit(info.get("url", ""))
        if url.scheme == "file" and "dir_info" in info:
            return Path(unquote(url.path))
    return None


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise WheelhouseError(f"{distribution} is not installed on this machine") from None


def _tree_digest(root: Path, digest: hashlib._Hash) -> None:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(folder, name)
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")


def _key(distributions: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(
        {"recipe": RECIPE, "python": TARGET_PYTHON, "platforms": TARGET_PLATFORMS}).encode())
    for name in distributions:
        digest.update(f"{name}=={installed_version(name)}\0".encode())
        source = source_of(name)
        if source is not None:
            _tree_digest(source, digest)
    return digest.hexdigest()[:16]


def build_wheelhouse(distributions: Iterable[str], *, cache: Path | None = None,
                     log: Path | None = None) -> Wheelhouse:
    """The wheelhouse for ``distributions``, built unless cached.

    :raises WheelhouseError: when a build or download fails (the output of
        pip is in ``log`` and in the message's tail).
    """
    names = sorted({canonicalize_name(d) for d in distributions})
    root = cache or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / _key(names)
    with _BUILDING, open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "wheelhouse.json").exists():
            _build(folder, names, log)
    return load_wheelhouse(folder)


def load_wheelhouse(folder: Path) -> Wheelhouse:
    """A wheelhouse built earlier into ``folder``."""
    info = json.loads((folder / "wheelhouse.json").read_text())
    return Wheelhouse(folder / "wheelhouse.tar", info["id"], tuple(info["requirements"]))


def _build(folder: Path, names: list[str], log: Path | None) -> None:
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    wheels = partial / "wheels"
    wheels.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="srht-wheels-") as tmp:
        for name in names:
            source = source_of(name)
            if source is not None:
                # A copy, so that building writes nothing into the source tree.
                copy = Path(tmp) / name
                shutil.copytree(source, copy, ignore=_ignore)
                _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(copy)], log)
            else:
                _pip(["download", "--no-deps", "--dest", str(wheels), *_target(),
                      f"{name}=={installed_version(name)}"], log)
    requirements = _dependencies(wheels, names)
    if requirements:
        _pip(["download", "--dest", str(wheels), *_target(), *requirements], log)
    # pip evaluates dependencies' markers for the Python running it, not for
    # the target: add what the hosts' Python needs besides (a few rounds,
    # as an addition may need more).
    for _round in range(5):
        missing = _missing_for_target(wheels)
        if not missing:
            break
        _pip(["download", "--dest", str(wheels), *_target(), *missing], log)
    digest = _write_tar(wheels, partial / "wheelhouse.tar")
    shutil.rmtree(wheels)
    (partial / "wheelhouse.json").write_text(json.dumps({"id": digest, "requirements": names}))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _IGNORED or n.endswith(".egg-info")}


def _target() -> list[str]:
    platforms = [arg for name in TARGET_PLATFORMS for arg in ("--platform", name)]
    return ["--only-binary=:all:", *platforms, "--python-version", TARGET_PYTHON,
            "--implementation", "cp", "--abi", "cp" + "".join(TARGET_PYTHON.split(".")[:2])]


def _dependencies(wheels: Path, ours: list[str]) -> list[str]:
    """The requirements of our wheels that are not themselves ours."""
    out: set[str] = set()
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode()
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            if canonicalize_name(requirement.name) in ours:
                continue
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue
            out.add(str(requirement))
    return sorted(out)


#: The hosts' environment, for evaluating requirement markers.
TARGET_ENVIRONMENT = {
    "python_version": ".".join(TARGET_PYTHON.split(".")[:2]),
    "python_full_version": TARGET_PYTHON, "implementation_name": "cpython",
    "implementation_version": TARGET_PYTHON, "platform_python_implementation": "CPython",
    "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": platform.machine(),
}


def _wheel_requirements(wheel: Path) -> tuple[str, list[Requirement]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    dist, requirements = "", []
    for line in text.splitlines():
        if line.startswith("Name:"):
            dist = canonicalize_name(line.split(":", 1)[1].strip())
        elif line.startswith("Requires-Dist:"):
            requirements.append(Requirement(line.split(":", 1)[1].strip()))
    return dist, requirements


def _missing_for_target(wheels: Path) -> list[str]:
    """Requirements the wheels have on the hosts' Python that no wheel meets."""
    found = {dist: reqs for dist, reqs in map(_wheel_requirements, sorted(wheels.glob("*.whl")))}
    extras: dict[str, set[str]] = {}
    for requirements in found.values():
        for requirement in requirements:
            extras.setdefault(canonicalize_name(requirement.name), set()).update(
                requirement.extras)
    missing: set[str] = set()
    for dist, requirements in found.items():
        for requirement in requirements:
            if canonicalize_name(requirement.name) in found:
                continue
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({**TARGET_ENVIRONMENT, "extra": extra})
                for extra in {"", *extras.get(dist, set())})
            if wanted:
                missing.add(str(requirement).split(";")[0].strip())
    return sorted(missing)


def _pip(args: list[str], log: Path | None) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet"], env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=1800)
    if log is not None:
        with open(log, "a") as out:
            out.write(f"$ pip {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise WheelhouseError(f"pip {args[0]} failed (exit {result.returncode}):\n{tail}")


def _write_tar(wheels: Path, tarball: Path) -> str:
    """A tar of the wheels with fixed metadata; returns its id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for wheel in sorted(wheels.glob("*.whl")):
            info = tarfile.TarInfo(wheel.name)
            data = wheel.read_bytes()
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    tarball.write_bytes(data)
    return hashlib.sha256(data).hexdigest()[:16]
