"""``srht-installer``: the deploying machine's package (``srht-install``,
``srht deploy``) with its own vendored libraries, built by
packaging/build-debs beside the servers' packages. Its files, its man page,
and its commands run from the packaged files only: the .debs unpacked into
a folder that is laid over /usr/lib and /usr/bin in a private mount
namespace, so the packaged wrappers run unchanged with bookworm's Python
and Debian's packages, and nothing of the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sourcetree import ROOT
from support.ci import require

pytestmark = [pytest.mark.packaging]

PRIVATE = "/usr/lib/srht/python"
INSTALLER_VENDOR = "/usr/lib/srht/installer-vendor"


def _packages(debs: Path) -> dict[str, Path]:
    return {path.name.split("_")[0]: path for path in debs.glob("*.deb")}


def _contents(deb: Path) -> list[str]:
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True, timeout=60
    ).stdout
    names = (
        subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True, timeout=60)
        .stdout.decode()
        .splitlines()
    )
    return [name.removeprefix(".").rstrip("/") for name in names]


def _pinned(path: Path) -> list[tuple[str, str]]:
    """``(name, version)`` of each line of a vendor list."""
    pins = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [tuple(pin.split("==")) for pin in pins if pin]  # type: ignore[misc]


def _dist_info_name(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}.dist-info"


def test_installer_deb_ships_wrapper_code_registration_man_page_and_vendor(debs: Path) -> None:
    deb = _packages(debs)["srht-installer"]
    files = set(_contents(deb))
    assert "/usr/bin/srht-install" in files
    assert "/usr/share/man/man1/srht-install.1.gz" in files
    assert "/usr/share/doc/srht-installer/vendor-installer.txt" in files
    for module in ("srht_deploy", "srht_installer"):
        assert f"{PRIVATE}/{module}/cli.py" in files
    registration = f"{PRIVATE}/srht_installer-0.1.0.dev0.dist-info"
    assert f"{registration}/entry_points.txt" in files
    # Nothing of the core's or the services' (srht-core ships those).
    assert not [
        n
        for n in files
        if "/srht_core" in n
        or "/srht_plugins" in n
        or n in ("/usr/bin/srht", "/usr/share/man/man1/srht.1.gz")
    ]
    # Every pinned distribution, unchanged, and nothing else vendored there.
    pinned = _pinned(ROOT / "packaging/vendor-installer.txt")
    for name, version in pinned:
        assert f"{INSTALLER_VENDOR}/{_dist_info_name(name, version)}/METADATA" in files, name
    dist_infos = {
        n.split("/")[5]
        for n in files
        if n.startswith(f"{INSTALLER_VENDOR}/") and n.endswith(".dist-info/METADATA")
    }
    assert len(dist_infos) == len(pinned)

    wrapper = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True, timeout=60
    ).stdout
    text = subprocess.run(
        ["tar", "-xO", "./usr/bin/srht-install"],
        input=wrapper,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    assert text.startswith("#!/usr/bin/python3\n")
    assert "from srht_installer.cli import main" in text
    assert f'"{INSTALLER_VENDOR}"' in text

    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Depends", "Architecture"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "srht-core (= 0.1.0~dev0)" in control
    for line in (ROOT / "packaging/debian-depends-installer.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line in control, f"srht-installer does not depend on {line}"


def test_servers_packages_hold_nothing_of_the_installer(debs: Path) -> None:
    packages = _packages(debs)
    installer_names = {
        name.replace("-", "_") for name, _ in _pinned(ROOT / "packaging/vendor-installer.txt")
    }
    assert {"pyinfra", "questionary", "rich"} <= installer_names
    for package in (
        "srht-core",
        "srht-python-deps",
        "srht-meta",
        "srht-todo",
        "srht-paste",
        "srht-git",
    ):
        files = _contents(packages[package])
        assert not [
            n
            for n in files
            if n.startswith(INSTALLER_VENDOR)
            or "/srht_installer" in n
            or "/srht_deploy" in n
            or n == "/usr/bin/srht-install"
        ], package
        parts = {part.split("-")[0] for n in files for part in n.split("/")[4:6]}
        assert not parts & installer_names, (package, parts & installer_names)


def test_man_pages_render(debs: Path, tmp_path: Path) -> None:
    require(shutil.which("man") is not None, "rendering man pages needs man (man-db)")
    packages = _packages(debs)
    for package, page, title in (
        ("srht-core", "srht", "run and administer"),
        ("srht-installer", "srht-install", "install or upgrade"),
    ):
        root = tmp_path / package
        subprocess.run(
            ["dpkg-deb", "-x", str(packages[package]), str(root)], check=True, timeout=120
        )
        shown = subprocess.run(
            ["man", "--warnings", "-l", str(root / f"usr/share/man/man1/{page}.1.gz")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MANWIDTH": "80"},
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stderr == "", shown.stderr
        assert f"{page} - {title}" in shown.stdout
        assert "SEE ALSO" in shown.stdout
    installer_page = subprocess.run(
        ["man", "-l", str(tmp_path / "srht-installer/usr/share/man/man1/srht-install.1.gz")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MANWIDTH": "80"},
    ).stdout
    for option in ("--answers", "--dry-run", "--config"):
        assert option in installer_page


#: Runs ARGV with ROOT's /usr/lib and /usr/bin laid over the machine's, in
#: a mount namespace of its own (nothing outside it sees them).
OVERLAY = """set -e
for d in lib bin; do
  mount -t overlay overlay -o "lowerdir=$ROOT/usr/$d:/usr/$d" "/usr/$d"
done
cd "$HOME"
exec "$@"
"""


def _unpacked(debs: Path, target: Path, packages: tuple[str, ...]) -> Path:
    found = _packages(debs)
    for package in packages:
        subprocess.run(
            ["dpkg-deb", "-x", str(found[package]), str(target)], check=True, timeout=120
        )
    return target


def _run(root: Path, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "COLUMNS": "80",
        "HOME": str(home),
        "ROOT": str(root),
        "SRHT_CONFIG": "/nonexistent/config.ini",
    }
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", OVERLAY, "sh", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_commands_run_from_the_unpacked_packages(debs: Path, tmp_path: Path) -> None:
    require(
        os.geteuid() == 0 and shutil.which("unshare") is not None,
        "laying the unpacked packages over /usr needs root and unshare",
    )
    require(not Path("/usr/lib/srht").exists(), "srht is installed on this machine")
    home = tmp_path / "home"

    # A server: srht-core alone has no deploy command and no srht-install.
    server = _unpacked(debs, tmp_path / "server", ("srht-core", "srht-python-deps"))
    shown = _run(server, home, "srht", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "deploy" not in shown.stdout
    assert _run(server, home, "srht", "deploy", "--help").returncode != 0
    assert not (server / "usr/bin/srht-install").exists()
    assert not (server / INSTALLER_VENDOR.lstrip("/")).exists()

    # The deploying machine: srht-installer beside them.
    machine = _unpacked(
        debs, tmp_path / "machine", ("srht-core", "srht-python-deps", "srht-installer")
    )
    for argv, expected in (
        (("srht-install", "--help"), "Usage: srht-install"),
        (("srht", "deploy", "--help"), "Usage: srht deploy"),
        (("srht", "--help"), "deploy "),
    ):
        result = _run(machine, home, *argv)
        assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-3000:])
        assert expected in result.stdout, (argv, result.stdout)
        # No warning either (a library too old for what we vendor would say so here).
        assert result.stderr == "", (argv, result.stderr)
    # pyinfra and its SSH stack import from the packaged folders.
    probe = _run(
        machine,
        home,
        "/usr/bin/python3",
        "-I",
        "-c",
        "import sys; sys.path[0:0] = ['/usr/lib/srht/python', '/usr/lib/srht/vendor',"
        " '/usr/lib/srht/installer-vendor']; import pyinfra.connectors.ssh, paramiko,"
        " questionary, rich, srht_deploy.cli, srht_installer.cli;"
        " print(pyinfra.__file__, paramiko.__file__, srht_deploy.cli.__file__)",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stderr == "", probe.stderr
    pyinfra_file, paramiko_file, deploy_file = probe.stdout.split()
    assert pyinfra_file.startswith(f"{INSTALLER_VENDOR}/pyinfra/")
    assert paramiko_file.startswith(f"{INSTALLER_VENDOR}/paramiko/")
    assert deploy_file == f"{PRIVATE}/srht_deploy/cli.py"
