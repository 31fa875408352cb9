"""The test hosts' network: one bridge with a private /24 (``.1`` on the
bridge, in this machine's namespace), and per host a network namespace with
a veth onto the bridge. No default route, no forwarding: hosts reach only
that /24, and this machine reaches them through the bridge.

Every name starts with the slot's prefix (``srht-e2e-`` in slot 0, see
:mod:`.slot`); :func:`clean` removes leftovers of an
earlier run by those exact names, never anything else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .slot import PREFIX, SUBNET

BRIDGE = PREFIX + "br"
GATEWAY = str(SUBNET.network_address + 1)
#: Interface names are at most 15 characters: the prefix leaves 6 for a host.
MAX_NAME = 15 - len(PREFIX)


def namespace(name: str) -> str:
    return PREFIX + name


def address(index: int) -> str:
    """The address of the ``index``-th host (0-based): .10, .11, ..."""
    return str(SUBNET.network_address + 10 + index)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def create_bridge() -> None:
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def create_host_network(name: str, host_address: str) -> None:
    """A namespace ``srht-e2e-NAME`` whose ``eth0`` has ``host_address``,
    plugged into the bridge by the veth ``srht-e2e-NAME``."""
    if len(name) > MAX_NAME:
        raise ValueError(f"test host name {name!r} is longer than {MAX_NAME} characters")
    ns = namespace(name)
    _ip("netns", "add", ns)
    _ip("link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip("link", "set", ns, "master", BRIDGE, "up")
    _ip("-n", ns, "addr", "add", f"{host_address}/{SUBNET.prefixlen}", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "link", "set", "lo", "up")


def set_link(name: str, up: bool) -> None:
    """Plug a host's cable in or out (its veth on the bridge side)."""
    _ip("link", "set", namespace(name), "up" if up else "down")


def remove_host_network(name: str) -> None:
    ns = namespace(name)
    # Deleting the namespace destroys its veth, and with it the peer.
    if Path("/run/netns", ns).exists():
        _ip("netns", "del", ns, check=False)
    _ip("link", "del", ns, check=False)


def remove_bridge() -> None:
    _ip("link", "del", BRIDGE, check=False)


def clean(names: list[str]) -> None:
    """Remove what an interrupted run may have left, by exact name."""
    for name in names:
        remove_host_network(name)
    remove_bridge()
