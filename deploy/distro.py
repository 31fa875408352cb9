"""``[srht] install-method = distro``: srht from distribution packages
(``packaging/debian``) instead of a virtualenv.

The hosts get srht-core and one package per service they run, from

- a local apt repository the deploy publishes to them: the ``.deb`` files
  of ``[deploy] apt-packages`` (a folder on the deploying machine), indexed
  here with ``dpkg-scanpackages`` and uploaded to
  ``/var/lib/srht-deploy/apt/<id>/``, used as a ``[trusted=yes] file:``
  source (it came over the deploy's own SSH connection); or
- the repository the user names, ``[deploy] apt-source`` (a whole
  ``deb ...`` line, with its own ``signed-by``).

The packages bring the program (``/usr/bin/srht``), the users, folders and
systemd units; the deploy writes only the config and, per unit, a drop-in
with what depends on the site (ordering after PostgreSQL and Redis, the
state folders it may write to when they are not the packaged defaults).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra.operations import apt, files

from . import operations
from .model import CONFIG_DIR

__all__ = [
    "PROGRAM",
    "STATIC_DIR",
    "dropin",
    "enabled",
    "install",
    "remove",
    "software_id",
    "unit_path",
]

PROGRAM = "/usr/bin/srht"
STATIC_DIR = "/usr/share/srht/static"
REPOSITORY = f"{operations.STATE_DIR}/apt"
SOURCE_FILE = "/etc/apt/sources.list.d/srht.list"
DROPIN = "srht-deploy.conf"
HEADER = "# Written by `srht deploy`; changes made here are overwritten.\n"
#: Packages for the deploying machine, never published to hosts.
ONLY_HERE = ("srht-installer_",)


def enabled(site: Any) -> bool:
    """Whether ``site`` installs srht from distribution packages."""
    return bool(site.config.get("srht", "install-method") == "distro")


@dataclass(frozen=True)
class Repository:
    """A local apt repository built on the deploying machine.

    :param folder: the ``.deb`` files and their ``Packages`` index.
    :param id: a hash of the index (which holds each package's hash).
    """

    folder: Path
    id: str

    @property
    def files(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir())


@lru_cache(maxsize=4)
def local_repository(debs: Path) -> Repository:
    """``debs``'s ``.deb`` files with a ``Packages`` index, in a folder of
    their own (the deploying machine's cache; ``debs`` is not written to).
    The deploying machine's own package (``srht-installer``) is left out:
    no host installs it."""
    found = sorted(deb for deb in debs.glob("*.deb") if not deb.name.startswith(ONLY_HERE))
    if not found:
        raise ValueError(f"[deploy] apt-packages: no .deb files in {debs}")
    if shutil.which("dpkg-scanpackages") is None:
        raise ValueError(
            "install-method = distro with apt-packages needs dpkg-scanpackages "
            "on this machine (apt-get install dpkg-dev)"
        )
    digest = hashlib.sha256()
    for deb in found:
        digest.update(deb.name.encode() + b"\0" + deb.read_bytes())
    key = digest.hexdigest()[:16]
    folder = Path.home() / ".cache" / "srht" / "apt" / key
    if not (folder / "Packages").exists():
        partial = folder.with_name(key + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for deb in found:
            shutil.copy2(deb, partial / deb.name)
        index = subprocess.run(
            ["dpkg-scanpackages", "--multiversion", "."],
            cwd=partial,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        (partial / "Packages").write_text(index.stdout)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    packages = (folder / "Packages").read_bytes()
    return Repository(folder, hashlib.sha256(packages).hexdigest()[:16])


def _source(site: Any) -> tuple[str, Repository | None]:
    """The apt source line and, when the deploy publishes it, the repository."""
    named = site.config.get("deploy", "apt-source")
    if named:
        return str(named), None
    debs = site.config.get("deploy", "apt-packages")
    if not debs:
        raise ValueError(
            "install-method = distro needs [deploy] apt-packages (a folder of "
            ".deb files to publish) or [deploy] apt-source (a repository)"
        )
    repository = local_repository(Path(debs))
    return f"deb [trusted=yes] file:{REPOSITORY}/{repository.id} ./", repository


def software_id(site: Any) -> str:
    """What the hosts run, for restart fingerprints: the published index,
    or the named source (whose upgrades an ``apt-get upgrade`` brings)."""
    line, repository = _source(site)
    return (
        repository.id if repository is not None else hashlib.sha256(line.encode()).hexdigest()[:16]
    )


def install(site: Any, services: list[str]) -> None:
    """The packages of ``services`` (and srht-core), from the site's source."""
    line, repository = _source(site)
    if repository is not None:
        target = f"{REPOSITORY}/{repository.id}"
        for name in repository.files:
            files.put(
                name=f"Publish {name}",
                src=str(repository.folder / name),
                dest=f"{target}/{name}",
                user="root",
                group="root",
                mode="644",
            )
    files.put(
        name="apt source of srht's packages",
        src=StringIO(line + "\n"),
        dest=SOURCE_FILE,
        user="root",
        group="root",
        mode="644",
    )
    packages = sorted(f"srht-{service}" for service in services)
    # Only srht's source is refreshed (the hosts' others were, by the
    # system packages step); earlier published repositories are removed
    # once the new one is installed.
    update = (
        f"apt-get update -qq -o Dir::Etc::sourcelist={SOURCE_FILE} "
        "-o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
    )
    prune = ""
    if repository is not None:
        prune = (
            f" && find {REPOSITORY} -mindepth 1 -maxdepth 1 ! -name {repository.id} "
            "-exec rm -rf {} +"
        )
    operations.converge(
        name="Install srht's packages",
        key="srht-packages",
        fingerprint=hashlib.sha256(
            "\0".join([line, software_id(site), *packages]).encode()
        ).hexdigest()[:16],
        command=(
            f"{update} && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            f"--no-install-recommends -o Dpkg::Options::=--force-confold "
            f"{' '.join(packages)}{prune}"
        ),
    )


def remove(packages: list[str]) -> None:
    """Remove the packages of services the host no longer runs (after their
    units were stopped and their drop-ins removed). ``apt-get remove``, not
    purge: the service's users, config and data stay, as in a virtualenv
    deploy."""
    apt.packages(name=f"Remove {', '.join(packages)}", packages=packages, present=False)


def unit_path(name: str) -> str:
    """Where the deploy's drop-in for the packaged unit ``name`` goes."""
    return f"/etc/systemd/system/{name}.d/{DROPIN}"


def dropin(
    *_args: Any, after: list[str] | None = None, paths: list[str] | None = None, **_kwargs: Any
) -> str:
    """The site's part of a packaged unit (takes :func:`~srht_deploy.render.unit`'s
    arguments; the rest is the package's): ordering after the site's
    PostgreSQL and Redis, and the folders it writes to (added to the
    packaged ``ReadWritePaths``)."""
    lines = [HEADER.rstrip(), "[Unit]"]
    if after:
        lines.append(f"After={' '.join(after)}")
    lines += ["", "[Service]", f"Environment=SRHT_CONFIG={CONFIG_DIR}/config.ini"]
    if paths:
        lines.append(f"ReadWritePaths={' '.join(dict.fromkeys(paths))}")
    return "\n".join(lines) + "\n"
