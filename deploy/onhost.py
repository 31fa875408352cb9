"""Run on the hosts, from the freshly installed virtualenv (standard
library and srht only; pyinfra is not there).

``python -m srht_deploy.onhost static-links DIR`` links ``DIR/srht`` to the
core's static files and ``DIR/<service>`` to each installed service's, so
nginx serves ``/static/<owner>/...`` from one folder.

``python -m srht_deploy.onhost put-back DISTRIBUTION PREVIOUS`` puts the
files of ``DISTRIBUTION`` in this virtualenv back as ``PREVIOUS`` (a copy of
it taken before an upgrade) holds them, and its line of the virtualenv's
record of wheels, so a failed service runs its previous code again and the
next deploy installs the new one (``srht-install upgrade``'s rollback).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

RECORD = ".srht-wheels"


def static_links(target: Path) -> None:
    import srht_core
    from srht_core import PluginHost

    folders = {"srht": Path(srht_core.__file__).parent / "static"}
    for record in PluginHost().services():
        plugin = record.plugin
        module = plugin if inspect.ismodule(plugin) else type(plugin)
        folders[record.name] = Path(inspect.getfile(module)).parent / "static"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():  # redone after every install: services come and go
        if old.is_symlink():
            old.unlink()
    for owner, folder in sorted(folders.items()):
        if folder.is_dir():
            (target / owner).symlink_to(folder, target_is_directory=True)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(venv: Path, distribution: str) -> tuple[Path, metadata.Distribution | None]:
    site = next(venv.glob("lib/python*/site-packages"))
    for found in metadata.distributions(path=[str(site)]):
        name = found.metadata["Name"]
        if name and _canonical(name) == distribution:
            return site, found
    return site, None


def _record_lines(venv: Path, distribution: str) -> tuple[list[str], list[str]]:
    """The lines of ``venv``'s record: (those of ``distribution``'s wheel, the others)."""
    path = venv / RECORD
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    ours = [
        line for line in lines if _canonical(line.split("  ", 1)[-1].split("-")[0]) == distribution
    ]
    return ours, [line for line in lines if line not in ours]


def put_back(distribution: str, venv: Path, previous: Path) -> str:
    """Put ``distribution``'s files in ``venv`` back as ``previous`` holds
    them; returns the version put back (``none`` when it had none)."""
    distribution = _canonical(distribution)
    site, now = _installed(venv, distribution)
    old_site, before = _installed(previous, distribution)
    folders = set()
    for name in (now.files or []) if now is not None else []:
        path = Path(os.path.normpath(site / name))
        if path.is_file() or path.is_symlink():
            path.unlink()
            folders.add(path.parent)
    # Folders left empty (or holding only bytecode) go: an empty dist-info
    # would still be found as the distribution, without a version.
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        cache = folder / "__pycache__"
        if folder != site and folder.is_relative_to(site) and folder.is_dir():
            if cache.is_dir() and not any(folder.glob("*.py")):
                shutil.rmtree(cache)
            if not any(folder.iterdir()):
                folder.rmdir()
    for name in (before.files or []) if before is not None else []:
        source = Path(os.path.normpath(old_site / name))
        target = Path(os.path.normpath(site / name))
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    old_lines, _ = _record_lines(previous, distribution)
    _, other_lines = _record_lines(venv, distribution)
    (venv / RECORD).write_text("".join(other_lines + old_lines))
    return before.version if before is not None else "none"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "static-links":
        static_links(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "put-back":
        print(put_back(argv[1], Path(sys.prefix), Path(argv[2])))
        return 0
    print(
        "usage: python -m srht_deploy.onhost static-links DIR\n"
        "       python -m srht_deploy.onhost put-back DISTRIBUTION PREVIOUS",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
