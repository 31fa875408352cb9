"""Keeping the srht packages of before an upgrade (``install-method =
distro``), as a host does it: :func:`srht_installer.rollback.keep_packages_command`
run by the shell here, on real ``.deb`` files built with ``dpkg-deb``, with
the list of installed packages given as ``dpkg-query`` would print it (the
machine's own packages are neither read nor changed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from srht_installer.rollback import PENDING, keep_packages_command

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def build_deb(folder: Path, name: str, version: str) -> Path:
    """A minimal ``.deb`` of ``name`` at ``version`` in ``folder``."""
    tree = folder / f"{name}-{version}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: srht tests <tests@srht.test>\nDescription: a test package\n"
    )
    deb = folder / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return deb


def installed(*lines: str) -> str:
    """A command printing ``lines`` as the host's ``dpkg-query`` would."""
    return "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines)


def keep(folder: Path, sources: tuple[str, ...], *lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", keep_packages_command(str(folder), sources, installed(*lines))],
        capture_output=True,
        text=True,
        timeout=120,
    )


def versions(folder: Path) -> list[str]:
    out = []
    for deb in sorted(folder.glob("*.deb")):
        shown = subprocess.run(
            ["dpkg-deb", "-W", "--showformat=${Package}=${Version}", str(deb)],
            capture_output=True,
            text=True,
            check=True,
        )
        out.append(shown.stdout)
    return out


def test_the_installed_versions_are_kept_from_the_repository_and_the_cache(
    tmp_path: Path,
) -> None:
    published = tmp_path / "apt" / "0123abcd"
    cache = tmp_path / "archives"
    published.mkdir(parents=True)
    cache.mkdir()
    build_deb(published, "srht-core", "1.0-1")
    build_deb(published, "srht-core", "0.9-1")
    build_deb(published, "srht-meta", "1.0-1")
    build_deb(cache, "srht-paste", "1.0-1")
    build_deb(cache, "srht-todo", "1.0-1")
    kept = tmp_path / "previous-packages"
    sources = (f"{tmp_path}/apt/*/*.deb", f"{cache}/*.deb")

    result = keep(
        kept,
        sources,
        "srht-core 1.0-1 ii ",
        "srht-meta 1.0-1 ii ",
        "srht-paste 1.0-1 ii ",
        "srht-todo 1.0-1 rc ",  # removed, its config left: not installed
        "srht-gone 0.5-1 ii ",  # no .deb of it anywhere, and apt has none
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "missing srht-gone 0.5-1\n"
    assert versions(kept) == ["srht-core=1.0-1", "srht-meta=1.0-1", "srht-paste=1.0-1"]
    assert (kept / PENDING).exists()
    assert not (kept / ".index").exists()
    assert not kept.with_name(kept.name + ".part").exists()


def test_an_upgrade_cut_short_keeps_what_was_kept_before_it(tmp_path: Path) -> None:
    repository = tmp_path / "apt" / "1"
    repository.mkdir(parents=True)
    build_deb(repository, "srht-core", "1.0-1")
    build_deb(repository, "srht-core", "2.0-1")
    kept = tmp_path / "previous-packages"
    sources = (f"{tmp_path}/apt/*/*.deb",)
    assert keep(kept, sources, "srht-core 1.0-1 ii ").returncode == 0

    # The packages were upgraded, then the upgrade stopped: the next one
    # finds the pending mark and keeps 1.0, not what is installed now.
    again = keep(kept, sources, "srht-core 2.0-1 ii ")

    assert again.returncode == 0, again.stderr
    assert versions(kept) == ["srht-core=1.0-1"]

    # Once the upgrade is over (the mark removed), the next keeps anew.
    (kept / PENDING).unlink()
    assert keep(kept, sources, "srht-core 2.0-1 ii ").returncode == 0
    assert versions(kept) == ["srht-core=2.0-1"]


class Extra:
    """A third-party service: its own distribution, ``srht-extra``."""

    @staticmethod
    def service_info() -> Any:
        from srht_core import ServiceInfo

        return ServiceInfo("extra", "Extra", "A third-party service.", default_port=5078)


def rolled_back_with(install_method: str, failed: str) -> list[str]:
    """What :func:`_with_shared_code` rolls back with ``failed``: meta and
    extra on alpha, paste on beta."""
    from pluggy import HookimplMarker
    from srht_deploy.model import Site
    from srht_deploy.topology import read_topology
    from srht_installer.rollback import _with_shared_code

    from srht_core import Config, PluginHost
    from srht_core.config import dump_ini
    from srht_core.keys import generate_keys

    plugin = Extra()
    plugin.service_info = HookimplMarker("srht")(Extra.service_info)  # type: ignore[method-assign]
    plugins = PluginHost()
    assert plugins.register(plugin, "extra", distribution="srht-extra").ok
    keys = generate_keys()
    data: dict[str, dict[str, Any]] = {
        "srht": {
            "site-owner-email": "admin@example.org",
            "global-domain": "example.org",
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "install-method": install_method,
            "internal-networks": "127.0.0.0/8, 192.0.2.0/24",
        },
        "webhooks": {"private-key": keys.webhook_private_key},
        "deploy": {
            "hosts": "alpha=192.0.2.10, beta=192.0.2.11",
            "postgresql-host": "alpha",
            "apt-source": "deb http://debs.example.org ./",
        },
    }
    for name, host in (("meta", "alpha"), ("extra", "alpha"), ("paste", "beta")):
        data[name] = {"origin": f"https://{name}.example.org", "hosts": host}
    cfg = Config.from_string(dump_ini(data), "site.ini")
    assert not plugins.check_config(cfg)
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    return _with_shared_code(site, {failed})


def test_what_is_rolled_back_with_a_failed_service_is_what_shares_its_code() -> None:
    # In a virtualenv, a third-party service is its own distribution: it
    # goes back alone, and the built-in services on its host stay.
    assert rolled_back_with("venv", "extra") == ["extra"]
    assert rolled_back_with("venv", "meta") == ["meta"]
    # From packages, every srht package of a host goes back together (each
    # depends on srht-core of its own version): the services on that host
    # too, not those elsewhere.
    assert rolled_back_with("distro", "extra") == ["meta", "extra"]
    assert rolled_back_with("distro", "paste") == ["paste"]
