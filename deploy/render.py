"""The files the deploy writes, as text: systemd units, nginx virtual
hosts, PostgreSQL's host-based access and Redis's settings. Plain functions
of their inputs, so they are tested without a host and a re-run renders the
same bytes.
"""

from __future__ import annotations

import ipaddress

from .model import CONFIG, GROUP, VENV

__all__ = ["nginx_vhost", "pg_hba", "redis_conf", "runner_unit", "unit"]

HEADER = "# Written by `srht deploy`; changes made here are overwritten.\n"
#: nginx's gzip level for text answers: most of level 9's saving at a
#: fraction of its CPU (the page budget of issue 16 is measured at it).
GZIP_LEVEL = 5
#: What nginx compresses besides text/html (always, once gzip is on).
GZIP_TYPES = (
    "text/css",
    "text/plain",
    "text/xml",
    "application/json",
    "application/problem+json",
    "application/javascript",
    "application/xml",
    "application/atom+xml",
    "application/rss+xml",
    "image/svg+xml",
)


#: What every srht unit may not do: the services need their own files, the
#: network and child processes (git, gunicorn's workers), nothing else. Each
#: line is safe for what runs under them (git's hooks, Celery, gunicorn's
#: worker files in the private /tmp); the deploy tests run under them.
HARDENING = (
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "CapabilityBoundingSet=",
    "SystemCallArchitectures=native",
)


def unit(
    description: str,
    user: str,
    command: str,
    *,
    after: list[str] | None = None,
    paths: list[str] | None = None,
    bin_dir: str = f"{VENV}/bin",
    header: str = HEADER,
    shared_paths: bool = False,
) -> str:
    """A systemd service running ``command`` as ``user`` with the site's
    config, restarted on failure, logging to the journal, hardened
    (:data:`HARDENING`): the whole file system is read-only but ``paths``
    (the service's state), ``/tmp`` is its own, and nothing is written
    under the install prefix (no bytecode either: it is compiled at
    install time).

    :param bin_dir: first on the ``PATH`` (the virtualenv's, or ``/usr/bin``
        for distribution packages).
    :param header: the comment on top (packaged units say where they come from).
    :param shared_paths: another account (an SSH login, see
        ``HostNeeds.login_users``) works in ``paths`` too: they are setgid
        folders, and what the service makes there must be setgid as well
        (git's shared repositories), so ``RestrictSUIDSGID`` is left out.

    .. versionchanged:: 0.1
        ``ProtectSystem=strict`` and the rest of :data:`HARDENING`;
        ``bin_dir`` and ``header``.
    """
    after_line = " ".join(["network-online.target", *(after or [])])
    search = dict.fromkeys([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"])
    lines = [
        header.rstrip(),
        "[Unit]",
        f"Description={description}",
        f"After={after_line}",
        "Wants=network-online.target",
        "",
        "[Service]",
        f"User={user}",
        f"Group={user}",
        f"SupplementaryGroups={GROUP}",
        f"Environment=SRHT_CONFIG={CONFIG}",
        f"Environment=PATH={':'.join(search)}",
        "Environment=PYTHONDONTWRITEBYTECODE=1",
        f"ExecStart={command}",
        "Restart=on-failure",
        "RestartSec=2",
        "KillMode=mixed",
        "TimeoutStopSec=30",
        *(line for line in HARDENING if not (shared_paths and line == "RestrictSUIDSGID=yes")),
    ]
    if paths:
        lines.append(f"ReadWritePaths={' '.join(dict.fromkeys(paths))}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def runner_unit(
    command: str,
    directory: str,
    *,
    bin_dir: str = f"{VENV}/bin",
    header: str = HEADER,
) -> str:
    """builds' job runner (``srht builds runner``): it starts containers, so
    it runs as root, with what systemd can still take away taken away. Its
    comments say why each privilege the services give up stays.

    :param directory: its folder (``[builds] runner-dir``): images and jobs.
    """
    search = dict.fromkeys([bin_dir, "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    lines = [
        header.rstrip(),
        "# builds' runner: runs jobs in throwaway systemd-nspawn containers (docs/builds.md).",
        "[Unit]",
        "Description=srht builds (Builds): job runner",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "# root: it mounts each job's overlay and tmpfs, makes its network namespace,",
        "# maps its users to an unprivileged range and starts systemd-nspawn. Root in",
        "# a job is never root here (uid-base).",
        "User=root",
        f"Environment=SRHT_CONFIG={CONFIG}",
        f"Environment=PATH={':'.join(search)}",
        "Environment=PYTHONDONTWRITEBYTECODE=1",
        f"Environment=HOME={directory}",
        f"ExecStart={command}",
        "Restart=on-failure",
        "RestartSec=5",
        "# On SIGTERM it stops its containers and tells the service; then the rest goes.",
        "KillMode=mixed",
        "TimeoutStopSec=60",
        "# Each job gets a control group below the runner's (memory, CPU, processes),",
        "# so the subtree is the runner's (cgroup v2), and ProtectControlGroups stays off.",
        "Delegate=yes",
        "# Read-only system; it writes its folder (images, jobs), /run (network",
        "# namespaces, nspawn's state) and its own /tmp (image builds).",
        "ProtectSystem=strict",
        f"ReadWritePaths={directory} /run",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "# Left out, on purpose: NoNewPrivileges (inherited by the containers, it",
        "# would break sudo in jobs), RestrictSUIDSGID (images hold setuid programs),",
        "# PrivateDevices, ProtectKernelModules and ProtectKernelTunables (nspawn",
        "# needs devices, overlay and veth, and sets up /proc/sys), RestrictNamespaces",
        "# (containers are namespaces), an empty CapabilityBoundingSet (root's work),",
        "# and the seccomp filters (ProtectHostname, LockPersonality,",
        "# SystemCallArchitectures, RestrictRealtime): jobs inherit them, and nspawn",
        "# sets the container's host name.",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def nginx_vhost(
    service: str,
    hostname: str,
    *,
    https: bool,
    port: int,
    upstreams: list[str],
    certificate: tuple[str, str] | None,
    static_dir: str | None,
    acme_root: str,
    max_body: str = "64m",
) -> str:
    """One virtual host: ``hostname`` proxied to ``upstreams`` (balanced),
    static files from ``static_dir`` when the host has them, text answers
    gzip-compressed, HTTP sent to HTTPS (except ACME challenges) when
    ``https``."""
    name = "srht_" + service.replace("-", "_")
    out = [HEADER, f"upstream {name} {{"]
    out += [f"    server {upstream};" for upstream in upstreams]
    out += ["    keepalive 8;", "}", ""]
    proxy = [
        "    client_max_body_size " + max_body + ";",
        # Text answers (pages, stylesheets, JSON) go out compressed; packs,
        # archives and images are compressed already and are not listed.
        "    gzip on;",
        f"    gzip_comp_level {GZIP_LEVEL};",
        "    gzip_min_length 256;",
        "    gzip_proxied any;",
        "    gzip_vary on;",
        f"    gzip_types {' '.join(GZIP_TYPES)};",
        "    location = /healthz { proxy_pass http://" + name + "; proxy_set_header Host $host; }",
    ]
    if static_dir:
        proxy += [
            "    location /static/ {",
            f"        alias {static_dir}/;",
            "        expires 7d;",
            "        add_header Cache-Control public;",
            "    }",
        ]
    proxy += [
        "    location / {",
        f"        proxy_pass http://{name};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_read_timeout 120s;",
        "    }",
    ]
    challenge = [f"    location /.well-known/acme-challenge/ {{ root {acme_root}; }}"]
    if https:
        out += [
            "server {",
            "    listen 80;",
            "    listen [::]:80;",
            f"    server_name {hostname};",
            *challenge,
            "    location / { return 301 https://$host$request_uri; }",
            "}",
            "",
        ]
        if certificate is not None:
            cert, key = certificate
            listen = f"{port} ssl"
            out += [
                "server {",
                f"    listen {listen};",
                f"    listen [::]:{listen};",
                f"    server_name {hostname};",
                f"    ssl_certificate {cert};",
                f"    ssl_certificate_key {key};",
                "    ssl_protocols TLSv1.2 TLSv1.3;",
                *proxy,
                "}",
                "",
            ]
    else:
        out += [
            "server {",
            f"    listen {port};",
            f"    listen [::]:{port};",
            f"    server_name {hostname};",
            *challenge,
            *proxy,
            "}",
            "",
        ]
    return "\n".join(line for line in out if line != "") + "\n"


DEBIAN_HBA = """\
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


def _network(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a host name: PostgreSQL resolves it
    return f"{ip}/{ip.max_prefixlen}"


def pg_hba(grants: list[tuple[str, str, str]]) -> str:
    """Debian's local access, and ``(database, role, address)`` for each
    service on another host: that host may reach that database as that
    role, with a password, and nothing else."""
    lines = [HEADER, DEBIAN_HBA.rstrip("\n")]
    if grants:
        lines.append("# srht services on other hosts")
    for database, role, address in sorted(grants):
        lines.append(f"host    {database:<15} {role:<15} {_network(address):<23} scram-sha-256")
    return "\n".join(lines) + "\n"


def postgresql_conf(listen: list[str]) -> str:
    return HEADER + f"listen_addresses = '{','.join(listen)}'\n"


def redis_conf(password: str, bind: list[str]) -> str:
    """Settings appended to Debian's redis.conf (through an include)."""
    return (
        HEADER + f"bind {' '.join(bind)}\n" + "protected-mode yes\n" + f"requirepass {password}\n"
    )


#: Where the deploy keeps Postfix's transport of the services' mail domains.
POSTFIX_TRANSPORT = "/etc/postfix/srht-transport"
#: Postfix's own default message size limit, kept when no service asks for more.
POSTFIX_DEFAULT_SIZE = 10_240_000


def postfix_transport(domains: dict[str, str]) -> str:
    """Postfix's transport table: each mail domain to its LMTP listener
    (``{domain: "host:port"}``)."""
    lines = [f"{domain} lmtp:inet:{address}" for domain, address in sorted(domains.items())]
    return HEADER + "\n".join(lines) + "\n"


def postfix_settings(domains: dict[str, str], max_size: int) -> dict[str, str]:
    """The ``main.cf`` settings (``postconf -e``) that make Postfix take mail
    for ``domains`` and pass it on through :func:`postfix_transport`: the
    domains are relayed (never delivered locally), by the transport table.
    A recipient is checked while the sender is still connected: Postfix
    asks the listener (an LMTP ``RCPT TO`` probe, its answer cached) and
    refuses an address that is no list with 550, so nobody's forged address
    ever gets a bounce from this host (backscatter)."""
    return {
        "relay_domains": ", ".join(sorted(domains)),
        "transport_maps": f"hash:{POSTFIX_TRANSPORT}",
        "message_size_limit": str(max(max_size, POSTFIX_DEFAULT_SIZE)),
        "smtpd_recipient_restrictions": (
            "permit_mynetworks, reject_unauth_destination, reject_unverified_recipient"
        ),
        "unverified_recipient_reject_code": "550",
    }


#: What :func:`postfix_settings` sets, removed when a host's last mail
#: domain goes.
POSTFIX_KEYS = (
    "relay_domains",
    "transport_maps",
    "smtpd_recipient_restrictions",
    "unverified_recipient_reject_code",
)
