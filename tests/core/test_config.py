"""The config reader and checker, as a self-hoster meets them: ``srht config
check`` on files with one thing wrong, each told with file, line, section
and key; where the config is looked for; secrets redacted."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest

from srht_core import Config, PluginHost
from srht_core.config import DEFAULT_LOCATIONS
from srht_core.keys import generate_keys

ROOT = Path(__file__).resolve().parents[2]
KEYS = generate_keys()

#: A config that checks clean with the demo service installed; the cases
#: below each change one thing. Line numbers matter: they are in the messages.
VALID = f"""\
[srht]
site-name = Test forge
site-owner-email = admin@example.org
environment = development
global-domain = example.org
service-key = {KEYS.service_key}
network-key = {KEYS.network_key}
internal-networks = 127.0.0.0/8, ::1/128

[mail]
smtp-host = mail.example.org
smtp-port = 587

[webhooks]
private-key = {KEYS.webhook_private_key}

[demo]
origin = http://127.0.0.1:5098
motd = Welcome
debug = no
max-items = 20
"""

SRHT_BLOCK = VALID[: VALID.index("[mail]")]

#: (what is wrong, text replaced, replacement, the line the user sees)
BROKEN = [
    (
        "missing required key",
        "global-domain = example.org\n",
        "",
        "config.ini:1 [srht] global-domain: required key missing (text)",
    ),
    (
        "required key of a service",
        "motd = Welcome\n",
        "",
        "config.ini:17 [demo] motd: required key missing (text)",
    ),
    (
        "integer",
        "smtp-port = 587",
        "smtp-port = lots",
        "config.ini:12 [mail] smtp-port: not a whole number: 'lots'",
    ),
    (
        "integer out of range",
        "max-items = 20",
        "max-items = 0",
        "config.ini:21 [demo] max-items: must be at least 1, got 0",
    ),
    (
        "boolean",
        "debug = no",
        "debug = maybe",
        "config.ini:20 [demo] debug: not yes or no: 'maybe'",
    ),
    (
        "URL",
        "origin = http://127.0.0.1:5098",
        "origin = ftp://127.0.0.1:5098",
        "config.ini:18 [demo] origin: not a URL starting with http:// or https://: "
        "'ftp://127.0.0.1:5098'",
    ),
    (
        "email",
        "admin@example.org",
        "admin-at-example.org",
        "config.ini:3 [srht] site-owner-email: not an email address: 'admin-at-example.org'",
    ),
    (
        "choice",
        "environment = development",
        "environment = staging",
        "config.ini:4 [srht] environment: must be one of production, development; got 'staging'",
    ),
    (
        "network",
        "127.0.0.0/8, ::1/128",
        "127.0.0.0/8, 10.1.2.0/33",
        "config.ini:8 [srht] internal-networks: not a network in CIDR notation: '10.1.2.0/33'",
    ),
    (
        "unknown key",
        "site-name = Test forge",
        "site-nmae = Test forge",
        "config.ini:2 [srht] site-nmae: unknown key (did you mean 'site-name'?)",
    ),
    (
        "unknown section",
        "[mail]",
        "[mial]",
        "config.ini:10 [mial]: unknown section; no installed service owns [mial] "
        "(did you mean [mail]?)",
    ),
    (
        "malformed line",
        "smtp-port = 587",
        "smtp-port: 587",
        "config.ini:12 [mail]: malformed line 'smtp-port: 587'; expected key = value",
    ),
    (
        "malformed section header",
        "[mail]",
        "[mail",
        "config.ini:10: malformed section header '[mail'; expected [name]",
    ),
    (
        "duplicate key",
        "smtp-port = 587",
        "smtp-port = 587\nsmtp-port = 25",
        "config.ini:13 [mail] smtp-port: key repeated (first at line 12)",
    ),
    (
        "duplicate section",
        "max-items = 20\n",
        "max-items = 20\n\n[mail]\nsmtp-user = srht\n",
        "config.ini:23 [mail]: section repeated (first at line 10)",
    ),
    (
        "empty secret",
        f"service-key = {KEYS.service_key}",
        "service-key =",
        "config.ini:6 [srht] service-key: secret is empty; generate one with `srht keygen`",
    ),
    (
        "short secret",
        f"service-key = {KEYS.service_key}",
        "service-key = hunter2",
        "config.ini:6 [srht] service-key: too short to be secret (7 characters, at least 32); "
        "generate one with `srht keygen`",
    ),
    (
        "invalid Fernet network key",
        f"network-key = {KEYS.network_key}",
        "network-key = bm90LWEta2V5",
        "config.ini:7 [srht] network-key: not a Fernet key (32 bytes, URL-safe base64); "
        "generate one with `srht keygen`",
    ),
    (
        "invalid signing key",
        f"private-key = {KEYS.webhook_private_key}",
        "private-key = abc",
        "config.ini:15 [webhooks] private-key: not an Ed25519 private key (32 bytes, base64); "
        "generate one with `srht keygen`",
    ),
    (
        "key before any section",
        "[srht]\n",
        "site-name = Early\n[srht]\n",
        "config.ini:1: key 'site-name' before any [section]",
    ),
    ("missing [srht]", SRHT_BLOCK, "", "config.ini [srht]: section missing; it is required"),
    (
        "a database no service can use",
        "origin = http://127.0.0.1:5098\n",
        "origin = http://127.0.0.1:5098\nconnection-string = mongodb://db.example.org/demo\n",
        "config.ini:19 [demo] connection-string: mongodb:// is not a database srht can use "
        "(postgresql:// or sqlite:///)",
    ),
    (
        "a database URL with a password, malformed",
        "origin = http://127.0.0.1:5098\n",
        "origin = http://127.0.0.1:5098\nconnection-string = postgresql://u:hunter2@db\n",
        "config.ini:19 [demo] connection-string: name the database: "
        "postgresql://USER@HOST/DATABASE",
    ),
]


def test_the_valid_config_checks_clean(demo_service, srht, tmp_path):
    (tmp_path / "config.ini").write_text(VALID)
    result = srht("config", "check", "config.ini")
    assert result.exit_code == 0, result.output
    assert "config.ini: OK (4 sections, 14 keys; services: demo)" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("old", "new", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_one_problem_is_told_where_it_is(demo_service, srht, tmp_path, old, new, expected):
    assert VALID.count(old) == 1
    (tmp_path / "config.ini").write_text(VALID.replace(old, new))
    result = srht("config", "check", "config.ini")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [expected, "1 problem found; nothing was started."]
    assert result.stdout == ""


def test_every_problem_is_reported_at_once(demo_service, srht, tmp_path):
    text = (
        VALID.replace("smtp-port = 587", "smtp-port = lots")
        .replace("environment = development", "environment = staging")
        .replace("debug = no", "debug = maybe")
        .replace("motd = Welcome\n", "")
        .replace("[mail]", "[mail]\nsmtp-hots = mail.example.org")
    )
    (tmp_path / "config.ini").write_text(text)
    result = srht("config", "check", "config.ini")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "config.ini:4 [srht] environment: must be one of production, development; got 'staging'",
        "config.ini:13 [mail] smtp-port: not a whole number: 'lots'",
        "config.ini:11 [mail] smtp-hots: unknown key (did you mean 'smtp-host'?)",
        "config.ini:20 [demo] debug: not yes or no: 'maybe'",
        "config.ini:18 [demo] motd: required key missing (text)",
        "5 problems found; nothing was started.",
    ]


def test_a_service_that_signs_users_in_needs_meta(demo_service, srht, tmp_path):
    """todo mirrors meta's users: a site with [todo] and no [meta] cannot
    sign anyone in, and says so before anything starts."""
    text = VALID.replace("[demo]", "[todo]\norigin = http://127.0.0.1:5003\n\n[demo]")
    (tmp_path / "config.ini").write_text(text)
    result = srht("config", "check", "config.ini")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "config.ini:17 [todo]: todo signs users in through meta, but there is no [meta] "
        "section: add it (meta is the site's accounts and sign-on)",
        "1 problem found; nothing was started.",
    ]


def test_a_section_of_a_service_that_is_not_installed_is_unknown(srht, tmp_path):
    (tmp_path / "config.ini").write_text(VALID)
    result = srht("config", "check", "config.ini")
    assert result.exit_code == 2
    assert (
        "config.ini:17 [demo]: unknown section; no installed service owns [demo]" in result.stderr
    )


def test_the_example_config_checks_clean_with_warnings_about_its_secrets():
    srht = Path(sys.executable).with_name("srht")
    command = [str(srht)] if srht.exists() else [sys.executable, "-m", "srht_core.cli"]
    result = subprocess.run(
        [*command, "config", "check", "config.example.ini"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env_without_config(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.example.ini: OK")
    warnings = result.stderr.splitlines()
    assert warnings and all(w.startswith("warning: config.example.ini:") for w in warnings)
    assert any(
        "[srht] service-key: is the published example value; generate your own "
        "with `srht keygen`" in w
        for w in warnings
    )


def _env_without_config() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SRHT_CONFIG", "SRHT_PLUGINS_STRICT")}


# -- where the config is looked for -------------------------------------------------


def _write(path: Path, site_name: str) -> None:
    path.write_text(VALID.replace("Test forge", site_name).split("[demo]")[0])


def test_lookup_uses_config_ini_in_the_working_folder(srht, tmp_path):
    _write(tmp_path / "config.ini", "from cwd")
    result = srht("config", "show")
    assert result.exit_code == 0, result.output
    assert "site-name = from cwd" in result.stdout


def test_lookup_prefers_srht_config_over_the_working_folder(srht, tmp_path, monkeypatch):
    _write(tmp_path / "config.ini", "from cwd")
    _write(tmp_path / "env.ini", "from env")
    monkeypatch.setenv("SRHT_CONFIG", str(tmp_path / "env.ini"))
    result = srht("config", "show")
    assert "site-name = from env" in result.stdout


def test_lookup_prefers_the_option_over_srht_config(srht, tmp_path, monkeypatch):
    _write(tmp_path / "config.ini", "from cwd")
    _write(tmp_path / "env.ini", "from env")
    _write(tmp_path / "option.ini", "from option")
    monkeypatch.setenv("SRHT_CONFIG", str(tmp_path / "env.ini"))
    result = srht("--config", "option.ini", "config", "show")
    assert "site-name = from option" in result.stdout
    result = srht("config", "check", "option.ini")
    assert result.stdout.startswith("option.ini: OK")


def test_a_missing_srht_config_is_an_error_not_a_fallback(srht, tmp_path, monkeypatch):
    _write(tmp_path / "config.ini", "from cwd")
    monkeypatch.setenv("SRHT_CONFIG", str(tmp_path / "gone.ini"))
    result = srht("config", "check")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'gone.ini'}: file not found",
        "1 problem found; nothing was started.",
    ]


def test_lookup_falls_back_to_the_system_config(srht, tmp_path, monkeypatch):
    assert (Path("config.ini"), Path("/etc/srht/config.ini")) == DEFAULT_LOCATIONS
    # The real /etc is not ours to write: stand a folder of ours in for it.
    system = tmp_path / "etc" / "srht" / "config.ini"
    system.parent.mkdir(parents=True)
    _write(system, "from etc")
    monkeypatch.setattr("srht_core.config.DEFAULT_LOCATIONS", (Path("config.ini"), system))
    assert "site-name = from etc" in srht("config", "show").stdout
    _write(tmp_path / "config.ini", "from cwd")
    assert "site-name = from cwd" in srht("config", "show").stdout


@pytest.mark.skipif(
    Path("/etc/srht/config.ini").exists(), reason="this machine has a system config"
)
def test_no_config_anywhere_says_where_it_looked(srht):
    result = srht("config", "check")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "config.ini: no config found (looked at --config, $SRHT_CONFIG, ./config.ini, "
        "/etc/srht/config.ini); write one with `srht config init --dev config.ini`"
    )


# -- reading and redacting ----------------------------------------------------------


def test_redacted_hides_every_secret_and_only_secrets(demo_service):
    host = PluginHost()
    text = (
        VALID.replace(
            "smtp-port = 587", "smtp-port = 587\nsmtp-user = srht\nsmtp-password = hunter2"
        )
        + "api-token = upstream-token\nconnection-string = postgresql://u:pw@db/demo\n"
    )
    config = Config.from_string(text, "config.ini")
    assert host.check_config(config) == []
    shown = config.redacted()
    for section, key in [
        ("srht", "service-key"),
        ("srht", "network-key"),
        ("webhooks", "private-key"),
        ("mail", "smtp-password"),
        ("demo", "api-token"),
        ("demo", "connection-string"),
    ]:
        assert shown[section][key] == "********", (section, key)
    assert shown["mail"]["smtp-user"] == "srht"
    assert shown["srht"]["site-name"] == "Test forge"
    assert shown["demo"]["motd"] == "Welcome"
    flat = repr(shown)
    for secret in (
        KEYS.service_key,
        KEYS.network_key,
        KEYS.webhook_private_key,
        "hunter2",
        "upstream-token",
        "pw@db",
    ):
        assert secret not in flat


def test_values_are_typed_with_defaults_filled_in(demo_service):
    config = Config.from_string(VALID, "/srv/site/config.ini")
    assert PluginHost().check_config(config) == []
    assert config["mail"]["smtp-port"] == 587
    assert config["demo"]["debug"] is False
    assert config["demo"]["public"] is True
    assert config["demo"]["max-items"] == 20
    assert config["demo"]["mode"] == "safe"
    assert config["demo"]["bind"] == "127.0.0.1:5098"
    assert config["srht"]["internal-networks"] == [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    assert config["srht"]["data-dir"] == "/var/lib/srht"
    with pytest.raises(KeyError, match=r"\[demo\] has no key 'nope'"):
        config["demo"]["nope"]


def test_relative_paths_are_relative_to_the_config_file(demo_service):
    config = Config.from_string(
        VALID.replace("[mail]", "data-dir = data\n\n[mail]"), "/srv/site/config.ini"
    )
    assert PluginHost().check_config(config) == []
    assert config["srht"]["data-dir"] == "/srv/site/data"


def test_continuation_lines_and_comments():
    config = Config.from_string("# a comment\n[srht]\n; another\nsite-name = one\n  two\n", "x.ini")
    assert config.syntax_problems == []
    assert config.raw_value("srht", "site-name") == "one\ntwo"
