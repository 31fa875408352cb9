"""The wheelhouse: every wheel the hosts need, built on the deploying
machine and uploaded over SSH, so hosts never reach a package index
(air-gapped servers, and the test hosts, have none).

It is made of one *part* per distribution of the site: ``srht`` itself and
each third-party distribution providing a service. A part holds the
distribution's wheel (built from its source folder when it is installed
from one, an editable or local install, or fetched at the installed version
otherwise) and its dependencies as wheels for the hosts' Python (Debian
12's 3.11) and architecture, leaving out the site's other distributions.
Parts are cached under ``~/.cache/srht/wheelhouse/parts/NAME-KEY`` where
KEY hashes the sources and versions that went into them, so adding a
service builds only its own part.

Wheels are content-addressed (SHA-256): a host records which wheels its
virtualenv holds, and :meth:`Wheelhouse.closure` says which it should
hold (the distributions it runs and their dependencies, resolved here for
the hosts' Python). The deploy uploads and installs only the difference,
and a service's restart fingerprint covers only its own closure: adding a
service to a host installs its wheels next to the others and restarts
nothing else. Wheels are built reproducibly, so the same sources give the
same hashes and a re-run uploads nothing.
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
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

__all__ = ["Wheelhouse", "WheelhouseError", "build_wheelhouse", "load_wheelhouse", "source_of"]

#: The hosts' Python and platforms: Debian 12 (glibc 2.36) on this
#: machine's architecture takes wheels for any manylinux up to 2.36 (named
#: one by one: pip does not widen a --platform to the older ones).
TARGET_PYTHON = "3.11.2"  # exact: some requirements' markers compare the full version
TARGET_PLATFORMS = (
    *(f"manylinux_2_{minor}_{platform.machine()}" for minor in range(36, 16, -1)),
    f"manylinux2014_{platform.machine()}",
)
#: Bumped when the recipe below changes what a part holds.
RECIPE = 2
#: The distribution every site has; it never depends on a service's.
CORE = "srht"
#: Fixed timestamps make built wheels and upload tarballs byte-for-byte reproducible.
EPOCH = 315532800
#: Upload tarballs older than this are removed when a new one is made.
UPLOAD_MAX_AGE = 24 * 3600
_IGNORED = {
    ".git",
    ".hg",
    "build",
    "dist",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
}


#: One build at a time in this process (pyinfra prepares hosts concurrently).
_BUILDING = threading.Lock()


class WheelhouseError(Exception):
    """The wheelhouse could not be built or resolved; the message says why."""


@dataclass(frozen=True)
class Wheel:
    """One wheel file of the wheelhouse, with what its metadata says."""

    path: Path
    sha256: str
    project: str
    version: Version
    requires: tuple[Requirement, ...]

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Wheelhouse:
    """A built wheelhouse: the wheels of every distribution of the site.

    :param folder: where its manifest is (``srht deploy wheelhouse`` prints
        it; ``$SRHT_DEPLOY_WHEELHOUSE`` names it for later runs).
    :param id: a hash of every wheel's name and content (16 hex digits).
    :param requirements: the distributions it was built for (the rest are
        their dependencies).
    """

    folder: Path
    id: str
    requirements: tuple[str, ...]
    wheels: tuple[Wheel, ...] = field(repr=False)
    _closures: dict[tuple[str, ...], dict[str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def closure(self, distributions: Iterable[str]) -> dict[str, str]:
        """``{wheel file name: sha256}`` of what a virtualenv running
        ``distributions`` holds: them and their dependencies, with markers
        evaluated for the hosts' Python, one version per project (the
        highest that meets every requirement on it).

        :raises WheelhouseError: naming a requirement no wheel meets.
        """
        key = tuple(sorted({canonicalize_name(d) for d in distributions}))
        if key not in self._closures:
            self._closures[key] = self._resolve(key)
        return dict(self._closures[key])

    def _resolve(self, distributions: tuple[str, ...]) -> dict[str, str]:
        by_project: dict[str, list[Wheel]] = {}
        for wheel in self.wheels:
            by_project.setdefault(wheel.project, []).append(wheel)
        specifiers: dict[str, SpecifierSet] = {}
        extras: dict[str, set[str]] = {}
        wanted_by: dict[str, str] = {}
        for name in distributions:
            project = str(canonicalize_name(name))
            specifiers.setdefault(project, SpecifierSet())
            extras.setdefault(project, set())
            wanted_by.setdefault(project, "the site")
        while True:
            chosen: dict[str, Wheel] = {}
            for project, specifier in specifiers.items():
                fits = [
                    w
                    for w in by_project.get(project, ())
                    if specifier.contains(w.version, prereleases=True)
                ]
                if not fits:
                    raise WheelhouseError(
                        f"no wheel of {project}{specifier} (wanted by {wanted_by[project]}) in "
                        f"the wheelhouse {self.folder}; rebuild it (delete the folder)"
                    )
                chosen[project] = max(fits, key=lambda w: w.version)
            grown = False
            for project, wheel in chosen.items():
                for requirement in wheel.requires:
                    if requirement.marker is not None and not any(
                        requirement.marker.evaluate({**TARGET_ENVIRONMENT, "extra": extra})
                        for extra in {"", *extras[project]}
                    ):
                        continue
                    other = str(canonicalize_name(requirement.name))
                    before = (str(specifiers.get(other)), set(extras.get(other, ())))
                    specifiers[other] = (
                        specifiers.get(other, SpecifierSet()) & requirement.specifier
                    )
                    extras.setdefault(other, set()).update(requirement.extras)
                    wanted_by.setdefault(other, f"{wheel.project} {wheel.version}")
                    grown |= before != (str(specifiers[other]), extras[other])
            if not grown:
                return {
                    w.filename: w.sha256 for w in sorted(chosen.values(), key=lambda w: w.filename)
                }

    def fingerprint(self, distributions: Iterable[str]) -> str:
        """A hash of :meth:`closure`: what a restart of a service of
        ``distributions`` applies of the software."""
        text = "".join(f"{name} {sha}\n" for name, sha in self.closure(distributions).items())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def upload(self, filenames: Iterable[str]) -> Path:
        """A tar of the wheels ``filenames`` (reproducible, cached by its
        contents), to upload to a host that lacks them."""
        paths = {w.filename: w.path for w in self.wheels}
        names = sorted(set(filenames))
        key = hashlib.sha256("\0".join(f"{n}:{self._sha(n)}" for n in names).encode()).hexdigest()[
            :16
        ]
        folder = self.folder / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        tarball = folder / f"{key}.tar"
        if tarball.exists():
            os.utime(tarball)
            return tarball
        for old in folder.glob("*.tar"):
            if old.stat().st_mtime < time.time() - UPLOAD_MAX_AGE:
                old.unlink(missing_ok=True)
        partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.{threading.get_ident()}")
        with tarfile.open(partial, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name in names:
                data = paths[name].read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
                tar.addfile(info, io.BytesIO(data))
        partial.replace(tarball)
        return tarball

    def _sha(self, filename: str) -> str:
        return next(w.sha256 for w in self.wheels if w.filename == filename)


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


def _excluded(name: str, site: list[str]) -> list[str]:
    """The site's distributions a part leaves out of its dependencies (the
    core needs none of the services'; a service's part leaves out the
    core and the other services, which have parts of their own)."""
    return [] if name == CORE else sorted(d for d in site if d != name)


def _part_key(name: str, excluded: list[str]) -> str:
    digest = hashlib.sha256(
        json.dumps(
            {
                "recipe": RECIPE,
                "python": TARGET_PYTHON,
                "platforms": TARGET_PLATFORMS,
                "excluded": excluded,
            }
        ).encode()
    )
    digest.update(f"{name}=={installed_version(name)}\0".encode())
    source = source_of(name)
    if source is not None:
        _tree_digest(source, digest)
    return digest.hexdigest()[:16]


def build_wheelhouse(
    distributions: Iterable[str], *, cache: Path | None = None, log: Path | None = None
) -> Wheelhouse:
    """The wheelhouse for ``distributions``, each part built unless cached.

    :raises WheelhouseError: when a build or download fails (the output of
        pip is in ``log`` and in the message's tail).
    """
    names = sorted({str(canonicalize_name(d)) for d in distributions})
    root = cache or cache_root()
    (root / "parts").mkdir(parents=True, exist_ok=True)
    parts = []
    with _BUILDING, open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in names:
            excluded = _excluded(name, names)
            folder = root / "parts" / f"{name}-{_part_key(name, excluded)}"
            if not (folder / "part.json").exists():
                _build_part(folder, name, excluded, log)
            parts.append(folder)
        wheels = _read_parts(parts)
        ident = hashlib.sha256(
            "".join(f"{w.filename} {w.sha256}\n" for w in wheels).encode()
        ).hexdigest()[:16]
        folder = root / "sites" / ident
        if not (folder / "wheelhouse.json").exists():
            folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps(
                {"id": ident, "requirements": names, "parts": [str(p) for p in parts]}, indent=1
            )
            (folder / "wheelhouse.json.part").write_text(text)
            (folder / "wheelhouse.json.part").replace(folder / "wheelhouse.json")
    return Wheelhouse(folder, ident, tuple(names), wheels)


def load_wheelhouse(folder: Path) -> Wheelhouse:
    """A wheelhouse built earlier, by its folder."""
    try:
        info = json.loads((folder / "wheelhouse.json").read_text())
        wheels = _read_parts([Path(p) for p in info["parts"]])
    except (OSError, ValueError, KeyError) as error:
        raise WheelhouseError(
            f"{folder} is not a wheelhouse built by this version of the "
            f"deploy ({type(error).__name__}: {error}); unset "
            "$SRHT_DEPLOY_WHEELHOUSE or build it again"
        ) from None
    return Wheelhouse(folder, info["id"], tuple(info["requirements"]), wheels)


def _read_parts(parts: list[Path]) -> tuple[Wheel, ...]:
    found: dict[str, Wheel] = {}
    for part in parts:
        info = json.loads((part / "part.json").read_text())
        for filename, sha in info["wheels"].items():
            if filename in found:
                continue  # the same wheel in two parts (both built it): one copy will do
            project, version, _build, _tags = parse_wheel_filename(filename)
            path = part / "wheels" / filename
            found[filename] = Wheel(
                path, sha, str(project), version, tuple(_wheel_requirements(path)[1])
            )
    return tuple(sorted(found.values(), key=lambda w: w.filename))


def _build_part(folder: Path, name: str, excluded: list[str], log: Path | None) -> None:
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    wheels = partial / "wheels"
    wheels.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="srht-wheels-") as tmp:
        source = source_of(name)
        if source is not None:
            # A copy, so that building writes nothing into the source tree.
            copy = Path(tmp) / name
            shutil.copytree(source, copy, ignore=_ignore)
            _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(copy)], log)
        else:
            _pip(
                [
                    "download",
                    "--no-deps",
                    "--dest",
                    str(wheels),
                    *_target(),
                    f"{name}=={installed_version(name)}",
                ],
                log,
            )
    ours = {name, *excluded}
    requirements = _dependencies(wheels, ours)
    if requirements:
        _pip(["download", "--dest", str(wheels), *_target(), *requirements], log)
    # pip evaluates dependencies' markers for the Python running it, not for
    # the target: add what the hosts' Python needs besides (a few rounds,
    # as an addition may need more).
    for _round in range(5):
        missing = _missing_for_target(wheels, ours)
        if not missing:
            break
        _pip(["download", "--dest", str(wheels), *_target(), *missing], log)
    # pip resolved the dependencies with the site's other distributions
    # left out; anything it fetched of them anyway is not this part's.
    for wheel in wheels.glob("*.whl"):
        if canonicalize_name(parse_wheel_filename(wheel.name)[0]) in excluded:
            wheel.unlink()
    hashes = {
        w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in sorted(wheels.glob("*.whl"))
    }
    (partial / "part.json").write_text(json.dumps({"name": name, "wheels": hashes}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _IGNORED or n.endswith(".egg-info")}


def _target() -> list[str]:
    platforms = [arg for name in TARGET_PLATFORMS for arg in ("--platform", name)]
    return [
        "--only-binary=:all:",
        *platforms,
        "--python-version",
        TARGET_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        "cp" + "".join(TARGET_PYTHON.split(".")[:2]),
    ]


def _dependencies(wheels: Path, ours: set[str]) -> list[str]:
    """The requirements of the built wheels that are not the site's own."""
    out: set[str] = set()
    for wheel in sorted(wheels.glob("*.whl")):
        for requirement in _wheel_requirements(wheel)[1]:
            if canonicalize_name(requirement.name) in ours:
                continue
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue
            out.add(str(requirement))
    return sorted(out)


#: The hosts' environment, for evaluating requirement markers.
TARGET_ENVIRONMENT = {
    "python_version": ".".join(TARGET_PYTHON.split(".")[:2]),
    "python_full_version": TARGET_PYTHON,
    "implementation_name": "cpython",
    "implementation_version": TARGET_PYTHON,
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
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
        elif not line.strip():
            break  # the end of the headers; the description follows
    return dist, requirements


def _missing_for_target(wheels: Path, ours: set[str]) -> list[str]:
    """Requirements the wheels have on the hosts' Python that no wheel (and
    no other distribution of the site) meets."""
    found = {dist: reqs for dist, reqs in map(_wheel_requirements, sorted(wheels.glob("*.whl")))}
    extras: dict[str, set[str]] = {}
    for requirements in found.values():
        for requirement in requirements:
            extras.setdefault(canonicalize_name(requirement.name), set()).update(requirement.extras)
    missing: set[str] = set()
    for dist, requirements in found.items():
        for requirement in requirements:
            if canonicalize_name(requirement.name) in found.keys() | ours:
                continue
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({**TARGET_ENVIRONMENT, "extra": extra})
                for extra in {"", *extras.get(dist, set())}
            )
            if wanted:
                missing.add(str(requirement).split(";")[0].strip())
    return sorted(missing)


def _pip(args: list[str], log: Path | None) -> None:
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(EPOCH),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )
    if log is not None:
        with open(log, "a") as out:
            out.write(f"$ pip {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise WheelhouseError(f"pip {args[0]} failed (exit {result.returncode}):\n{tail}")
