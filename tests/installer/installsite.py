"""What the installer suite's tests share besides fixtures: the test
domain, where its names point, and the answers file of the site."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

DOMAIN = "inst.test"
HOSTS = ["gamma", "delta"]
#: Where each service's name points, as the site's DNS would say.
NAMES = {f"meta.{DOMAIN}": "gamma", f"paste.{DOMAIN}": "delta", f"todo.{DOMAIN}": "delta"}
ADMIN_PASSWORD = "a long enough password"


def answers_toml(hosts: Any, /, **override: str | None) -> str:
    """An answers file for the two test hosts (``None`` drops a key)."""
    values: dict[str, str | None] = {
        "domain": f'"{DOMAIN}"',
        "site-name": '"srht installer e2e"',
        "owner-email": f'"owner@{DOMAIN}"',
        "services": '["meta", "paste"]',
        "ssh-key": f'"{hosts.key}"',
        "ssh-known-hosts": '"/dev/null"',
        "ssh-host-key-checking": '"no"',
        "hosts": f'["gamma=root@{hosts.address("gamma")}", "delta=root@{hosts.address("delta")}"]',
        "placement": '"meta=gamma, paste=delta"',
        "postgresql-host": '"gamma"',
        "redis-host": '"gamma"',
        "tls": '"self-signed"',
        "registration": '"closed"',
        "admin-username": '"alice"',
        "admin-email": f'"alice@{DOMAIN}"',
        "admin-password-file": '"admin-password"',
    }
    values.update(override)
    return "".join(f"{key} = {value}\n" for key, value in values.items() if value is not None)


#: ``srht_install(*args, timeout=..., cwd=...)``: the fixture's runner.
Installer = Callable[..., subprocess.CompletedProcess[str]]
