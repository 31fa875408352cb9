"""The core's own config sections, and the keys every service section gets.

A plugin declares only what is particular to its service; the keys every
service needs (where it is served, its database, how it runs) are added here
so that they are spelled and checked the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NamedTuple

from .config import (
    Address,
    Boolean,
    Choice,
    Config,
    ConfigProblem,
    DatabaseUrl,
    Email,
    FernetKey,
    Integer,
    Key,
    KeyType,
    List,
    Networks,
    PathValue,
    Secret,
    Section,
    SigningKey,
    Text,
    Url,
)

#: The published secrets of config.example.ini. They pass the type checks so
#: the example checks clean, but `srht config check` warns about them and no
#: service starts with them in production.
EXAMPLE_SERVICE_KEY = "EXAMPLE-ONLY-replace-with-srht-keygen-output"
EXAMPLE_NETWORK_KEY = "RVhBTVBMRS1PTkxZLXJlcGxhY2Utd2l0aC1rZXlnZW4="
EXAMPLE_WEBHOOK_KEY = "RVhBTVBMRS1PTkxZLXJlcGxhY2Utd2l0aC1rZXlnZW4="
EXAMPLE_SECRETS = frozenset({EXAMPLE_SERVICE_KEY, EXAMPLE_NETWORK_KEY, EXAMPLE_WEBHOOK_KEY})

SRHT = Section(
    "srht",
    required=True,
    description="Site-wide settings shared by every service.",
    keys=(
        Key(
            "site-name",
            Text(),
            default="srht",
            example="example.org forge",
            description="The site's name, shown in every page's header and in mail.",
        ),
        Key(
            "site-owner-name",
            Text(),
            default="",
            example="Jane Doe",
            description="Who runs this site, shown in the footer.",
        ),
        Key(
            "site-owner-email",
            Email(),
            example="admin@example.org",
            description="Where users can reach the site's owner.",
        ),
        Key(
            "environment",
            Choice(("production", "development")),
            default="production",
            example="production",
            description="development relaxes cookie security for plain-HTTP local runs "
            "and shows tracebacks in the log.",
        ),
        Key(
            "global-domain",
            Text(),
            required=True,
            example="example.org",
            description="The domain under which every service lives; the login cookie "
            "is set on it.",
        ),
        Key(
            "service-key",
            Secret(),
            required=True,
            secret=True,
            example=EXAMPLE_SERVICE_KEY,
            description="Random secret from which each service derives its session and CSRF keys.",
        ),
        Key(
            "network-key",
            FernetKey(),
            required=True,
            secret=True,
            example=EXAMPLE_NETWORK_KEY,
            description="Fernet key that seals the login cookie and internal "
            "service-to-service credentials.",
        ),
        Key(
            "internal-networks",
            Networks(),
            default=None,
            example="127.0.0.0/8, ::1/128",
            description="Networks from which internal API calls and metrics scrapes are "
            "accepted. Defaults to loopback only.",
        ),
        Key(
            "data-dir",
            PathValue(),
            default="/var/lib/srht",
            example="/var/lib/srht",
            description="Where services keep files (SQLite databases, mail outbox, "
            "repositories) unless a key of theirs says otherwise. Relative "
            "to the config file's folder when relative.",
        ),
        Key(
            "templates-dir",
            PathValue(),
            default="/etc/srht/templates",
            example="/etc/srht/templates",
            description="Templates here override the core's and the services' own, "
            "by the same relative name.",
        ),
        Key(
            "install-method",
            Choice(("venv", "distro")),
            default="venv",
            example="venv",
            description="How `srht deploy` installs srht on the hosts: venv, a virtualenv "
            "under /opt/srht from a wheelhouse built on the deploying machine; "
            "distro, the distribution's packages (srht-core, srht-<service>; "
            "see packaging/README.md) from [deploy] apt-packages or "
            "apt-source, with /usr/bin/srht and the packaged systemd units.",
        ),
        Key(
            "broker",
            Url(schemes=("redis", "rediss")),
            default=None,
            example="redis://127.0.0.1:6379/0",
            description="Celery broker for background jobs. Empty: jobs are run by "
            "`srht worker` straight from each service's database "
            "(the embedded mode of `srht up`).",
        ),
    ),
)

MAIL = Section(
    "mail",
    description="Outgoing mail. Without smtp-host, messages are written to an outbox "
    "folder instead of being sent (for development).",
    keys=(
        Key(
            "smtp-host",
            Text(),
            default=None,
            example="mail.example.org",
            description="SMTP server. Empty: write messages to outbox-dir.",
        ),
        Key(
            "smtp-port",
            Integer(min=1, max=65535),
            default=587,
            example="587",
            description="SMTP port.",
        ),
        Key(
            "smtp-encryption",
            Choice(("starttls", "tls", "none")),
            default="starttls",
            example="starttls",
            description="How to secure the SMTP connection.",
        ),
        Key(
            "smtp-user",
            Text(),
            default=None,
            example="srht",
            description="SMTP user name, if the server wants one.",
        ),
        Key(
            "smtp-password",
            Text(),
            default=None,
            secret=True,
            example="",
            description="SMTP password.",
        ),
        Key(
            "smtp-from",
            Email(),
            default=None,
            example="srht@example.org",
            description="The From address of mail the site sends.",
        ),
        Key(
            "outbox-dir",
            PathValue(),
            default=None,
            example="",
            description="Where messages go when smtp-host is empty; defaults to DATA-DIR/outbox.",
        ),
    ),
)

WEBHOOKS = Section(
    "webhooks",
    required=True,
    description="Signing of webhooks sent by every service.",
    keys=(
        Key(
            "private-key",
            SigningKey(),
            required=True,
            secret=True,
            example=EXAMPLE_WEBHOOK_KEY,
            description="Ed25519 private key (base64) that signs every webhook payload. "
            "Receivers verify with the public key `srht keygen` prints.",
        ),
        Key(
            "allow-private-targets",
            Boolean(),
            default=False,
            example="no",
            description="Deliver webhooks whose URL a user chose to loopback, private and "
            "link-local addresses too. Off, they are refused (a webhook must "
            "not reach into the site's own network); deliveries between the "
            "site's services, and every delivery in the development "
            "environment, are always allowed.",
        ),
    ),
)


class SshTarget(NamedTuple):
    """A host of ``[deploy] hosts``: its name and how to reach it over SSH."""

    name: str
    user: str
    address: str
    port: int


class HostEntry(KeyType):
    """``NAME=[USER@]ADDRESS[:PORT]``: a host's name and how to reach it over SSH
    (user ``root`` and port 22 unless given; an IPv6 address goes in brackets)."""

    label = "NAME=[USER@]ADDRESS[:PORT]"
    _pattern = re.compile(
        r"^(?P<name>[a-z0-9][a-z0-9-]*)=(?:(?P<user>[^@\s]+)@)?"
        r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<address>[^:@\s\[\]]+))"
        r"(?::(?P<port>\d+))?$"
    )

    def parse(self, raw: str) -> SshTarget:
        match = self._pattern.match(raw.strip())
        if not match:
            raise ValueError(
                f"not NAME=[USER@]ADDRESS[:PORT] (a lower-case name, then "
                f"where to reach it over SSH): {raw!r}"
            )
        port = int(match.group("port") or 22)
        if not 0 < port < 65536:
            raise ValueError(f"port out of range in {raw!r}")
        return SshTarget(
            match.group("name"),
            match.group("user") or "root",
            match.group("v6") or match.group("address"),
            port,
        )

    def format(self, value: object) -> str:
        if not isinstance(value, SshTarget):
            return super().format(value)
        address = f"[{value.address}]" if ":" in value.address else value.address
        port = "" if value.port == 22 else f":{value.port}"
        return f"{value.name}={value.user}@{address}{port}"


class SshHost(KeyType):
    """``[USER@]ADDRESS[:PORT]``: one host outside ``[deploy] hosts`` reached
    over SSH (user ``root`` and port 22 unless given), as an :class:`SshTarget`
    named ``host``."""

    label = "[USER@]ADDRESS[:PORT]"

    def parse(self, raw: str) -> SshTarget:
        try:
            return HostEntry().parse("host=" + raw.strip())
        except ValueError:
            raise ValueError(
                f"not [USER@]ADDRESS[:PORT] (where to reach one host over SSH): {raw!r}"
            ) from None

    def format(self, value: object) -> str:
        if not isinstance(value, SshTarget):
            return super().format(value)
        return HostEntry().format(value).split("=", 1)[1]


class PrivateNetwork(KeyType):
    """A private IPv4 network of 256 addresses (``A.B.C.0/24``), as a string."""

    label = "private IPv4 /24"

    def parse(self, raw: str) -> str:
        import ipaddress

        try:
            network = ipaddress.IPv4Network(raw.strip())
        except ValueError as error:
            raise ValueError(f"not an IPv4 network A.B.C.0/24: {raw!r} ({error})") from None
        if network.prefixlen != 24 or not network.is_private:
            raise ValueError(f"not a private IPv4 /24 (10.x.y.0/24, 192.168.x.0/24...): {raw!r}")
        return str(network)


DEPLOY = Section(
    "deploy",
    description="Where the site runs, for `srht deploy`: the hosts and how to reach them "
    "over SSH, and which of them run PostgreSQL, Redis and nginx. Each "
    "service's own `hosts` key places the service. Only the machine that "
    "deploys reads this section; the hosts' copies of the config leave it out.",
    keys=(
        Key(
            "hosts",
            List(HostEntry()),
            default=None,
            example="alpha=root@192.0.2.10, beta=admin@192.0.2.11:2222",
            description="Every host of the site, as NAME=[USER@]ADDRESS[:PORT], separated "
            "by commas or new lines. The names are what the other keys and "
            "each service's `hosts` refer to. A user other than root needs "
            "password-less sudo.",
        ),
        Key(
            "postgresql-host",
            Text(),
            default=None,
            example="alpha",
            description="The host that runs PostgreSQL: the deploy installs it there and "
            "creates a role and a database per service, reachable only from "
            "the hosts that run that service. A service with an empty "
            "connection-string is given one. Empty: no PostgreSQL is managed; "
            "services use their connection-string as written (or SQLite).",
        ),
        Key(
            "postgresql-existing",
            Boolean(),
            default=False,
            example="no",
            description="yes: PostgreSQL on postgresql-host is yours and already set up "
            "(listening where the services can reach it); the deploy only "
            "creates roles and databases.",
        ),
        Key(
            "redis-host",
            Text(),
            default=None,
            example="alpha",
            description="The host that runs Redis, the broker of background jobs. When "
            "[srht] broker is empty every host's config is given one. Empty: "
            "no Redis; workers take jobs straight from the databases.",
        ),
        Key(
            "redis-existing",
            Boolean(),
            default=False,
            example="no",
            description="yes: Redis on redis-host is yours and already set up; the deploy "
            "leaves it alone (write [srht] broker yourself).",
        ),
        Key(
            "nginx-hosts",
            List(),
            default=None,
            example="alpha, beta",
            description="Hosts that run nginx in front of the services, one virtual host "
            "per service at its origin. An nginx host fronts the services "
            "that run on it, balancing across every host that runs them; a "
            "service on no nginx host is fronted by all of them. Empty: every "
            "host that runs a service.",
        ),
        Key(
            "service-names",
            Choice(("hosts-file", "dns")),
            default="hosts-file",
            example="hosts-file",
            description="How the hosts find the services by their origins' names when "
            "the services call each other (every service signs its users in "
            "through meta): hosts-file: every host that runs a service gets each "
            "origin's name in /etc/hosts (a block the deploy keeps, after your "
            "own lines), pointing at an nginx host that serves it (its address "
            "in `hosts`, when that is an IP address); dns: the hosts' resolver "
            "alone. Either way the deploy checks that each of those hosts "
            "reaches meta before it reports success.",
        ),
        Key(
            "certificates",
            Choice(("self-signed", "acme")),
            default="self-signed",
            example="self-signed",
            description="How HTTPS origins get certificates: self-signed, from a site "
            "authority derived from [srht] service-key that every host trusts "
            "(import its certificate, `srht deploy ca`, in your browser), or "
            "acme: from an ACME server, Let's Encrypt unless acme-server says "
            "otherwise, through certbot's webroot (the server must reach the "
            "hosts by their origins' names).",
        ),
        Key(
            "acme-email",
            Email(),
            default=None,
            example="admin@example.org",
            description="Contact address for the ACME account when certificates = acme.",
        ),
        Key(
            "acme-server",
            Url(),
            default=None,
            example="",
            description="With certificates = acme: the directory URL of the ACME server "
            "certbot asks (a private one: step-ca, a test server). Empty: "
            "Let's Encrypt.",
        ),
        Key(
            "acme-ca-file",
            PathValue(),
            default=None,
            example="",
            description="With certificates = acme: a PEM file, on the machine that "
            "deploys, of certificate authorities every host trusts besides "
            "the system's: a private ACME server's own, and the one its "
            "certificates chain to. Empty: the system's only.",
        ),
        Key(
            "apt-packages",
            PathValue(),
            default=None,
            example="",
            description="With [srht] install-method = distro: a folder of .deb files on "
            "this machine (packaging/build-debs makes them) that the deploy "
            "publishes to each host as a local apt repository.",
        ),
        Key(
            "apt-source",
            Text(),
            default=None,
            example="",
            description="With [srht] install-method = distro: the apt source line of a "
            "repository holding srht's packages, instead of apt-packages "
            "(`deb [signed-by=KEYRING] URL SUITE COMPONENT`).",
        ),
        Key(
            "ssh-key",
            PathValue(),
            default=None,
            example="",
            description="Private key for SSH to every host. Empty: the SSH agent and your "
            "default keys.",
        ),
        Key(
            "ssh-known-hosts",
            PathValue(),
            default=None,
            example="",
            description="known_hosts file to check the hosts' keys against. Empty: "
            "~/.ssh/known_hosts.",
        ),
        Key(
            "ssh-host-key-checking",
            Choice(("yes", "accept-new", "no")),
            default="accept-new",
            example="accept-new",
            description="yes: only known host keys; accept-new: remember a new host's key "
            "on first contact; no: never check (throwaway test hosts only).",
        ),
        Key(
            "ssh-proxy-command",
            Text(),
            default=None,
            example="",
            description="For hosts reached through a jump host (a bastion): the command "
            "whose input and output are the connection to a host, as OpenSSH's "
            "ProxyCommand (%h: the host's address, %p: its port; no shell syntax), e.g. "
            "`ssh -W %h:%p admin@bastion.example.org`. The deploy (pyinfra) and the "
            "installer's own SSH both go through it. Empty: straight to each host.",
        ),
    ),
)


class Calendar(KeyType):
    """A systemd ``OnCalendar=`` expression (``systemd.time(7)``): a shorthand
    (``daily``, ``hourly``, ``weekly``, ...) or ``[WEEKDAYS] [DATE] [TIME]
    [TIMEZONE]`` with ``*``, lists (``,``), ranges (``..``) and repetitions
    (``/``). Checked here without systemd, so ``srht config check`` catches a
    typo on any machine."""

    label = "systemd calendar expression"
    SHORTHANDS = frozenset(
        [
            "minutely",
            "hourly",
            "daily",
            "monthly",
            "weekly",
            "yearly",
            "annually",
            "quarterly",
            "semiannually",
        ]
    )
    _DAYS = "(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
    _WEEKDAYS = re.compile(rf"^{_DAYS}(?:\.\.{_DAYS})?(?:,{_DAYS}(?:\.\.{_DAYS})?)*$", re.I)
    _VALUE = r"(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?"
    _COMPONENT = rf"{_VALUE}(?:,{_VALUE})*"
    _DATE = re.compile(rf"^(?:{_COMPONENT}-)?{_COMPONENT}-{_COMPONENT}$")
    _TIME = re.compile(rf"^{_COMPONENT}:{_COMPONENT}(?::{_COMPONENT}(?:\.\d+)?)?$")
    _ZONE = re.compile(r"^(?:UTC|[A-Z][A-Za-z_+-]*(?:/[A-Za-z0-9_+-]+)*)$")

    def parse(self, raw: str) -> str:
        text = " ".join(raw.split())
        words = text.split(" ") if text else []
        if len(words) > 1 and self._ZONE.match(words[-1]):
            words = words[:-1]
        rest = list(words)
        if len(words) == 1 and words[0].lower() in self.SHORTHANDS:
            rest = []
        else:
            if rest and self._WEEKDAYS.match(rest[0]):
                rest = rest[1:]
            if rest and ":" not in rest[0] and self._DATE.match(rest[0]):
                rest = rest[1:]
            if rest and self._TIME.match(rest[0]):
                rest = rest[1:]
        problem = not words
        if problem or rest:
            raise ValueError(
                f"not a systemd calendar expression: {raw!r}; write a shorthand "
                "(daily, hourly, weekly) or [WEEKDAYS] [YEAR-MONTH-DAY] [HOUR:MINUTE], "
                "such as '*-*-* 03:00' or 'Mon..Fri 02:30' (see `man systemd.time`, "
                "or check it with `systemd-analyze calendar`)"
            )
        return text


class AgeRecipient(KeyType):
    """An age public key (``age1`` and 58 more letters and digits, as
    ``age-keygen`` prints it)."""

    label = "age public key"
    _pattern = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")

    def parse(self, raw: str) -> str:
        value = raw.strip()
        if not self._pattern.match(value):
            hint = (
                "that is the private key: give the public one (age-keygen -y KEYFILE prints it), "
                "and keep the private key off the servers"
                if value.upper().startswith("AGE-SECRET-KEY-")
                else "make a key pair with `age-keygen -o backup-key.txt` on a machine of yours "
                "and give its public key here"
            )
            raise ValueError(f"not an age public key (age1...): {hint}")
        import pyrage  # a dependency of srht; only this check needs it in the core

        try:
            pyrage.x25519.Recipient.from_str(value)
        except pyrage.RecipientError:
            raise ValueError(
                "not a valid age public key (its checksum is wrong): copy it again from "
                "`age-keygen -y KEYFILE`"
            ) from None
        return value


class SshHostKey(KeyType):
    """An SSH server's public host key, ``TYPE BASE64`` (a line of
    ``ssh-keyscan``'s output, whose leading host name may stay)."""

    label = "SSH host key"
    TYPES = (
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    )

    def parse(self, raw: str) -> str:
        fields = raw.split()
        if len(fields) == 3 and fields[0] not in self.TYPES:
            fields = fields[1:]  # ssh-keyscan's "ADDRESS TYPE KEY"
        hint = (
            "give the off-site host's public host key as `ssh-keyscan -t ed25519 ADDRESS` "
            "prints it (ssh-ed25519 AAAA...), checked with its owner"
        )
        if len(fields) != 2 or fields[0] not in self.TYPES:
            raise ValueError(f"not an SSH host key (TYPE BASE64): {hint}")
        kind, text = fields
        try:
            blob = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the {kind} key is not base64 (cut short?): {hint}") from None
        name = kind.encode()
        if blob[:4] != len(name).to_bytes(4, "big") or blob[4 : 4 + len(name)] != name:
            raise ValueError(f"the key's data is not a {kind} key (cut short?): {hint}")
        return f"{kind} {text}"


BACKUP = Section(
    "backup",
    description="Scheduled backups: a systemd timer on one host of the site takes a "
    "complete backup (every database, every data folder, the config with its "
    "secrets, as `srht-install backup` does), encrypts it with age, writes it "
    "to the destination, reads it back to verify it, and removes the oldest "
    "beyond the limits. A failed or missed backup is red in `srht-install "
    "status` and mailed to the admin. Without this section nothing is "
    "scheduled.",
    keys=(
        Key(
            "schedule",
            Calendar(),
            default="daily",
            example="*-*-* 03:00",
            description="When to back up: a systemd OnCalendar expression (`daily`, "
            "`*-*-* 03:00`, `Mon..Fri 02:30`; see `man systemd.time`), in the "
            "backup host's time zone. A run missed while the host was off is "
            "made up at boot.",
        ),
        Key(
            "host",
            Text(),
            default=None,
            example="alpha",
            description="The host (named in [deploy] hosts, running srht) that takes the "
            "backups. It is given the deploy's SSH key ([deploy] ssh-key): a backup "
            "reads every host of the site. Empty: the PostgreSQL host, else the "
            "first host that runs a service.",
        ),
        Key(
            "destination",
            Text(),
            default="/var/backups/srht",
            example="/var/backups/srht",
            description="Where the archives go: a folder on the backup host (`/PATH`), "
            "on another host of the site, reached over SSH with the deploy's "
            "key (`NAME:/PATH`, NAME from [deploy] hosts), or on a host outside "
            "the site (`ssh://[USER@]ADDRESS[:PORT]/PATH`: a storage box, a NAS, "
            "a friend's server), reached as USER (default root) without sudo, "
            "which must own PATH or be able to create it; it needs only a POSIX "
            "shell, mkdir, cat, ls, mv, rm and sync. Each archive is "
            "srht-backup-DATE.tar.age with a SHA-256 index beside it "
            "(srht-backup-DATE.tar.age.json).",
        ),
        Key(
            "destination-host-key",
            SshHostKey(),
            default=None,
            example="",
            description="With an `ssh://` destination: the off-site host's public host "
            "key, as `ssh-keyscan -t ed25519 ADDRESS` prints it (`ssh-ed25519 "
            "AAAA...`; check it with the host's owner). The backup host accepts "
            "that key alone: a changed key fails the backup, nothing is written, "
            "and the admin is mailed. Required unless [deploy] "
            "ssh-host-key-checking is no.",
        ),
        Key(
            "destination-ssh-key",
            PathValue(),
            default=None,
            example="",
            description="With an `ssh://` destination: a private key file, on the "
            "machine that deploys, that the off-site account authorizes. The "
            "deploy copies it to the backup host, readable by the backup's "
            "service alone. Empty: the deploy's key ([deploy] ssh-key), which "
            "then reaches the off-site account too.",
        ),
        Key(
            "keep-count",
            Integer(min=0),
            default=7,
            example="7",
            description="Keep at most this many archives, removing the oldest. 0: no "
            "limit by count. The newest archive that verified is never removed.",
        ),
        Key(
            "keep-days",
            Integer(min=0),
            default=30,
            example="30",
            description="Remove archives older than this many days. 0: no limit by "
            "age. The newest archive that verified is never removed.",
        ),
        Key(
            "recipient",
            AgeRecipient(),
            default=None,
            example="age1vy7tgtmzvft6szh76gq5wvj0u57k493s4d7w9cm53hdqha2n4cvqkn6qaj",
            description="Encrypt each archive to this age public key (make the pair "
            "with `age-keygen` on a machine of yours; decrypt with `age -d -i "
            "KEYFILE` or `srht-install restore --identity KEYFILE`). The servers "
            "hold only the public key, so none of them can read an old backup. "
            "Give this or passphrase-file.",
        ),
        Key(
            "passphrase-file",
            PathValue(),
            default=None,
            example="",
            description="Instead of recipient: a file, on the machine that deploys, "
            "holding a passphrase; each archive is encrypted with it (age's "
            "scrypt mode; decrypt with `age -d`). The deploy copies it to the "
            "backup host, readable by the backup's service alone, so that host "
            "can read old backups: prefer recipient. The archive is encrypted "
            "in memory in this mode.",
        ),
        Key(
            "online",
            Boolean(),
            default=False,
            example="no",
            description="no: stop the site's daemons while the backup is taken (a "
            "consistent copy, a short outage); yes: keep them running (see "
            "`srht-install backup --online`).",
        ),
        Key(
            "mail-to",
            Email(),
            default=None,
            example="",
            description="Who is mailed when a backup fails or an archive is found "
            "damaged. Empty: [srht] site-owner-email.",
        ),
    ),
)


DRILL = Section(
    "drill",
    description="Restore drills, `srht-install drill`: where it finds the archives, the "
    "throwaway hosts it restores them onto (never the site's own), and how old the last "
    "drill may be before `srht-install status` warns. Only the machine that deploys "
    "reads this section.",
    keys=(
        Key(
            "hosts",
            List(HostEntry()),
            default=None,
            example="",
            description="A throwaway host for each host of the archived site, as "
            "NAME=[USER@]ADDRESS[:PORT] with the archived host's NAME; `--host` on the "
            "command line overrides. The drill installs the site there and removes it "
            "afterwards.",
        ),
        Key(
            "backup-folder",
            PathValue(),
            default=None,
            example="",
            description="The folder of `srht-install backup`'s archives, where a drill "
            "without an ARCHIVE takes the newest. Empty: the current folder.",
        ),
        Key(
            "ssh-key",
            PathValue(),
            default=None,
            example="",
            description="Private key for SSH to the drill hosts. Empty: [deploy] ssh-key.",
        ),
        Key(
            "admin",
            Text(),
            default=None,
            example="",
            description="The account the drill signs in as. Empty: meta's first admin.",
        ),
        Key(
            "admin-password-file",
            PathValue(),
            default=None,
            example="",
            description="A file holding that account's password, so the drill signs in "
            "with it. Empty: the drill sets a password of its own on the throwaway copy "
            "(through meta's reset link) and signs in with that.",
        ),
        Key(
            "max-age",
            Integer(min=1),
            default=30,
            example="30",
            description="Days after which `srht-install status` shows the last drill "
            "in yellow (also when no drill ever ran; red when the last one failed).",
        ),
        Key(
            "identity-file",
            PathValue(),
            default=None,
            example="",
            description="For archives of the scheduled backups (srht-backup-DATE.tar.age, "
            "copied from [backup] destination into backup-folder): the age private key "
            "file of [backup] recipient, to decrypt them with (`--identity` overrides). "
            "The plain archive is written to a private temporary folder and removed "
            "after the drill.",
        ),
        Key(
            "mail-to",
            Email(),
            default=None,
            example="",
            description="Who `srht-install drill --mail` mails the result to (passed or "
            "failed, each check, the time to a working site). Empty: [backup] mail-to, "
            "else [srht] site-owner-email.",
        ),
        Key(
            "machine-host",
            SshHost(),
            default=None,
            example="",
            description="A spare host ([USER@]ADDRESS[:PORT]) on which the drill boots its "
            "own throwaway machines (systemd-nspawn, one per host of the archived site) "
            "when no `--host` and no hosts are given: it installs systemd-container, "
            "mmdebstrap and nftables there if missing, builds a Debian root file system "
            "once (cached in /var/cache/srht-drill), boots the machines on a private "
            "network (machine-network) with NAT out through it, reaches them through it "
            "over SSH, and removes them after the drill. Never one of the site's hosts.",
        ),
        Key(
            "machine-network",
            PrivateNetwork(),
            default="10.213.77.0/24",
            example="10.213.77.0/24",
            description="The private IPv4 /24 of the machines on machine-host: the bridge "
            "takes .1, the machines .2 upwards. Pick one that no network of that host "
            "uses.",
        ),
        Key(
            "machine-boot-timeout",
            Integer(min=5),
            default=120,
            example="120",
            description="Seconds a machine on machine-host has to boot and answer over SSH "
            "before the drill fails.",
        ),
    ),
)


CORE_SECTIONS = (SRHT, MAIL, WEBHOOKS, DEPLOY, BACKUP, DRILL)


def service_base_keys(
    service: str, default_port: int, request_timeout: int = 60
) -> tuple[Key, ...]:
    """The keys every ``[<service>]`` section has, ahead of the service's own."""
    return (
        Key(
            "origin",
            Url(),
            required=True,
            example=f"https://{service}.example.org",
            description="The public URL of this service, without a trailing slash.",
        ),
        Key(
            "connection-string",
            DatabaseUrl(),
            default=None,
            secret=True,
            example=f"postgresql://{service}@localhost/{service}.sr.ht",
            description="SQLAlchemy URL of the service's database. Empty: SQLite at "
            f"DATA-DIR/{service}.db. On PostgreSQL each worker holds up to "
            "three connections (for writes, for reads, and one listening "
            "for changed rows): connect directly or through a pooler in "
            "session mode.",
        ),
        Key(
            "bind",
            Address(),
            default=f"127.0.0.1:{default_port}",
            example=f"127.0.0.1:{default_port}",
            description="Where `srht serve` listens.",
        ),
        Key(
            "workers",
            Integer(min=1, max=256),
            default=2,
            example="2",
            description="gunicorn worker processes for `srht serve`.",
        ),
        Key(
            "timeout",
            Integer(min=5, max=86400),
            default=request_timeout,
            example=str(request_timeout),
            description="Seconds a request may take before its gunicorn worker is "
            "restarted. A transfer that keeps moving (a git clone or push) runs "
            "as long as it needs; one that stalls this long is cut off.",
        ),
        Key(
            "hosts",
            List(),
            default=None,
            example="",
            description="The hosts (named in [deploy] hosts) that run this service; nginx "
            "balances across them. Empty: the host the config is on (for "
            "`srht deploy`, the only host, when there is one).",
        ),
        Key(
            "worker-hosts",
            List(),
            default=None,
            example="",
            description="The hosts that run this service's background worker (`srht "
            "worker`). Empty: the same as hosts.",
        ),
        Key(
            "debug",
            Boolean(),
            default=False,
            example="no",
            description="Flask debug mode. Never on in production.",
        ),
    )


def example_secrets_in_use(config: Config) -> list[ConfigProblem]:
    """Secrets of ``config`` that are still the published example values."""
    problems = []
    for name, raw in config.raw.items():
        for key, value in raw.values.items():
            if value.value in EXAMPLE_SECRETS:
                problems.append(
                    ConfigProblem(
                        config.path,
                        value.line,
                        name,
                        key,
                        "is the published example value; generate your own with `srht keygen`",
                    )
                )
    return problems
