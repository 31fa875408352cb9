"""The root file system every test host boots from: Debian bookworm built by
``mmdebstrap`` from this machine's own apt sources, cached under
``/var/cache/srht-e2e/`` by a hash of what goes into it.

The cache holds the tarball (``image-KEY.tar.zst``, what a CI cache would
keep) and the unpacked tree (``image-KEY/``) that hosts use read-only as the
lower layer of their overlays. A build takes about a minute; a cached image
costs nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from srht_installer.drill_machines import PACKAGES as DRILL_MACHINE_PACKAGES

#: What a host has before any deploy: enough to boot systemd and be reached
#: by pyinfra over SSH. Everything else is the deploy's job. The same as the
#: machines of a restore drill (``srht-install drill`` on ``[drill]
#: machine-host``), which are throwaway hosts of the same kind.
IMAGE_PACKAGES = DRILL_MACHINE_PACKAGES
SUITE = "bookworm"
#: Bumped when the recipe below changes in a way the package list does not show.
RECIPE = 2

#: apt options for the build and for the hosts: the mirror may be a dated
#: snapshot, and a hung download must fail rather than wait forever.
APT_OPTIONS = (
    'Acquire::Check-Valid-Until "false";',
    'Acquire::Check-Date "false";',
    'Acquire::http::Timeout "30";',
    'Acquire::Retries "3";',
)


def cache_dir() -> Path:
    return Path(os.environ.get("SRHT_E2E_CACHE", "/var/cache/srht-e2e"))


def debian_sources(root: Path = Path("/")) -> list[str]:
    """This machine's Debian lines for ``SUITE`` (and its -updates and
    -security), as one-line ``deb URI SUITE COMPONENTS`` entries."""
    lines: list[str] = []
    apt = root / "etc/apt"
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 4 and parts[0] == "deb" and not parts[1].startswith("["):
                lines.append(" ".join(parts))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for raw in stanza.splitlines():
                if raw.startswith("#") or ":" not in raw:
                    continue
                key, _, value = raw.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    lines.append(f"deb {uri} {suite} {fields.get('components', 'main')}")
    wanted = [
        line
        for line in lines
        if line.split()[2].split("-")[0] == SUITE and "debian" in line.split()[1]
    ]
    if not wanted:
        raise RuntimeError(
            f"no Debian {SUITE} lines in this machine's apt sources; "
            "the test hosts are built from them"
        )
    return wanted


def debian_mirror() -> str:
    """The URL of the main Debian archive this machine uses."""
    for line in debian_sources():
        uri, suite = line.split()[1:3]
        if suite == SUITE:
            return uri.rstrip("/") + "/"
    raise RuntimeError(f"no {SUITE} line in this machine's apt sources")


def image_key(sources: list[str]) -> str:
    recipe = {
        "packages": sorted(IMAGE_PACKAGES),
        "sources": sources,
        "suite": SUITE,
        "apt": APT_OPTIONS,
        "recipe": RECIPE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def ensure_image(log: Path | None = None) -> Path:
    """The unpacked image tree, built (or unpacked from its tarball) if missing.

    Safe to call from concurrent runs: a lock file serialises the build."""
    sources = debian_sources()
    key = image_key(sources)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / f"image-{key}"
    tarball = cache / f"image-{key}.tar.zst"
    with open(cache / "image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (tree / "etc/os-release").exists():
            return tree
        if not tarball.exists():
            _build(tarball, sources, log)
        _unpack(tarball, tree)
    return tree


def _build(tarball: Path, sources: list[str], log: Path | None) -> None:
    work = tarball.with_name(tarball.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    aptopts = [f"--aptopt={option}" for option in APT_OPTIONS]
    config = "\n".join(APT_OPTIONS) + "\n"
    hooks = [
        f"--customize-hook=printf '%s' '{config}' > \"$1/etc/apt/apt.conf.d/99srht-e2e\"",
        # apt's daily timers would take the dpkg lock in the middle of a deploy.
        '--customize-hook=chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer',
        '--customize-hook=rm -f "$1"/etc/hostname',
    ]
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        f"--include={','.join(IMAGE_PACKAGES)}",
        *aptopts,
        *hooks,
        SUITE,
        str(work),
        *sources,
    ]
    with open(log or os.devnull, "ab") as out:
        subprocess.run(
            command,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=900,
        )
        partial = tarball.with_name(tarball.name + ".part")
        subprocess.run(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(work),
                "-I",
                "zstd -T0 -3",
                "-cf",
                str(partial),
                ".",
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    partial.rename(tarball)
    shutil.rmtree(work, ignore_errors=True)


def _unpack(tarball: Path, tree: Path) -> None:
    partial = tree.with_name(tree.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    subprocess.run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "-C",
            str(partial),
            "-I",
            "zstd",
            "-xf",
            str(tarball),
        ],
        check=True,
        timeout=300,
    )
    partial.rename(tree)
