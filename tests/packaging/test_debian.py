"""The Debian packages: generated files current, the dependency lists (the
servers' and the installer's) in step with bookworm, debian/copyright in step
with the vendored wheels, the .debs built from a clean copy with no lintian
error, and each service's files and entry point in its own package.
srht-installer's own tests: test_installer_package.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sourcetree import ROOT

pytestmark = [pytest.mark.packaging]


def test_generated_integration_files_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging/generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _listed(name: str) -> list[str]:
    return [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "packaging" / name).read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]


def test_vendor_and_depends_lists_match_bookworm(wheels: Path) -> None:
    # Both sets: vendor.txt and debian-depends.txt (the servers'), and
    # vendor-installer.txt and debian-depends-installer.txt (srht-installer's).
    assert list((wheels / "installer").glob("pyinfra-*.whl")), "the installer's wheels"
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging/deps.py"), "check", str(wheels)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    control = (ROOT / "packaging/debian/control").read_text()
    build_depends = control.split("Build-Depends:", 1)[1].split("\n\n", 1)[0]
    for line in _listed("debian-depends.txt"):
        assert f" {line}," in build_depends, f"{line} is not in Build-Depends"
    # `srht-install --help` (its man page) imports these at build time; the
    # version may be srht-core's (the higher) when both need the package.
    for line in _listed("debian-depends-installer.txt"):
        package = line.split()[0]
        assert f" {line}," in build_depends or f" {package} (" in build_depends, (
            f"{package} is not in Build-Depends"
        )
    # A fresh machine gets every Build-Depends from scripts/test.
    installs = re.findall(r"[a-z0-9][a-z0-9.+-]+", (ROOT / "scripts/test").read_text())
    for line in build_depends.split(","):
        package = line.split("(")[0].strip()
        if package and not package.startswith("debhelper-compat"):
            assert package in installs, f"scripts/test does not install {package}"
    # One distribution, one folder: the installer's would shadow the servers'.
    servers = {pin.split("==")[0] for pin in _listed("vendor.txt")}
    installer = {pin.split("==")[0] for pin in _listed("vendor-installer.txt")}
    assert {"pyinfra", "questionary"} <= installer
    assert not servers & installer


def test_copyright_states_every_vendored_distribution() -> None:
    # `deps.py check` (above) proves the stanzas are what the wheels say;
    # this proves there is one per pin of both lists, each complete, and a
    # standalone License paragraph for every license they name.
    paragraphs = [
        dict(re.findall(r"^(\S+): ?(.*)$", p, re.MULTILINE))
        for p in (ROOT / "packaging/debian/copyright").read_text().split("\n\n")
    ]
    stanzas: dict[str, dict[str, str]] = {}
    for fields in paragraphs:
        match = re.fullmatch(
            r"vendor/(installer/)?([^-/]+)-([^-/]+)-\*\.whl", fields.get("Files", "")
        )
        if match:
            key = (
                "installer:" if match[1] else ""
            ) + f"{match[2].replace('_', '-').lower()}=={match[3]}"
            stanzas[key] = fields
    expected = {pin.lower() for pin in _listed("vendor.txt")}
    expected |= {f"installer:{pin.lower()}" for pin in _listed("vendor-installer.txt")}
    assert set(stanzas) == expected
    standalone = {
        fields["License"] for fields in paragraphs if "License" in fields and "Files" not in fields
    }
    for key, fields in stanzas.items():
        assert fields.get("Copyright") and fields.get("License"), key
        names = set(re.split(r" (?:and|or) ", fields["License"]))
        assert names <= standalone, f"{key}: no License paragraph for {names - standalone}"


def _contents(deb: Path) -> list[str]:
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True, timeout=60
    ).stdout
    names = (
        subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True, timeout=60)
        .stdout.decode()
        .splitlines()
    )
    return [name.removeprefix(".") for name in names]


def test_debs_build_lintian_clean_and_split_per_service(debs: Path) -> None:
    lintian = (debs / "lintian.txt").read_text()
    assert not [line for line in lintian.splitlines() if line.startswith("E: ")], lintian
    packages = {path.name.split("_")[0]: path for path in debs.glob("*.deb")}
    assert set(packages) == {
        "srht-core",
        "srht-python-deps",
        "srht-meta",
        "srht-todo",
        "srht-paste",
        "srht-git",
        "srht-lists",
        "srht-hub",
        "srht-builds",
        "srht-installer",
    }
    core = _contents(packages["srht-core"])
    assert "/usr/bin/srht" in core
    assert "/usr/share/man/man1/srht.1.gz" in core
    assert not [
        n
        for n in core
        if "/srht_plugins/meta" in n
        or "srht_deploy" in n
        or "srht_installer" in n
        or n == "/usr/bin/srht-install"
    ]
    for service in ("meta", "todo", "paste", "git", "lists", "hub", "builds"):
        files = _contents(packages[f"srht-{service}"])
        private = "/usr/lib/srht/python"
        assert f"{private}/srht_plugins/{service}/__init__.py" in files
        assert any(n.startswith(f"{private}/srht_plugins/{service}/templates/") for n in files)
        assert any(n.startswith(f"{private}/srht_plugins/{service}/migrations/") for n in files)
        assert f"{private}/srht_{service}-0.1.0.dev0.dist-info/entry_points.txt" in files
        assert f"/lib/systemd/system/srht-{service}.service" in files
        assert f"/usr/lib/sysusers.d/srht-{service}.conf" in files
        assert f"/usr/lib/tmpfiles.d/srht-{service}.conf" in files
        assert f"/usr/share/srht/nginx/srht-{service}.conf" in files
        if service == "lists":
            assert "/lib/systemd/system/srht-lists-lmtp.service" in files
        if service == "git":  # sshd's two small programs
            assert {"/usr/bin/srht-git-keys", "/usr/bin/srht-git-shell"} <= set(files)
        others = {"meta", "todo", "paste", "git", "lists", "hub", "builds"} - {service}
        assert not [n for n in files for o in others if f"srht_plugins/{o}/" in n]
