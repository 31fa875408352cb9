"""Split an installed srht tree into per-service packages, for any
distribution's package recipe (Debian's rules call it; an Alpine, Arch or
Nix recipe can too).

``python -m installer`` (or pybuild, or ``pip install --root``) installs
srht as one distribution: ``srht_core``, every built-in service under
``srht_plugins/<service>/`` (code, templates, static files, migrations),
and one ``srht-VERSION.dist-info`` whose ``entry_points.txt`` names every
service. Shipping ``srht_plugins/meta`` in another package would leave that
entry point behind in the core's package, pointing at nothing. So:

``core ROOT``
    moves the code from ``ROOT/<site-packages>`` to the private folder
    (``ROOT/usr/lib/srht/python``), removes from the core's
    ``entry_points.txt`` the services, the deploying machine's commands
    (``srht deploy`` and ``srht-install``: ``srht_deploy`` and
    ``srht_installer`` need pyinfra, so they go in a package of their own,
    ``srht-installer``, which servers do not install) and everything that
    would reach outside srht (the ``pytest11`` plugin would load srht into
    every pytest on the machine), and writes ``/usr/bin/srht`` and
    ``/usr/bin/srht-install``: wrappers putting the private folders first.
``services ROOT``
    writes one small ``srht_<service>-VERSION.dist-info`` per service
    beside its code, holding that service's entry point, so the package
    that ships ``srht_plugins/<service>/`` ships its registration too; and
    ``srht_installer-VERSION.dist-info`` for ``srht_deploy`` and
    ``srht_installer`` (the ``srht.commands`` entry point of ``srht deploy``,
    the ``srht-install`` script). A recipe that does not package the
    installer leaves those three out.

Between the two, ``packaging/manpages.py`` runs ``srht --help`` with only
the core registered (and ``srht-install --help``).
"""

from __future__ import annotations

import argparse
import configparser
import io
import shutil
import sys
from pathlib import Path

#: Where the packages put srht and the Python distributions it vendors.
PRIVATE = "usr/lib/srht/python"
VENDOR = "usr/lib/srht/vendor"
#: The installer's own vendored distributions (packaging/vendor-installer.txt).
INSTALLER_VENDOR = "usr/lib/srht/installer-vendor"
#: Not shipped on servers: the deploying machine's code, in srht-installer.
INSTALLER_CODE = ("srht_deploy", "srht_installer")
INSTALLER_DIST = "srht-installer"
#: Entry point groups of the core's dist-info kept in the split.
KEPT_GROUPS = ("console_scripts", "srht.commands")
WRAPPER = """#!/usr/bin/python3
# {name}: srht from its distribution packages. Its code and the Python
# distributions Debian lacks at usable versions live in private folders
# (see /usr/share/doc/srht-core/README.packaging.md); they come first, for
# this process and for what it starts (git hooks, `srht up`).
import os
import sys

PATHS = ["/{private}", "/{vendor}"]
# srht-installer's libraries (pyinfra, ...), on the deploying machine only;
# after the servers' (the two lists never hold the same distribution).
if os.path.isdir("/{installer_vendor}"):
    PATHS.append("/{installer_vendor}")
sys.path[0:0] = PATHS
os.environ["PYTHONPATH"] = os.pathsep.join(
    PATHS + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from {module} import {function}  # noqa: E402

sys.exit({function}())
"""


def _site_packages(root: Path) -> Path:
    found = sorted(root.glob("usr/lib/python3*/*-packages/srht_core"))
    if not found:
        raise SystemExit(f"no srht_core under {root}/usr/lib/python3*/: install srht first")
    return found[0].parent


def _dist_info(folder: Path) -> Path:
    found = sorted(folder.glob("srht-*.dist-info"))
    if len(found) != 1:
        raise SystemExit(f"expected one srht-*.dist-info in {folder}, found {found}")
    return found[0]


def _read_entry_points(dist_info: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    parser.read_string((dist_info / "entry_points.txt").read_text())
    return parser


def _write_entry_points(dist_info: Path, parser: configparser.ConfigParser) -> None:
    out = io.StringIO()
    parser.write(out)
    (dist_info / "entry_points.txt").write_text(out.getvalue().rstrip("\n") + "\n")


def _installer(value: str) -> bool:
    return value.split(":")[0].strip().startswith(INSTALLER_CODE)


def core(root: Path) -> None:
    site = _site_packages(root)
    private = root / PRIVATE
    private.mkdir(parents=True, exist_ok=True)
    dist_info = _dist_info(site)
    for item in ("srht_core", "srht_plugins", *INSTALLER_CODE, dist_info.name):
        shutil.move(str(site / item), str(private / item))
    dist_info = private / dist_info.name
    # The files moved and some are not shipped: a RECORD would be wrong.
    for stale in ("RECORD", "direct_url.json"):
        (dist_info / stale).unlink(missing_ok=True)
    parser = _read_entry_points(dist_info)
    services = dict(parser["srht.services"]) if parser.has_section("srht.services") else {}
    (dist_info / "srht-services.txt").write_text(
        "".join(f"{name} = {value}\n" for name, value in sorted(services.items()))
    )
    scripts: dict[str, str] = {}
    installer = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    installer.optionxform = str  # type: ignore[assignment,method-assign]
    for group in parser.sections():
        if group not in KEPT_GROUPS:
            parser.remove_section(group)
            continue
        for name, value in list(parser[group].items()):
            if group == "console_scripts":
                scripts[name] = value
            if _installer(value):  # srht-installer's: see packaging/README.md
                parser.remove_option(group, name)
                if not installer.has_section(group):
                    installer.add_section(group)
                installer[group][name] = value
    _write_entry_points(dist_info, parser)
    out = io.StringIO()
    installer.write(out)
    (dist_info / "srht-installer.txt").write_text(out.getvalue())
    bin_dir = root / "usr/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, value in sorted(scripts.items()):
        module, function = value.strip().split(":")
        path = bin_dir / name
        path.write_text(
            WRAPPER.format(
                name=name,
                private=PRIVATE,
                vendor=VENDOR,
                installer_vendor=INSTALLER_VENDOR,
                module=module,
                function=function,
            )
        )
        path.chmod(0o755)


def services(root: Path) -> None:
    private = root / PRIVATE
    dist_info = _dist_info(private)
    version = dist_info.name[len("srht-") : -len(".dist-info")]
    listed = (dist_info / "srht-services.txt").read_text().splitlines()
    (dist_info / "srht-services.txt").unlink()
    for line in listed:
        service, value = (part.strip() for part in line.split("=", 1))
        if not (private / value.replace(".", "/")).is_dir():
            raise SystemExit(f"service {service}: {value} is not under {private}")
        _write_dist_info(
            private,
            f"srht-{service}",
            version,
            f"the {service} service of srht",
            f"[srht.services]\n{service} = {value}",
        )
    entry_points = (dist_info / "srht-installer.txt").read_text()
    (dist_info / "srht-installer.txt").unlink()
    for module in INSTALLER_CODE:
        if not (private / module).is_dir():
            raise SystemExit(f"{module} is not under {private}")
    _write_dist_info(private, INSTALLER_DIST, version, "srht's deploy and installer", entry_points)


def _write_dist_info(
    private: Path, name: str, version: str, summary: str, entry_points: str
) -> None:
    """A small dist-info for a split package: its name, ``srht`` of the same
    version as its one requirement, and the entry points it carries."""
    own = private / f"{name.replace('-', '_')}-{version}.dist-info"
    own.mkdir(exist_ok=True)
    (own / "METADATA").write_text(
        "Metadata-Version: 2.1\n"
        f"Name: {name}\n"
        f"Version: {version}\n"
        f"Summary: {summary} (split from the srht distribution)\n"
        f"Requires-Dist: srht=={version}\n"
    )
    (own / "entry_points.txt").write_text(entry_points.rstrip("\n") + "\n")
    (own / "INSTALLER").write_text("srht-split\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="packaging/split.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", choices=("core", "services"))
    parser.add_argument("root", type=Path, help="the installed tree (debian/tmp)")
    args = parser.parse_args()
    (core if args.step == "core" else services)(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
