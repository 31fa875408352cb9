"""What the deploy decides from the config, without a host: the topology,
each host's config, derived secrets, certificates and the files it renders.
Quick; the real thing is in test_site.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography import x509
from srht_deploy.hostconfig import host_config_text
from srht_deploy.inventory_data import inventory_groups
from srht_deploy.model import Site
from srht_deploy.operations import HOSTS_BEGIN, hosts_file_text
from srht_deploy.render import GZIP_LEVEL, nginx_vhost, pg_hba
from srht_deploy.secrets import database_for, scram_verifier
from srht_deploy.tls import service_certificate, site_authority
from srht_deploy.topology import read_topology

from srht_core import Config, ConfigError, PluginHost
from srht_core.config import dump_ini
from srht_core.keys import generate_keys

KEYS = generate_keys()


def site_data(
    deploy: dict[str, Any], services: dict[str, dict[str, Any]], srht: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {
        "srht": {
            "site-owner-email": "admin@example.org",
            "global-domain": "example.org",
            "service-key": KEYS.service_key,
            "network-key": KEYS.network_key,
            "internal-networks": "127.0.0.0/8, 192.0.2.0/24",
            **(srht or {}),
        },
        "webhooks": {"private-key": KEYS.webhook_private_key},
        "deploy": deploy,
    }
    for name, values in services.items():
        data[name] = {"origin": f"https://{name}.example.org", **values}
    return data


def config(
    deploy: dict[str, Any], services: dict[str, dict[str, Any]], srht: dict[str, Any] | None = None
) -> Config:
    return Config.from_string(dump_ini(site_data(deploy, services, srht)), "site.ini")


def bound(cfg: Config) -> tuple[Config, PluginHost]:
    plugins = PluginHost()
    problems = plugins.check_config(cfg)
    assert not problems, problems
    return cfg, plugins


TWO_HOSTS = {
    "hosts": "alpha=root@192.0.2.10, beta=admin@192.0.2.11:2222",
    "postgresql-host": "alpha",
}


def test_topology_places_services_and_shared_daemons() -> None:
    cfg, plugins = bound(
        config(TWO_HOSTS, {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}})
    )
    topology = read_topology(cfg, plugins)
    alpha, beta = topology.placement("alpha"), topology.placement("beta")
    assert alpha.services == ("meta",) and alpha.postgresql and alpha.nginx
    assert beta.services == ("paste",) and not beta.postgresql and beta.nginx
    assert beta.target.user == "admin" and beta.target.port == 2222
    assert beta.fronted == ("paste",)
    assert topology.clients_of("alpha", ["paste"]) == ["beta"]


def test_meta_comes_first() -> None:
    cfg, plugins = bound(
        config(TWO_HOSTS, {"paste": {"hosts": "alpha"}, "meta": {"hosts": "alpha"}})
    )
    assert read_topology(cfg, plugins).services == ("meta", "paste")


def test_a_service_on_two_hosts_is_balanced_by_each_nginx() -> None:
    cfg, plugins = bound(
        config(TWO_HOSTS, {"meta": {"hosts": "alpha, beta", "bind": "0.0.0.0:5000"}})
    )
    topology = read_topology(cfg, plugins)
    assert topology.upstreams("meta", "alpha") == ["0.0.0.0:5000", "192.0.2.11:5000"]


def test_topology_problems_name_section_key_and_line() -> None:
    cfg, plugins = bound(
        config(
            TWO_HOSTS | {"redis-host": "gamma"},
            {"meta": {"hosts": "alpha, beta"}, "paste": {}},
            srht={"internal-networks": "127.0.0.0/8"},
        )
    )
    with pytest.raises(ConfigError) as raised:
        read_topology(cfg, plugins)
    text = str(raised.value)
    assert "[deploy] redis-host: no host 'gamma' in [deploy] hosts" in text
    assert "[paste] hosts: say which hosts run this service (of alpha, beta)" in text
    assert "[meta] bind: listens on loopback only" in text
    assert "[srht] internal-networks: must include 192.0.2.10" in text
    assert all(p.line is not None for p in raised.value.problems)


def test_distro_installs_need_one_package_source() -> None:
    for deploy, message in (
        ({}, "[srht] install-method: distro needs [deploy] apt-packages"),
        (
            {"apt-packages": "/srv/debs", "apt-source": "deb http://x ./"},
            "[deploy] apt-source: give apt-packages or apt-source",
        ),
    ):
        cfg, plugins = bound(
            config(
                {"hosts": "solo=192.0.2.5", **deploy},
                {"meta": {}},
                srht={"install-method": "distro"},
            )
        )
        with pytest.raises(ConfigError) as raised:
            read_topology(cfg, plugins)
        assert message in str(raised.value)
    cfg, plugins = bound(
        config(
            {"hosts": "solo=192.0.2.5", "apt-source": "deb http://x ./"},
            {"meta": {}},
            srht={"install-method": "distro"},
        )
    )
    assert read_topology(cfg, plugins).problems == []


def test_an_existing_redis_is_left_alone_and_used() -> None:
    from srht_deploy.deploys import _packages

    existing = {"hosts": "solo=192.0.2.5", "redis-host": "solo", "redis-existing": "yes"}
    cfg, plugins = bound(config(existing, {"meta": {}}))
    with pytest.raises(ConfigError) as raised:
        read_topology(cfg, plugins)
    assert "[deploy] redis-existing: the deploy leaves your Redis alone" in str(raised.value)

    broker = "redis://:secret@192.0.2.99:6379/3"
    cfg, plugins = bound(config(existing, {"meta": {}}, srht={"broker": broker}))
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    assert "redis-server" not in _packages(site, site.placement("solo"))
    assert f"broker = {broker}" in site.host_config("solo")


def test_one_host_runs_everything_by_default() -> None:
    cfg, plugins = bound(
        config(
            {"hosts": "solo=192.0.2.5"}, {"meta": {}, "paste": {}}, srht={"internal-networks": ""}
        )
    )
    topology = read_topology(cfg, plugins)
    assert topology.placement("solo").services == ("meta", "paste")


def test_each_host_config_holds_only_its_own_secrets() -> None:
    cfg, plugins = bound(
        config(TWO_HOSTS, {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}})
    )
    topology = read_topology(cfg, plugins)
    alpha = host_config_text(cfg, topology, "alpha")
    beta = host_config_text(cfg, topology, "beta")
    assert "[deploy]" not in alpha and "[paste]" in alpha
    assert "postgresql+psycopg2://srht_meta:" in alpha and "@127.0.0.1:5432/srht_meta" in alpha
    assert "srht_paste" not in alpha
    assert "@192.0.2.10:5432/srht_paste" in beta and "srht_meta" not in beta
    # What each host gets is itself a valid config.
    for text in (alpha, beta):
        assert not PluginHost().check_config(Config.from_string(text))
    assert host_config_text(cfg, topology, "alpha") == alpha


def test_each_service_host_gets_every_origin_name_pointing_at_an_nginx_host_serving_it() -> None:
    """Without DNS for the site's names, the services still reach each
    other (every service signs users in through meta): the hosts that run
    a service get each origin's name in /etc/hosts."""
    three = {**TWO_HOSTS, "hosts": TWO_HOSTS["hosts"] + ", gamma=root@192.0.2.12"}
    services = {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}}
    cfg, plugins = bound(config(three, services))
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    assert site.service_names("beta") == {
        "meta.example.org": "192.0.2.10",
        "paste.example.org": "192.0.2.11",  # beta's own nginx
    }
    assert site.service_names("alpha") == {
        "meta.example.org": "192.0.2.10",
        "paste.example.org": "192.0.2.11",
    }
    assert site.service_names("gamma") == {}  # runs no service
    cfg, plugins = bound(config({**three, "service-names": "dns"}, services))
    assert Site(cfg, plugins, read_topology(cfg, plugins)).service_names("beta") == {}


def test_the_hosts_file_block_leaves_every_other_line_as_it_was() -> None:
    mine = "127.0.0.1 localhost\n# my own\n10.0.0.9 meta.example.org\n\n"
    added = hosts_file_text(mine, {"meta.example.org": "192.0.2.10"})
    # After the administrator's lines, which win over it.
    assert added == (mine + f"{HOSTS_BEGIN}\n192.0.2.10 meta.example.org\n# END srht\n")
    assert hosts_file_text(added, {"meta.example.org": "192.0.2.10"}) == added
    moved = hosts_file_text(added + "10.0.0.1 later\n", {"meta.example.org": "192.0.2.99"})
    assert moved == mine + f"{HOSTS_BEGIN}\n192.0.2.99 meta.example.org\n# END srht\n" + (
        "10.0.0.1 later\n"
    )
    assert hosts_file_text(moved, {}) == mine + "10.0.0.1 later\n"


def test_a_written_connection_string_is_kept_and_its_role_created() -> None:
    url = "postgresql://owner:s3cret@db.example.org/forge"
    database = database_for("paste", url, KEYS.service_key, "192.0.2.10")
    assert database is not None and not database.derived
    assert (database.role, database.name, database.password) == ("owner", "forge", "s3cret")
    assert database_for("paste", "sqlite:///x.db", KEYS.service_key, None) is None


def test_scram_verifier_is_stable_and_postgresql_shaped() -> None:
    first = scram_verifier("password", "srht_meta")
    assert first == scram_verifier("password", "srht_meta")
    assert first != scram_verifier("password", "srht_paste")
    assert first.startswith("SCRAM-SHA-256$4096:") and first.count("$") == 2


def test_certificates_are_derived_signed_and_reproducible() -> None:
    authority = site_authority(KEYS.service_key, "site")
    leaf = service_certificate(KEYS.service_key, "site", "meta.example.org")
    cert = x509.load_pem_x509_certificate(leaf.cert.encode())
    ca = x509.load_pem_x509_certificate(authority.cert.encode())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["meta.example.org"]
    service_certificate.cache_clear()
    site_authority.cache_clear()
    assert service_certificate(KEYS.service_key, "site", "meta.example.org") == leaf


def test_vhost_redirects_to_https_and_balances() -> None:
    text = nginx_vhost(
        "meta",
        "meta.example.org",
        https=True,
        port=443,
        upstreams=["127.0.0.1:5000", "192.0.2.11:5000"],
        certificate=("/c.crt", "/c.key"),
        static_dir="/opt/srht/venv/static",
        acme_root="/var/www/acme",
    )
    assert "server 127.0.0.1:5000;" in text and "server 192.0.2.11:5000;" in text
    assert "return 301 https://$host$request_uri;" in text
    assert "listen 443 ssl;" in text and "alias /opt/srht/venv/static/;" in text


def test_vhost_compresses_text_answers() -> None:
    text = nginx_vhost(
        "todo",
        "todo.example.org",
        https=True,
        port=443,
        upstreams=["127.0.0.1:5003"],
        certificate=("/c.crt", "/c.key"),
        static_dir="/opt/srht/venv/static",
        acme_root="/var/www/acme",
    )
    # In the HTTPS server (the one that answers), for every location in it.
    served = text[text.index("listen 443 ssl;") :]
    assert "    gzip on;" in served and f"gzip_comp_level {GZIP_LEVEL};" in served
    assert "gzip_vary on;" in served  # caches keep both forms apart
    types = re.search(r"^    gzip_types (.+);$", served, re.M)
    assert types is not None
    listed = set(types.group(1).split())
    # text/html is compressed whenever gzip is on (nginx warns if listed).
    assert {"text/css", "application/json", "image/svg+xml", "text/plain"} <= listed
    assert "text/html" not in listed
    assert not {"application/x-git-upload-pack-result", "application/octet-stream"} & listed
    assert served.index("gzip on;") < served.index("location /")


def test_pg_hba_grants_each_database_to_its_hosts_only() -> None:
    text = pg_hba([("srht_paste", "srht_paste", "192.0.2.11")])
    assert "host    srht_paste      srht_paste      192.0.2.11/32" in text
    assert text.count("scram-sha-256") == 5


def test_inventory_groups_hosts_by_role(tmp_path: Any) -> None:
    path = tmp_path / "site.ini"
    path.write_text(
        dump_ini(
            site_data(
                TWO_HOSTS | {"ssh-key": "/k"},
                {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}},
            )
        )
    )
    site = Site.from_config(path)
    groups = inventory_groups(site)
    assert [name for name, _data in groups["srht"]] == ["alpha", "beta"]
    assert [name for name, _data in groups["postgresql"]] == ["alpha"]
    assert [name for name, _data in groups["paste"]] == ["beta"]
    beta = dict(groups["srht"])["beta"]
    assert beta["ssh_hostname"] == "192.0.2.11" and beta["ssh_port"] == 2222
    assert beta["_sudo"] is True and beta["ssh_key"] == "/k"


class NeedyService:
    """A service whose plugin asks a host for things (as a git service would)."""

    @staticmethod
    def service_info() -> Any:
        from srht_core import ServiceInfo

        return ServiceInfo("needy", "Needy", "Needs things from its host.", default_port=5077)

    @staticmethod
    def host_needs(config: Config) -> Any:
        from srht_core import HostNeeds

        return HostNeeds(
            packages=("git",),
            users=("git",),
            paths=("/var/lib/git",),
            daemons={"dispatch": "srht needy dispatch"},
            sshd_snippets=("Match User git\n  AuthorizedKeysCommand /bin/true",),
        )


def test_a_plugins_host_needs_drive_what_its_host_gets(tmp_path: Any) -> None:
    from pluggy import HookimplMarker
    from srht_deploy.deploys import _packages, _units

    hookimpl = HookimplMarker("srht")
    plugin = NeedyService()
    for hook in ("service_info", "host_needs"):
        setattr(plugin, hook, hookimpl(getattr(NeedyService, hook)))
    plugins = PluginHost()
    assert plugins.register(plugin, "needy").ok
    cfg = config(TWO_HOSTS, {"meta": {"hosts": "alpha"}, "needy": {"hosts": "beta"}})
    assert not plugins.check_config(cfg)
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    beta = site.placement("beta")
    assert "git" in _packages(site, beta) and "git" not in _packages(site, site.placement("alpha"))
    units = _units(site, beta)
    assert sorted(units) == [
        "srht-needy-dispatch.service",
        "srht-needy-worker.service",
        "srht-needy.service",
    ]
    assert "ExecStart=/usr/bin/env srht needy dispatch" in units["srht-needy-dispatch.service"]
    assert "ReadWritePaths=/var/lib/srht /var/lib/git" in units["srht-needy.service"]
    assert site.needs("needy").sshd_snippets


def test_the_lists_host_gets_postfix_passing_the_posting_domain_on_over_lmtp() -> None:
    from srht_deploy.deploys import _mail_domains, _packages, _units
    from srht_deploy.render import postfix_settings, postfix_transport

    cfg, plugins = bound(
        config(
            TWO_HOSTS,
            {
                "meta": {"hosts": "alpha"},
                "lists": {
                    "hosts": "beta",
                    "posting-domain": "lists.example.net",
                    "max-message-size": "30000000",
                },
            },
        )
    )
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    alpha, beta = site.placement("alpha"), site.placement("beta")
    assert "postfix" in _packages(site, beta) and "postfix" not in _packages(site, alpha)
    assert _mail_domains(site, alpha) == ({}, 0)
    domains, size = _mail_domains(site, beta)
    assert domains == {"lists.example.net": "127.0.0.1:8025"}
    units = _units(site, beta)
    assert "ExecStart=/usr/bin/env srht lists lmtp" in units["srht-lists-lmtp.service"]
    assert "srht-lists-lmtp.service" not in _units(site, alpha)
    transport = postfix_transport(domains).splitlines()
    assert transport[-1] == "lists.example.net lmtp:inet:127.0.0.1:8025"
    assert postfix_settings(domains, size) == {
        "relay_domains": "lists.example.net",
        "transport_maps": "hash:/etc/postfix/srht-transport",
        "message_size_limit": "30000000",
        # Recipients are checked with the listener before the mail is taken.
        "smtpd_recipient_restrictions": (
            "permit_mynetworks, reject_unauth_destination, reject_unverified_recipient"
        ),
        "unverified_recipient_reject_code": "550",
    }
    # Postfix's own 10 MB stays when the lists take less.
    assert postfix_settings(domains, 1024)["message_size_limit"] == "10240000"


def _wheel(folder: Any, name: str, version: str, *requires: str) -> str:
    """A minimal wheel file of ``name`` requiring ``requires``; its file name."""
    import zipfile

    filename = f"{name}-{version}-py3-none-any.whl"
    headers = [f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    with zipfile.ZipFile(folder / filename, "w") as archive:
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA",
            "Metadata-Version: 2.1\n" + "\n".join(headers) + "\n\nA description.\n",
        )
    return filename


def test_the_wheels_a_host_gets_are_its_distributions_closure(tmp_path: Any) -> None:
    import hashlib
    import json

    from srht_deploy.wheels import load_wheelhouse

    parts = []
    for part, wheels in {
        "srht": [
            ("srht", "0.1.0.dev0", "flask>=3", "redis[hiredis]", "old; python_version<'3'"),
            ("flask", "3.0.0"),
            ("flask", "3.1.0"),
            ("redis", "5.0.0", "hiredis; extra == 'hiredis'"),
            ("hiredis", "2.0.0"),
            ("old", "1.0"),
        ],
        "srht-hello": [("srht_hello", "0.1.0", "srht>=0.1.0.dev0,<0.2", "flask<3.1")],
    }.items():
        folder = tmp_path / part
        (folder / "wheels").mkdir(parents=True)
        names = [_wheel(folder / "wheels", *wheel) for wheel in wheels]
        hashes = {
            n: hashlib.sha256((folder / "wheels" / n).read_bytes()).hexdigest() for n in names
        }
        (folder / "part.json").write_text(json.dumps({"name": part, "wheels": hashes}))
        parts.append(str(folder))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "wheelhouse.json").write_text(
        json.dumps({"id": "x", "requirements": ["srht", "srht-hello"], "parts": parts})
    )
    wheelhouse = load_wheelhouse(tmp_path / "site")

    core = wheelhouse.closure(["srht"])
    # Markers are evaluated for the hosts' Python, extras followed, the
    # highest version that fits taken.
    assert sorted(core) == [
        "flask-3.1.0-py3-none-any.whl",
        "hiredis-2.0.0-py3-none-any.whl",
        "redis-5.0.0-py3-none-any.whl",
        "srht-0.1.0.dev0-py3-none-any.whl",
    ]
    # A service's requirements narrow what the host gets, and the services'
    # fingerprints differ only when their closures do.
    both = wheelhouse.closure(["srht", "srht-hello"])
    assert "flask-3.0.0-py3-none-any.whl" in both and "srht_hello-0.1.0-py3-none-any.whl" in both
    assert wheelhouse.fingerprint(["srht"]) == wheelhouse.fingerprint(["srht"])
    assert wheelhouse.fingerprint(["srht"]) != wheelhouse.fingerprint(["srht-hello"])
    upload = wheelhouse.upload(["hiredis-2.0.0-py3-none-any.whl"])
    assert upload == wheelhouse.upload(["hiredis-2.0.0-py3-none-any.whl"])


def test_a_third_party_section_goes_only_to_hosts_that_have_its_distribution() -> None:
    cfg, plugins = bound(
        config(TWO_HOSTS, {"meta": {"hosts": "alpha"}, "paste": {"hosts": "beta"}})
    )
    topology = read_topology(cfg, plugins)
    alpha = host_config_text(cfg, topology, "alpha", omit=["paste"], with_database={"meta"})
    assert "[paste]" not in alpha and "[meta]" in alpha
    beta = host_config_text(cfg, topology, "beta", with_database={"meta"})
    assert "srht_paste" not in beta


THREE_HOSTS = {
    "hosts": "alpha=root@192.0.2.10, beta=root@192.0.2.11, gamma=root@192.0.2.12",
    "postgresql-host": "alpha",
}


def test_each_runner_host_gets_the_runner_its_packages_folder_and_config() -> None:
    from srht_deploy.deploys import RUNNER_UNIT, _packages, _units

    cfg, plugins = bound(
        config(
            THREE_HOSTS,
            {
                "meta": {"hosts": "alpha"},
                "builds": {
                    "hosts": "alpha",
                    "runner-hosts": "beta, gamma",
                    "runner-dir": "/srv/runner",
                },
            },
        )
    )
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    alpha, beta = site.placement("alpha"), site.placement("beta")
    assert beta.runner and beta.runs_srht and not beta.services and "runner:builds" in beta.roles
    assert not alpha.runner and RUNNER_UNIT not in _units(site, alpha)
    for wanted in ("systemd-container", "mmdebstrap", "zstd", "iproute2", "python3-venv"):
        assert wanted in _packages(site, beta)
    assert "systemd-container" not in _packages(site, alpha)
    assert sorted(_units(site, beta)) == [RUNNER_UNIT]
    text = _units(site, beta)[RUNNER_UNIT]
    assert "ExecStart=/opt/srht/venv/bin/srht builds runner" in text
    for line in (
        "User=root",
        "Delegate=yes",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/srv/runner /run",
    ):
        assert line in text.splitlines()
    # Containers inherit it, and jobs use sudo.
    assert "NoNewPrivileges=yes" not in text.splitlines()
    # The runner reaches builds at its origin with the site's keys, not its database.
    beta_config = site.host_config("beta")
    assert "[builds]" in beta_config and "runner-hosts = beta, gamma" in beta_config
    assert "builds.example.org" in site.service_names("beta")
    assert site.distribution("builds") in site.host_distributions("beta")


def test_runner_hosts_must_be_named_and_be_hosts_of_the_topology() -> None:
    cfg, plugins = bound(
        config(THREE_HOSTS, {"meta": {"hosts": "alpha"}, "builds": {"hosts": "alpha"}})
    )
    with pytest.raises(ConfigError) as raised:
        read_topology(cfg, plugins)
    text = str(raised.value)
    assert "[builds] runner-hosts: say which hosts run its jobs (of alpha, beta, gamma)" in text
    assert all(p.line is not None for p in raised.value.problems)

    cfg, plugins = bound(
        config(
            THREE_HOSTS,
            {
                "meta": {"hosts": "alpha"},
                "builds": {"hosts": "alpha", "runner-hosts": "beta, delta"},
            },
        )
    )
    with pytest.raises(ConfigError) as raised:
        read_topology(cfg, plugins)
    (problem,) = raised.value.problems
    assert str(problem).startswith("site.ini:")
    assert "[builds] runner-hosts: no host 'delta' in [deploy] hosts" in str(problem)
    assert problem.line == cfg.raw["builds"].values["runner-hosts"].line


def test_adding_a_runner_host_is_one_config_line() -> None:
    from srht_deploy.deploys import RUNNER_UNIT, _units

    services = {"meta": {"hosts": "alpha"}, "builds": {"hosts": "alpha", "runner-hosts": "beta"}}
    cfg, plugins = bound(config(THREE_HOSTS, services))
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    assert not _units(site, site.placement("gamma"))
    services["builds"]["runner-hosts"] = "beta, gamma"
    cfg, plugins = bound(config(THREE_HOSTS, services))
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    assert sorted(_units(site, site.placement("gamma"))) == [RUNNER_UNIT]
    assert _units(site, site.placement("gamma")) == _units(site, site.placement("beta"))


def test_with_distro_packages_a_runner_gets_a_drop_in_for_the_packaged_unit() -> None:
    from srht_deploy.deploys import RUNNER_UNIT, _units

    cfg, plugins = bound(
        config(
            THREE_HOSTS | {"apt-source": "deb http://apt.example.org/ bookworm main"},
            {
                "meta": {"hosts": "alpha"},
                "builds": {"hosts": "alpha", "runner-hosts": "beta", "runner-dir": "/srv/jobs"},
            },
            srht={"install-method": "distro"},
        )
    )
    site = Site(cfg, plugins, read_topology(cfg, plugins))
    units = _units(site, site.placement("beta"))
    assert sorted(units) == [RUNNER_UNIT]
    dropin = units[RUNNER_UNIT]
    assert "ExecStart" not in dropin  # the package's unit runs /usr/bin/srht builds runner
    assert "ReadWritePaths=/srv/jobs" in dropin
    assert "Environment=SRHT_CONFIG=/etc/srht/config.ini" in dropin
