"""Which of srht's Python dependencies Debian provides, and which it vendors.

Debian bookworm has most of what srht needs, but some at versions below our
requirements (Flask 2.2, SQLAlchemy 1.4, ...) and some not at all (nh3).
This script decides, for each distribution srht needs at run time, whether
bookworm's package will do or whether the wheel goes into the private
``srht-python-deps`` package (``/usr/lib/srht/vendor``). See
``packaging/README.md`` for why.

The decision is a fixed point: srht's own requirements, plus the
requirements of every *vendored* distribution (Debian's packages bring
their own dependencies), must each be met by bookworm's version; what is
not met is vendored, which may add requirements, until nothing changes.

    python3 packaging/deps.py lock            # network: resolve, decide, write the lists
    python3 packaging/deps.py fetch DIR       # network: the vendored wheels into DIR
    python3 packaging/deps.py check DIR       # offline: the lists still hold, given DIR

``lock`` writes ``packaging/vendor.txt`` (exact pins of what is vendored)
and ``packaging/debian-depends.txt`` (the Debian packages srht-core
depends on, with minimum versions). Both are committed; ``check`` (run by
the packaging tests) recomputes the decision from the fetched wheels and
this machine's apt cache (a bookworm machine) and fails when they differ.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENDOR_LIST = HERE / "vendor.txt"
DEPENDS_LIST = HERE / "debian-depends.txt"
#: dh-python's table of PyPI distribution -> Debian package.
DH_PYTHON_MAP = Path("/usr/share/dh-python/dist/cpython3_fallback")

#: bookworm's Python, for markers and wheel tags.
TARGET = {"python_version": "3.11", "python_full_version": "3.11.2",
          "implementation_name": "cpython", "platform_python_implementation": "CPython",
          "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux"}

#: Requirements replaced by another distribution in Debian, with the lowest
#: version known to work and why. psycopg2-binary exists only as a PyPI
#: wheel (it bundles its own libpq and OpenSSL); Debian builds the same
#: source, psycopg2, against the system's libpq. Our pin (2.9.9) is the
#: first release with wheels for every Python we test on PyPI; srht uses
#: psycopg2 only through SQLAlchemy's dialect, which needs >= 2.7, and the
#: distro deploy test runs meta and todo on PostgreSQL with bookworm's 2.9.5.
SUBSTITUTES = {
    "psycopg2-binary": ("psycopg2", SpecifierSet(">=2.9.5")),
}


def our_requirements() -> list[Requirement]:
    """srht's run-time requirements, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def debian_names() -> dict[str, str]:
    """``{canonical distribution name: Debian package}`` from dh-python."""
    out: dict[str, str] = {}
    for line in DH_PYTHON_MAP.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            out.setdefault(canonicalize_name(parts[0]), parts[1])
    return out


def debian_versions(packages: list[str]) -> dict[str, Version | None]:
    """The candidate version of each of ``packages`` in this machine's apt
    cache (upstream part only), ``None`` when apt has no such package. One
    apt-cache call: each takes seconds."""
    result = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                            capture_output=True, text=True, check=False, timeout=300)
    found: dict[str, Version | None] = dict.fromkeys(packages)
    for stanza in result.stdout.split("\n\n"):
        name = re.search(r"^Package: (\S+)$", stanza, re.MULTILINE)
        match = re.search(r"^Version: (?:\d+:)?(.+)$", stanza, re.MULTILINE)
        if not name or not match:
            continue
        upstream = match.group(1).rsplit("-", 1)[0]
        upstream = re.split(r"[+~]", upstream)[0]  # 1.2.0+dfsg, 2.0~rc1
        with contextlib.suppress(InvalidVersion):  # a version we cannot read: not usable
            found[name.group(1)] = Version(upstream)
    return found


def wheel_metadata(folder: Path) -> dict[str, tuple[Version, list[Requirement]]]:
    """``{name: (version, requirements)}`` of the wheels in ``folder``."""
    out: dict[str, tuple[Version, list[Requirement]]] = {}
    for wheel in sorted(folder.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        with zipfile.ZipFile(wheel) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(meta).decode()
        requirements = [Requirement(line.split(":", 1)[1].strip())
                        for line in text.splitlines() if line.startswith("Requires-Dist:")]
        out[canonicalize_name(name)] = (version, requirements)
    return out


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**TARGET, "extra": extra})
               for extra in {"", *extras})


class Unresolved(Exception):
    """A distribution must be vendored but no wheel of it was resolved (pip
    evaluates markers for the Python running it, not for bookworm's)."""


def decide(wheels: dict[str, tuple[Version, list[Requirement]]],
           debian: dict[str, tuple[str, Version | None]]
           ) -> tuple[dict[str, Version], dict[str, tuple[str, SpecifierSet]]]:
    """The fixed point: ``(vendored {name: version}, Debian {name: (package, specifier)})``.

    :param wheels: the resolved closure (every distribution pip chose).
    :param debian: ``{name: (Debian package, its version or None)}``.
    """
    vendored: dict[str, Version] = {}
    # Extras asked of each distribution (celery[redis]); they only grow.
    extras: dict[str, set[str]] = {}
    while True:
        # Every requirement that must be met: ours, and those of vendored wheels.
        wanted: dict[str, SpecifierSet] = {}
        parents = [("", our_requirements())]
        parents += [(name, wheels[name][1]) for name in sorted(vendored)]
        for parent, requirements in parents:
            for requirement in requirements:
                if not _applies(requirement, extras.get(parent, set())):
                    continue
                name = canonicalize_name(requirement.name)
                specifier = requirement.specifier
                if name in SUBSTITUTES:
                    substitute, specifier = SUBSTITUTES[name]
                    name = canonicalize_name(substitute)
                wanted[name] = wanted.get(name, SpecifierSet()) & specifier
                extras.setdefault(name, set()).update(requirement.extras)
        new: dict[str, Version] = {}
        from_debian: dict[str, tuple[str, SpecifierSet]] = {}
        for name, specifier in sorted(wanted.items()):
            package, version = debian.get(name, ("", None))
            if version is not None and specifier.contains(version, prereleases=True):
                from_debian[name] = (package, specifier)
            elif name in wheels:
                new[name] = wheels[name][0]
            else:
                raise Unresolved(name)
        if new == vendored:
            return vendored, from_debian
        vendored = new


def debian_table(names: list[str]) -> dict[str, tuple[str, Version | None]]:
    mapping = debian_names()
    packages = {name: mapping.get(name, f"python3-{name}") for name in names}
    versions = debian_versions(sorted(set(packages.values())))
    return {name: (package, versions[package]) for name, package in packages.items()}


def render(vendored: dict[str, Version], from_debian: dict[str, tuple[str, SpecifierSet]],
           debian: dict[str, tuple[str, Version | None]]) -> tuple[str, str]:
    """The text of ``vendor.txt`` and ``debian-depends.txt``."""
    vendor = ["# Generated by `python3 packaging/deps.py lock`: the distributions",
              "# srht-python-deps carries in /usr/lib/srht/vendor, and why.", ""]
    for name, version in sorted(vendored.items()):
        package, have = debian.get(name, ("", None))
        why = f"bookworm has {package} {have}" if have else "not in bookworm"
        vendor.append(f"{name}=={version}  # {why}")
    depends = ["# Generated by `python3 packaging/deps.py lock`: the Debian packages",
               "# srht-core depends on (what bookworm provides at a version we can use).", ""]
    for package, specifier in sorted(from_debian.values(), key=lambda item: item[0]):
        lowest = sorted((s.version for s in specifier if s.operator in (">=", "==", "~=")),
                        key=Version)
        depends.append(f"{package} (>= {lowest[-1]})" if lowest else package)
    return "\n".join(vendor) + "\n", "\n".join(depends) + "\n"


def pip_target() -> list[str]:
    import platform

    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    return ["--only-binary=:all:", *(a for p in platforms for a in ("--platform", p)),
            "--python-version", TARGET["python_full_version"], "--implementation", "cp",
            "--abi", "cp311"]


def pip_download(folder: Path, requirements: list[str], *, deps: bool) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--dest", str(folder), *pip_target(), *requirements]
    if not deps:
        command.insert(4, "--no-deps")
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=1800)


def lock() -> None:
    with tempfile.TemporaryDirectory(prefix="srht-deps-") as tmp:
        folder = Path(tmp)
        pip_download(folder, [str(r) for r in our_requirements()], deps=True)
        substitutes = {canonicalize_name(s[0]) for s in SUBSTITUTES.values()}
        for _round in range(5):
            wheels = wheel_metadata(folder)
            debian = debian_table(sorted(set(wheels) | substitutes))
            try:
                vendored, from_debian = decide(wheels, debian)
                break
            except Unresolved as missing:
                pip_download(folder, [str(missing)], deps=True)
        else:
            raise SystemExit("could not resolve every vendored distribution")
    vendor_text, depends_text = render(vendored, from_debian, debian)
    VENDOR_LIST.write_text(vendor_text)
    DEPENDS_LIST.write_text(depends_text)
    print(f"vendored {len(vendored)}, from Debian {len(from_debian)}")


def pins() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in VENDOR_LIST.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def fetch(folder: Path) -> None:
    """The vendored wheels, exactly as pinned, for bookworm's Python."""
    folder.mkdir(parents=True, exist_ok=True)
    pip_download(folder, pins(), deps=False)


def check(folder: Path) -> int:
    """Recompute the decision from the wheels in ``folder`` (the vendored
    ones) and apt; 1 with the differences when the lists are stale."""
    wheels = wheel_metadata(folder)
    missing = [pin for pin in pins() if canonicalize_name(pin.split("==")[0]) not in wheels]
    if missing:
        print(f"not fetched into {folder}: {', '.join(missing)}", file=sys.stderr)
        return 1
    names = set(wheels)
    for requirement in our_requirements():
        names.add(canonicalize_name(requirement.name))
    for _version, requirements in wheels.values():
        names.update(canonicalize_name(r.name) for r in requirements)
    names.update(canonicalize_name(s[0]) for s in SUBSTITUTES.values())
    debian = debian_table(sorted(names))
    try:
        vendored, from_debian = decide(wheels, debian)
    except Unresolved as missing:
        print(f"stale: {missing} must now be vendored (run `python3 packaging/deps.py lock`)",
              file=sys.stderr)
        return 1
    vendor_text, depends_text = render(vendored, from_debian, debian)
    stale = [path.name for path, text in ((VENDOR_LIST, vendor_text),
                                          (DEPENDS_LIST, depends_text))
             if path.read_text() != text]
    if stale:
        print(f"stale: {', '.join(stale)} (run `python3 packaging/deps.py lock`)",
              file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="packaging/deps.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lock", help="resolve and decide; write vendor.txt and debian-depends.txt")
    for name, text in (("fetch", "download the vendored wheels"),
                       ("check", "fail when the committed lists are stale")):
        sub.add_parser(name, help=text).add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.command == "lock":
        lock()
        return 0
    if args.command == "fetch":
        fetch(args.folder)
        return 0
    return check(args.folder)


if __name__ == "__main__":
    sys.exit(main())
