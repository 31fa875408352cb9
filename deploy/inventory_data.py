"""The pyinfra inventory of a site: hosts with their SSH settings, grouped
by role. ``inventory.py`` (the file pyinfra loads) is a thin wrapper."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache, lru_cache
from typing import Any

from .model import Site

__all__ = ["current_site", "host_data", "inventory_groups"]


@lru_cache(maxsize=4)
def current_site(path: str | None = None) -> Site:
    """The site of the config at ``path`` (default: found as usual), read
    once per process: the inventory and the deploy file share it."""
    return Site.from_config(path or os.environ.get("SRHT_CONFIG") or None)


def host_data(site: Site, name: str) -> dict[str, Any]:
    """pyinfra's connection settings for host ``name``."""
    target = site.topology.hosts[name]
    data: dict[str, Any] = {
        "ssh_hostname": target.address,
        "ssh_port": target.port,
        "ssh_user": target.user,
        "srht_host": name,
    }
    deploy = site.config
    key = deploy.get("deploy", "ssh-key")
    if key:
        data.update(ssh_key=key, ssh_allow_agent=False, ssh_look_for_keys=False)
    known = deploy.get("deploy", "ssh-known-hosts")
    if known:
        data["ssh_known_hosts_file"] = known
    data["ssh_strict_host_key_checking"] = deploy.get(
        "deploy", "ssh-host-key-checking", "accept-new"
    )
    proxy = deploy.get("deploy", "ssh-proxy-command")
    if proxy:
        data["ssh_config_file"] = proxy_config_file(proxy)
    if target.user != "root":
        data["_sudo"] = True
    return data


@cache
def proxy_config_file(command: str) -> str:
    """An ssh_config file (private, removed when this process exits) that
    sends every host through ``command`` (``[deploy] ssh-proxy-command``):
    pyinfra's paramiko client and OpenSSH (``-F``) both read it."""
    _cooperative_proxy()
    folder = tempfile.mkdtemp(prefix="srht-ssh-")  # mode 0700
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "ssh_config")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(f"Host *\n    ProxyCommand {command}\n")
    return path


def inventory_groups(site: Site | None = None) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``{group: [(host, data), ...]}`` for a pyinfra inventory."""
    site = site or current_site()
    hosts = {name: (name, host_data(site, name)) for name in site.topology.hosts}
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {"srht": list(hosts.values())}
    for placement in site.topology.placements():
        roles = [r.split(":", 1)[1] if ":" in r else r for r in placement.roles]
        for role in dict.fromkeys(roles):
            group = role.replace("-", "_")
            groups.setdefault(group, []).append(hosts[placement.name])
    return groups


def _cooperative_proxy() -> None:
    """Make paramiko's ProxyCommand work under pyinfra's gevent, which the
    CLI patches the standard library for after paramiko is imported:

    - ``paramiko.proxy`` took the blocking ``select`` at import; in the
      transport's greenlet it starves the greenlet driving the handshake
      (every connection hung at "Connecting to hosts"): it gets gevent's;
    - its ``send`` writes once to the command's standard input, a gevent
      pipe that takes part of a large write and says how much: the rest
      was dropped, the stream broke and uploads failed ("Broken pipe" on a
      wheelhouse): ``send`` writes until all is written.
    """
    try:
        from gevent import monkey
    except ImportError:
        return
    if not monkey.is_module_patched("select"):
        return
    import select

    import paramiko.proxy
    from paramiko.ssh_exception import ProxyCommandFailure

    def send(self: Any, content: bytes) -> int:
        view, written = memoryview(content), 0
        while written < len(view):
            try:
                written += self.process.stdin.write(view[written:]) or 0
            except OSError as error:
                raise ProxyCommandFailure(
                    " ".join(self.cmd), error.strerror or str(error)
                ) from None
        return written

    paramiko.proxy.select = select.select  # type: ignore[attr-defined]
    paramiko.proxy.ProxyCommand.send = send  # type: ignore[method-assign,assignment]
