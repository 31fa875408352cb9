"""Development configs: ``srht config init --dev`` and what ``srht up``
writes when it finds no config.

A development config is a real config (it passes ``srht config check``):
fresh secrets, SQLite databases and the mail outbox under a data folder
beside the file, every service on its own loopback port.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .config import dump_ini
from .keys import generate_keys
from .plugins import PluginHost

__all__ = ["write_dev_config"]


def dev_config_text(
    plugins: PluginHost,
    services: list[str],
    *,
    data_dir: str = "srht-data",
    host: str = "127.0.0.1",
) -> str:
    keys = generate_keys()
    data: dict[str, dict[str, object]] = {
        "srht": {
            "site-name": "srht (development)",
            "site-owner-name": "Developer",
            "site-owner-email": "admin@localhost.localdomain",
            "environment": "development",
            "global-domain": host,
            "service-key": keys.service_key,
            "network-key": keys.network_key,
            "data-dir": data_dir,
        },
        "mail": {"smtp-host": "", "smtp-from": "srht@localhost.localdomain"},
        "webhooks": {"private-key": keys.webhook_private_key},
    }
    used: set[int] = set()
    schemas, _problems = plugins.config_schemas()
    for name in services:
        record = plugins.get(name)
        assert record is not None and record.info is not None
        port = record.info.default_port
        while port in used:
            port += 1
        used.add(port)
        data[name] = {
            "origin": f"http://{host}:{port}",
            "bind": f"{host}:{port}",
            "workers": 1,
        }
        # The service's own required keys: a fresh secret, or its documented
        # example; and what it says a developer's machine wants.
        for key in schemas[name].keys:
            if key.dev is not None and key.name not in data[name]:
                data[name][key.name] = key.dev
            if not key.required or key.name in data[name]:
                continue
            if key.secret:
                data[name][key.name] = secrets.token_urlsafe(32)
            elif key.example:
                data[name][key.name] = key.example
    header = (
        "# A development config written by srht: secrets are fresh and local to\n"
        "# this file. Not for production: see config.example.ini.\n\n"
    )
    return header + dump_ini(data)


def write_dev_config(
    path: str | os.PathLike[str],
    plugins: PluginHost,
    services: list[str] | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write a development config for ``services`` (default: every installed
    service) to ``path``, readable by its owner only.

    :raises FileExistsError: when ``path`` exists and ``force`` is false.
    :raises LookupError: naming a service that is not installed.
    """
    target = Path(path)
    installed = [r.name for r in plugins.services()]
    chosen = installed if services is None else services
    unknown = [s for s in chosen if s not in installed]
    if unknown:
        raise LookupError(
            f"not installed: {', '.join(unknown)} (installed: {', '.join(installed) or 'none'})"
        )
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dev_config_text(plugins, chosen)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(target, 0o600)
    return target
