"""The addresses of lists: ``~alice/widget-devel@DOMAIN`` to post, and
``~alice/widget-devel+COMMAND@DOMAIN`` for what a list does by mail
(``subscribe``, ``unsubscribe``, ``confirm-TOKEN``; ``bounces`` is where
copies sent on come back from when they cannot be delivered)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from srht_core import Config, current_service

from .models import LIST_NAME, MailingList

__all__ = ["Recipient", "list_address", "parse_recipient", "posting_domain"]

_LOCAL = re.compile(
    r"^~(?P<owner>[a-z_][a-z0-9_-]{0,63})/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127}?)"
    r"(?:\+(?P<command>[a-z]+(?:-[A-Za-z0-9_-]{1,64})?))?$"
)
COMMANDS = ("subscribe", "unsubscribe", "confirm", "bounces")


def posting_domain(config: Config | None = None) -> str:
    """``[lists] posting-domain``, or the host name of ``[lists] origin``
    (an IP address is no mail domain: ``lists.localhost`` then)."""
    config = config or current_service().config
    configured = config.get("lists", "posting-domain")
    if configured:
        return str(configured).strip().lower()
    host = urlsplit(str(config["lists"]["origin"])).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    return "lists.localhost"


def list_address(mailing_list: MailingList, command: str | None = None) -> str:
    local = f"{mailing_list.owner.canonical_name}/{mailing_list.name}"
    if command:
        local += f"+{command}"
    return f"{local}@{posting_domain()}"


@dataclass(frozen=True)
class Recipient:
    """An envelope recipient that names a list here."""

    owner: str
    name: str
    #: ``None`` to post; else one of :data:`COMMANDS`.
    command: str | None
    #: What follows ``confirm-``.
    token: str | None = None


def parse_recipient(address: str, domain: str) -> Recipient | None:
    """The list ``address`` names, or ``None`` when it names none here."""
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or host.lower() != domain:
        return None
    match = _LOCAL.match(local)
    if match is None or not LIST_NAME.match(match["name"]):
        return None
    command, token = match["command"], None
    if command is not None:
        command, _dash, token = command.partition("-")
        if command not in COMMANDS or bool(token) != (command == "confirm"):
            return None
    return Recipient(match["owner"], match["name"], command, token or None)
