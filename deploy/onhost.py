"""Run on the hosts, from the freshly installed virtualenv (standard
library and srht only; pyinfra is not there).

``python -m srht_deploy.onhost static-links DIR`` links ``DIR/srht`` to the
core's static files and ``DIR/<service>`` to each installed service's, so
nginx serves ``/static/<owner>/...`` from one folder.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path


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


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "static-links":
        static_links(Path(argv[1]))
        return 0
    print("usage: python -m srht_deploy.onhost static-links DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
