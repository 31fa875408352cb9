"""Which of srht's Python dependencies Debian provides, and which it vendors.

Debian bookworm has most of what srht needs, but some at versions below our
requirements (Flask 2.2, SQLAlchemy 1.4, ...) and some not at all (nh3).
This script decides, for each distribution srht needs at run time, whether
bookworm's package will do or whether the wheel goes into the private
``srht-python-deps`` package (``/usr/lib/srht/vendor``). See
``packaging/README.md`` for why.

It decides the same for a second set, the deploying machine's: what the
``install`` extra adds (pyinfra, questionary, rich and their requirements)
for ``srht-installer`` (``/usr/lib/srht/installer-vendor``), which servers
never install. That set is decided on top of the first: a distribution the
servers' set already provides (vendored or Debian's) is used as it is, and
must meet the installer's requirements too (both folders are on the same
path, so one may not shadow the other); only what is left is vendored for
the installer, or taken from Debian.

The decision is a fixed point: srht's own requirements, plus the
requirements of every *vendored* distribution (Debian's packages bring
their own dependencies), must each be met by bookworm's version; what is
not met is vendored, which may add requirements, until nothing changes.

    python3 packaging/deps.py lock            # network: resolve, decide, write the lists
    python3 packaging/deps.py fetch DIR       # network: the vendored wheels into DIR
    python3 packaging/deps.py check DIR       # offline: the lists still hold, given DIR
    python3 packaging/deps.py copyright DIR   # offline: rewrite debian/copyright from DIR

``lock`` writes ``packaging/vendor.txt`` (exact pins of what is vendored)
and ``packaging/debian-depends.txt`` (the Debian packages srht-core
depends on, with minimum versions), and for the installer
``packaging/vendor-installer.txt`` and
``packaging/debian-depends-installer.txt`` (srht-installer's). All are
committed; ``check`` (run by the packaging tests) recomputes both decisions
from the fetched wheels and this machine's apt cache (a bookworm machine)
and fails when they differ. ``fetch DIR`` puts the servers' wheels in
``DIR`` and the installer's in ``DIR/installer``.

``packaging/debian/copyright`` is generated too, after its hand-written
header and srht's own stanza: one ``Files: vendor/...`` stanza per vendored
wheel (copyright lines from its license files, the license from its
METADATA, checked against the license files' text) and a standalone
``License:`` paragraph per license named. ``lock`` writes it, ``check``
fails when it is stale, and ``copyright DIR`` rewrites it offline from the
wheels in ``DIR``. What metadata leaves ambiguous is answered in
``LICENSE_OVERRIDES``, with the reason; anything else undeterminable fails.
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
from collections.abc import Sequence
from pathlib import Path

from dep5 import COPYRIGHT, NoLicense, copyright_text, write_copyright
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENDOR_LIST = HERE / "vendor.txt"
DEPENDS_LIST = HERE / "debian-depends.txt"
INSTALLER_VENDOR_LIST = HERE / "vendor-installer.txt"
INSTALLER_DEPENDS_LIST = HERE / "debian-depends-installer.txt"
#: Where ``fetch DIR`` puts the installer's wheels, under ``DIR``.
INSTALLER_WHEELS = "installer"
#: dh-python's table of PyPI distribution -> Debian package.
DH_PYTHON_MAP = Path("/usr/share/dh-python/dist/cpython3_fallback")

#: bookworm's Python, for markers and wheel tags.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
}

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

#: Requirements no metadata states, met wherever the distribution is wanted:
#: the lowest version that works with what we vendor, and why.
#: - paramiko < 3.4.1 (bookworm has 2.12) reads TripleDES from where the
#:   cryptography we vendor (>= 43) deprecates it: a warning on every
#:   ``srht deploy``, and an ImportError once cryptography removes it.
KNOWN_REQUIREMENTS = {
    "paramiko": SpecifierSet(">=3.4.1"),
}


def our_requirements() -> list[Requirement]:
    """srht's run-time requirements, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def installer_requirements() -> list[Requirement]:
    """What the deploying machine adds (``srht deploy``, ``srht-install``):
    the ``install`` extra of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["optional-dependencies"]["install"]]


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
    result = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *packages],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
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
        requirements = [
            Requirement(line.split(":", 1)[1].strip())
            for line in text.splitlines()
            if line.startswith("Requires-Dist:")
        ]
        out[canonicalize_name(name)] = (version, requirements)
    return out


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**TARGET, "extra": extra}) for extra in {"", *extras})


class Unresolved(Exception):
    """A distribution must be vendored but no wheel of it was resolved (pip
    evaluates markers for the Python running it, not for bookworm's)."""


class Conflict(Exception):
    """The installer's set needs a distribution the servers' set provides,
    at a version the servers' set does not have: vendoring another one
    would shadow it for srht (or be shadowed). Raise the servers' pin."""


Decision = tuple[dict[str, Version], dict[str, tuple[str, SpecifierSet]]]


def decide(
    requirements: list[Requirement],
    wheels: dict[str, tuple[Version, list[Requirement]]],
    debian: dict[str, tuple[str, Version | None]],
    base: Decision | None = None,
) -> Decision:
    """The fixed point: ``(vendored {name: version}, Debian {name: (package, specifier)})``.

    :param requirements: the set's own requirements (ours, or the installer's).
    :param wheels: the resolved closure (every distribution pip chose).
    :param debian: ``{name: (Debian package, its version or None)}``.
    :param base: the decision this set sits on (the servers', for the
        installer's): what it vendors is used, never vendored again, and
        what it takes from Debian cannot be vendored here.
    """
    base_vendored, base_debian = base if base is not None else ({}, {})
    vendored: dict[str, Version] = {}
    # Extras asked of each distribution (celery[redis]); they only grow.
    extras: dict[str, set[str]] = {}
    while True:
        # Every requirement that must be met: ours, and those of vendored wheels.
        wanted: dict[str, SpecifierSet] = {}
        parents = [("", requirements)]
        parents += [(name, wheels[name][1]) for name in sorted(vendored)]
        for parent, asked in parents:
            for requirement in asked:
                if not _applies(requirement, extras.get(parent, set())):
                    continue
                name: str = canonicalize_name(requirement.name)
                specifier = requirement.specifier
                if name in SUBSTITUTES:
                    substitute, specifier = SUBSTITUTES[name]
                    name = canonicalize_name(substitute)
                wanted[name] = (
                    wanted.get(name, SpecifierSet())
                    & specifier
                    & KNOWN_REQUIREMENTS.get(name, SpecifierSet())
                )
                extras.setdefault(name, set()).update(requirement.extras)
        new: dict[str, Version] = {}
        from_debian: dict[str, tuple[str, SpecifierSet]] = {}
        for name, specifier in sorted(wanted.items()):
            if name in base_vendored:
                if not specifier.contains(base_vendored[name], prereleases=True):
                    raise Conflict(
                        f"{name}{specifier} is wanted, but srht-python-deps "
                        f"vendors {name} {base_vendored[name]}"
                    )
                continue
            package, version = debian.get(name, ("", None))
            if version is not None and specifier.contains(version, prereleases=True):
                from_debian[name] = (package, specifier)
            elif name in base_debian:
                raise Conflict(
                    f"{name}{specifier} is wanted, but srht-core uses bookworm's "
                    f"{package} {version}"
                )
            elif name in wheels and specifier.contains(wheels[name][0], prereleases=True):
                new[name] = wheels[name][0]
            else:
                raise Unresolved(f"{name}{specifier}")
        if new == vendored:
            return vendored, from_debian
        vendored = new


def debian_table(names: list[str]) -> dict[str, tuple[str, Version | None]]:
    mapping = debian_names()
    packages = {name: mapping.get(name, f"python3-{name}") for name in names}
    versions = debian_versions(sorted(set(packages.values())))
    return {name: (package, versions[package]) for name, package in packages.items()}


#: The header lines of each set's two lists.
SERVERS_HEADERS = (
    ("the distributions", "srht-python-deps carries in /usr/lib/srht/vendor, and why."),
    (
        "the Debian packages",
        "srht-core depends on (what bookworm provides at a version we can use).",
    ),
)
INSTALLER_HEADERS = (
    ("the distributions", "srht-installer carries in /usr/lib/srht/installer-vendor, and why."),
    ("the Debian packages", "srht-installer depends on (its own: srht-core brings srht-core's)."),
)


def render(
    vendored: dict[str, Version],
    from_debian: dict[str, tuple[str, SpecifierSet]],
    debian: dict[str, tuple[str, Version | None]],
    headers: tuple[tuple[str, str], tuple[str, str]] = SERVERS_HEADERS,
) -> tuple[str, str]:
    """The text of ``vendor.txt`` and ``debian-depends.txt`` (or of the
    installer's two lists, with its ``headers``)."""
    (vendor_what, vendor_rest), (depends_what, depends_rest) = headers
    vendor = [
        f"# Generated by `python3 packaging/deps.py lock`: {vendor_what}",
        f"# {vendor_rest}",
        "",
    ]
    for name, version in sorted(vendored.items()):
        package, have = debian.get(name, ("", None))
        why = f"bookworm has {package} {have}" if have else "not in bookworm"
        vendor.append(f"{name}=={version}  # {why}")
    depends = [
        f"# Generated by `python3 packaging/deps.py lock`: {depends_what}",
        f"# {depends_rest}",
        "",
    ]
    for package, specifier in sorted(from_debian.values(), key=lambda item: item[0]):
        lowest = sorted(
            (s.version for s in specifier if s.operator in (">=", "==", "~=")), key=Version
        )
        depends.append(f"{package} (>= {lowest[-1]})" if lowest else package)
    return "\n".join(vendor) + "\n", "\n".join(depends) + "\n"


def pip_target() -> list[str]:
    import platform

    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    return [
        "--only-binary=:all:",
        *(a for p in platforms for a in ("--platform", p)),
        "--python-version",
        TARGET["python_full_version"],
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ]


def pip_download(
    folder: Path, requirements: list[str], *, deps: bool, constraints: Sequence[str] = ()
) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(folder),
        *pip_target(),
        *requirements,
    ]
    if not deps:
        command.insert(4, "--no-deps")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="srht-constraints-") as pinned:
        if constraints:
            pinned.write("".join(f"{line}\n" for line in constraints))
            pinned.flush()
            command[4:4] = ["--constraint", pinned.name]
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=1800)


def _resolve(
    folder: Path, requirements: list[Requirement], base: Decision | None, constraints: list[str]
) -> tuple[Decision, dict[str, tuple[str, Version | None]]]:
    """Download the closure of ``requirements`` into ``folder`` and decide."""
    constraints = [*constraints, *(f"{name}{spec}" for name, spec in KNOWN_REQUIREMENTS.items())]
    pip_download(folder, [str(r) for r in requirements], deps=True, constraints=constraints)
    substitutes = {canonicalize_name(s[0]) for s in SUBSTITUTES.values()}
    for _round in range(5):
        wheels = wheel_metadata(folder)
        debian = debian_table(sorted(set(wheels) | substitutes))
        try:
            return decide(requirements, wheels, debian, base), debian
        except Unresolved as missing:
            pip_download(folder, [str(missing)], deps=True, constraints=constraints)
    raise SystemExit("could not resolve every vendored distribution")


def lock() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="srht-deps-") as servers_tmp,
        tempfile.TemporaryDirectory(prefix="srht-deps-") as installer_tmp,
    ):
        servers, debian = _resolve(Path(servers_tmp), our_requirements(), None, [])
        vendor_text, depends_text = render(*servers, debian)
        VENDOR_LIST.write_text(vendor_text)
        DEPENDS_LIST.write_text(depends_text)
        print(f"servers: vendored {len(servers[0])}, from Debian {len(servers[1])}")
        # The installer's closure, with what the servers' set vendors pinned as it is.
        try:
            installer, debian = _resolve(
                Path(installer_tmp), installer_requirements(), servers, pins(VENDOR_LIST)
            )
        except Conflict as conflict:
            raise SystemExit(f"conflict: {conflict}") from None
        vendor_text, depends_text = render(*installer, debian, INSTALLER_HEADERS)
        INSTALLER_VENDOR_LIST.write_text(vendor_text)
        INSTALLER_DEPENDS_LIST.write_text(depends_text)
        print(f"installer: vendored {len(installer[0])}, from Debian {len(installer[1])}")
        # debian/copyright's vendored part, from the wheels just resolved.
        try:
            COPYRIGHT.write_text(copyright_text(Path(servers_tmp), Path(installer_tmp)))
        except NoLicense as problem:
            raise SystemExit(f"no license: {problem}") from None


def pins(path: Path = VENDOR_LIST) -> list[str]:
    return [
        line.split("#", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]


def fetch(folder: Path) -> None:
    """The vendored wheels, exactly as pinned, for bookworm's Python: the
    servers' in ``folder``, the installer's in ``folder/installer``. A
    wheel left there by an older lock (a cache kept between runs) is removed:
    two versions of one distribution would both be installed."""
    for target, path in ((folder, VENDOR_LIST), (folder / INSTALLER_WHEELS, INSTALLER_VENDOR_LIST)):
        target.mkdir(parents=True, exist_ok=True)
        pinned = pins(path)
        wanted = {
            (canonicalize_name(name), Version(version))
            for name, version in (pin.split("==") for pin in pinned)
        }
        for wheel in target.glob("*.whl"):
            name, version, _build, _tags = parse_wheel_filename(wheel.name)
            if (name, version) not in wanted:
                wheel.unlink()
        pip_download(target, pinned, deps=False)


def check(folder: Path) -> int:
    """Recompute both decisions from the wheels in ``folder`` and
    ``folder/installer`` (the vendored ones) and apt; 1 with the differences
    when the lists are stale."""
    servers_wheels = wheel_metadata(folder)
    installer_wheels = wheel_metadata(folder / INSTALLER_WHEELS)
    missing = [
        pin
        for path, wheels in (
            (VENDOR_LIST, servers_wheels),
            (INSTALLER_VENDOR_LIST, installer_wheels),
        )
        for pin in pins(path)
        if canonicalize_name(pin.split("==")[0]) not in wheels
    ]
    if missing:
        print(f"not fetched into {folder}: {', '.join(missing)}", file=sys.stderr)
        return 1
    both = {**servers_wheels, **installer_wheels}
    names = set(both)
    for requirement in [*our_requirements(), *installer_requirements()]:
        names.add(canonicalize_name(requirement.name))
    for _version, requirements in both.values():
        names.update(canonicalize_name(r.name) for r in requirements)
    names.update(canonicalize_name(s[0]) for s in SUBSTITUTES.values())
    debian = debian_table(sorted(names))  # one apt-cache call for both sets
    try:
        servers = decide(our_requirements(), servers_wheels, debian)
        installer = decide(installer_requirements(), both, debian, servers)
    except Unresolved as missing:
        print(
            f"stale: {missing} must now be vendored (run `python3 packaging/deps.py lock`)",
            file=sys.stderr,
        )
        return 1
    except Conflict as conflict:
        print(
            f"conflict: {conflict} (raise the pin, then `python3 packaging/deps.py lock`)",
            file=sys.stderr,
        )
        return 1
    expected = dict(zip((VENDOR_LIST, DEPENDS_LIST), render(*servers, debian), strict=True))
    expected.update(
        zip(
            (INSTALLER_VENDOR_LIST, INSTALLER_DEPENDS_LIST),
            render(*installer, debian, INSTALLER_HEADERS),
            strict=True,
        )
    )
    stale = [
        path.name
        for path, text in expected.items()
        if not path.exists() or path.read_text() != text
    ]
    if stale:
        print(f"stale: {', '.join(stale)} (run `python3 packaging/deps.py lock`)", file=sys.stderr)
        return 1
    # debian/copyright, from the wheels of the (now known current) lists.
    try:
        copyright_expected = copyright_text(folder, folder / INSTALLER_WHEELS)
    except NoLicense as problem:
        print(f"no license: {problem}", file=sys.stderr)
        return 1
    if COPYRIGHT.read_text() != copyright_expected:
        print(
            "stale: debian/copyright (run `python3 packaging/deps.py copyright "
            f"{folder}`, or `lock`)",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="packaging/deps.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "lock",
        help="resolve and decide; write the servers' and the installer's vendor and Debian lists",
    )
    for name, text in (
        ("fetch", "download the vendored wheels (the installer's into FOLDER/installer)"),
        ("check", "fail when the committed lists or debian/copyright are stale"),
        (
            "copyright",
            "offline: regenerate debian/copyright's vendored "
            "part from the wheels in FOLDER (and FOLDER/installer)",
        ),
    ):
        sub.add_parser(name, help=text).add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.command == "lock":
        lock()
        return 0
    if args.command == "fetch":
        fetch(args.folder)
        return 0
    if args.command == "copyright":
        return write_copyright(args.folder)
    return check(args.folder)


if __name__ == "__main__":
    sys.exit(main())
