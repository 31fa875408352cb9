"""Keeping the srht packages of before an upgrade (``install-method =
distro``), as a host does it: :func:`srht_installer.rollback.keep_packages_command`
run by the shell here, on real ``.deb`` files built with ``dpkg-deb``, with
the list of installed packages given as ``dpkg-query`` would print it (the
machine's own packages are neither read nor changed). Putting them back
(:func:`~srht_installer.rollback.put_back_packages_command`) is run the same
way, with an ``apt-get`` and a ``dpkg`` that write down what they are asked
(and ``apt-get -s`` prints the plan the test gives): the host test
(``tests/packaging/test_distro_deploy.py``) runs the real ones.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from srht_installer.rollback import (
    INSTALLED_LIST,
    PENDING,
    keep_packages_command,
    put_back_packages_command,
)

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
    # What dpkg knew before the upgrade is kept with them, for the rollback
    # to tell what the upgrade installed for the first time.
    assert (kept / INSTALLED_LIST).read_text() == (
        "srht-core 1.0-1 ii\n"
        "srht-meta 1.0-1 ii\n"
        "srht-paste 1.0-1 ii\n"
        "srht-todo 1.0-1 rc\n"
        "srht-gone 0.5-1 ii\n"
    )
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
    assert (kept / INSTALLED_LIST).read_text() == "srht-core 1.0-1 ii\n"

    # Once the upgrade is over (the mark removed), the next keeps anew.
    (kept / PENDING).unlink()
    assert keep(kept, sources, "srht-core 2.0-1 ii ").returncode == 0
    assert versions(kept) == ["srht-core=2.0-1"]


class Apt:
    """An ``apt-get`` and a ``dpkg`` for :func:`put_back_packages_command`
    that write each call's arguments to ``calls``; ``apt-get -s`` prints
    ``plan`` (its simulation's lines)."""

    def __init__(self, folder: Path, plan: list[str]) -> None:
        self.log = folder / "calls"
        (folder / "plan").write_text("".join(f"{line}\n" for line in plan))
        for tool, more in (("apt-get", f'[ "$1" = -s ] && cat {folder}/plan; '), ("dpkg", "")):
            (folder / tool).write_text(f'echo "{tool} $*" >> {self.log}; {more}exit 0\n')
        self.folder = folder

    def put_back(
        self, kept: Path, *now: str, service: str = "meta"
    ) -> subprocess.CompletedProcess[str]:
        """Put the packages of ``kept`` back, with ``now`` installed."""
        command = put_back_packages_command(
            service,
            str(kept),
            installed(*now),
            apt=f"sh {self.folder}/apt-get",
            dpkg=f"sh {self.folder}/dpkg",
        )
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)

    def calls(self) -> list[str]:
        if not self.log.exists():
            return []
        return [
            line.replace(f"{OPTIONS} ", "OPTIONS ") for line in self.log.read_text().splitlines()
        ]


#: What both of apt-get's runs are given before the packages to remove.
OPTIONS = "--allow-downgrades --no-install-recommends -o Dpkg::Options::=--force-confold"


def kept_before(tmp_path: Path, *before: str) -> Path:
    """A folder kept before an upgrade: srht-core and srht-meta 1.0, and
    :data:`INSTALLED_LIST` holding ``before`` (or none without)."""
    kept = tmp_path / "previous-packages"
    kept.mkdir()
    build_deb(kept, "srht-core", "1.0-1")
    build_deb(kept, "srht-meta", "1.0-1")
    if before:
        (kept / INSTALLED_LIST).write_text("".join(f"{line}\n" for line in before))
    return kept


def test_putting_back_removes_in_the_same_transaction_what_the_upgrade_installed(
    tmp_path: Path,
) -> None:
    kept = kept_before(tmp_path, "srht-core 1.0-1 ii", "srht-meta 1.0-1 ii", "srht-todo 0.9-1 rc")
    plan = [
        "Inst srht-core [2.0-1] (1.0-1 local [all])",
        "Inst srht-meta [2.0-1] (1.0-1 local [all])",
        "Remv srht-deps-extra [2.0-1]",
        "Remv srht-todo [2.0-1]",
        "Remv srht-half:amd64 [2.0-1]",
    ]
    apt = Apt(tmp_path, plan)

    result = apt.put_back(
        kept,
        "srht-core 2.0-1 ii ",
        "srht-meta 2.0-1 ii ",
        "srht-deps-extra 2.0-1 ii ",  # unknown to dpkg before: purged
        "srht-todo 2.0-1 ii ",  # its config files were left before: removed
        "srht-half 2.0-1 iF ",  # its configuration failed in the upgrade
        "srht-paste 1.0-1 rc ",  # removed before and after: left alone
        "srht-lists  un ",  # never installed
    )

    assert result.returncode == 0, result.stderr
    debs = f"{kept}/srht-core_1.0-1_all.deb {kept}/srht-meta_1.0-1_all.deb"
    removes = "srht-deps-extra- srht-todo- srht-half-"
    # Asked first, then done in one run: downgrades and removals together.
    assert apt.calls() == [
        f"apt-get -s -qq install OPTIONS {debs} {removes}",
        f"apt-get install -y -qq OPTIONS {debs} {removes}",
        "dpkg --purge srht-deps-extra srht-half",
    ]
    # What was removed, then the service's version (the machine has no srht-meta).
    assert result.stdout == (
        "removed srht-deps-extra 2.0-1\n"
        "removed srht-todo 2.0-1\n"
        "removed srht-half 2.0-1\n"
        "version \n"
    )


def test_putting_back_changes_nothing_when_apt_would_remove_another_package(
    tmp_path: Path,
) -> None:
    kept = kept_before(tmp_path, "srht-core 1.0-1 ii", "srht-meta 1.0-1 ii")
    plan = [
        "Inst srht-core [2.0-1] (1.0-1 local [all])",
        "Remv srht-deps-extra [2.0-1]",
        "Remv libextra1:amd64 [3.1-2]",
        "Remv srht-meta [2.0-1]",
    ]
    apt = Apt(tmp_path, plan)

    result = apt.put_back(
        kept, "srht-core 2.0-1 ii ", "srht-meta 2.0-1 ii ", "srht-deps-extra 2.0-1 ii "
    )

    assert result.returncode == 1
    # Not a package the upgrade installed: named, and apt is only asked.
    assert result.stderr == (
        "apt would have to remove libextra1 srht-meta to put the previous srht packages "
        "back; only the srht packages the upgrade installed are removed, so nothing was "
        "changed\n"
    )
    assert [call.split(" install")[0] for call in apt.calls()] == ["apt-get -s -qq"]
    assert result.stdout == ""


def test_putting_back_removes_nothing_when_the_upgrade_installed_no_package(
    tmp_path: Path,
) -> None:
    debs = "{0}/srht-core_1.0-1_all.deb {0}/srht-meta_1.0-1_all.deb"
    now = ("srht-core 2.0-1 ii ", "srht-meta 2.0-1 ii ")
    for before in (("srht-core 1.0-1 ii", "srht-meta 1.0-1 ii"), ()):
        # The second: kept by a version that kept no list.
        folder = tmp_path / str(len(before))
        folder.mkdir()
        kept = kept_before(folder, *before)
        apt = Apt(folder, ["Inst srht-core [2.0-1] (1.0-1 local [all])"])

        result = apt.put_back(kept, *now)

        assert result.returncode == 0, result.stderr
        # apt may not remove anything at all.
        assert apt.calls() == [
            f"apt-get -s -qq install OPTIONS {debs.format(kept)}",
            f"apt-get install -y -qq --no-remove OPTIONS {debs.format(kept)}",
        ]
        assert result.stdout == "version \n"


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


def test_the_report_names_the_packages_the_rollback_removed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from srht_installer.rollback import Failure, RolledBack, report

    failed = Failure("meta", "alpha", "health check", "meta answered 503")
    code = (
        "its code (srht-meta 1.0-1, with the host's other srht packages; removed, as the "
        "upgrade installed them: srht-extra 2.0-1, srht-paste 2.0-1) on alpha"
    )
    rolled = [
        RolledBack("meta", [failed], restored=[code], answers=True),
        # Added to the site in the same run: its package went, nothing was started.
        RolledBack(
            "paste",
            [],
            restored=[code.replace("meta", "paste", 1)],
            missing=["its database (srht-backup-1.tar holds none of it)"],
            answers=True,
            removed_from=["alpha"],
            started=False,
            shares="the host's srht packages",
        ),
    ]

    note = report(rolled)

    # (the lines as said, whatever the width of the terminal wrapped)
    said = " ".join(capsys.readouterr().err.split())
    assert f" Rolled back meta: {code}. meta answers again on its previous code." in said
    assert said.endswith(
        f" Rolled back paste: {code.replace('meta', 'paste', 1)}."
        " Not put back: its database (srht-backup-1.tar holds none of it)."
        " paste is not installed on alpha any more: the upgrade installed it there."
    )
    assert note.startswith("The upgrade rolled back meta, paste;")
