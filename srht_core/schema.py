"""The core's own config sections, and the keys every service section gets.

A plugin declares only what is particular to its service; the keys every
service needs (where it is served, its database, how it runs) are added here
so that they are spelled and checked the same way everywhere.
"""

from __future__ import annotations

from .config import (
    Address,
    Boolean,
    Choice,
    Config,
    ConfigProblem,
    Email,
    FernetKey,
    Integer,
    Key,
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
        Key("site-name", Text(), default="srht", example="example.org forge",
            description="The site's name, shown in every page's header and in mail."),
        Key("site-owner-name", Text(), default="", example="Jane Doe",
            description="Who runs this site, shown in the footer."),
        Key("site-owner-email", Email(), example="admin@example.org",
            description="Where users can reach the site's owner."),
        Key("environment", Choice(("production", "development")), default="production",
            example="production",
            description="development relaxes cookie security for plain-HTTP local runs "
                        "and shows tracebacks in the log."),
        Key("global-domain", Text(), required=True, example="example.org",
            description="The domain under which every service lives; the login cookie "
                        "is set on it."),
        Key("service-key", Secret(), required=True, secret=True,
            example=EXAMPLE_SERVICE_KEY,
            description="Random secret from which each service derives its session "
                        "and CSRF keys."),
        Key("network-key", FernetKey(), required=True, secret=True,
            example=EXAMPLE_NETWORK_KEY,
            description="Fernet key that seals the login cookie and internal "
                        "service-to-service credentials."),
        Key("internal-networks", Networks(), default=None,
            example="127.0.0.0/8, ::1/128",
            description="Networks from which internal API calls and metrics scrapes are "
                        "accepted. Defaults to loopback only."),
        Key("data-dir", PathValue(), default="/var/lib/srht", example="/var/lib/srht",
            description="Where services keep files (SQLite databases, mail outbox, "
                        "repositories) unless a key of theirs says otherwise. Relative "
                        "to the config file's folder when relative."),
        Key("templates-dir", PathValue(), default="/etc/srht/templates",
            example="/etc/srht/templates",
            description="Templates here override the core's and the services' own, "
                        "by the same relative name."),
        Key("broker", Url(schemes=("redis", "rediss")), default=None,
            example="redis://127.0.0.1:6379/0",
            description="Celery broker for background jobs. Empty: jobs are run by "
                        "`srht worker` straight from each service's database "
                        "(the embedded mode of `srht up`)."),
    ),
)

MAIL = Section(
    "mail",
    description="Outgoing mail. Without smtp-host, messages are written to an outbox "
                "folder instead of being sent (for development).",
    keys=(
        Key("smtp-host", Text(), default=None, example="mail.example.org",
            description="SMTP server. Empty: write messages to outbox-dir."),
        Key("smtp-port", Integer(min=1, max=65535), default=587, example="587",
            description="SMTP port."),
        Key("smtp-encryption", Choice(("starttls", "tls", "none")), default="starttls",
            example="starttls", description="How to secure the SMTP connection."),
        Key("smtp-user", Text(), default=None, example="srht",
            description="SMTP user name, if the server wants one."),
        Key("smtp-password", Text(), default=None, secret=True, example="",
            description="SMTP password."),
        Key("smtp-from", Email(), default=None, example="srht@example.org",
            description="The From address of mail the site sends."),
        Key("outbox-dir", PathValue(), default=None, example="",
            description="Where messages go when smtp-host is empty; defaults to "
                        "DATA-DIR/outbox."),
    ),
)

WEBHOOKS = Section(
    "webhooks",
    required=True,
    description="Signing of webhooks sent by every service.",
    keys=(
        Key("private-key", SigningKey(), required=True, secret=True,
            example=EXAMPLE_WEBHOOK_KEY,
            description="Ed25519 private key (base64) that signs every webhook payload. "
                        "Receivers verify with the public key `srht keygen` prints."),
    ),
)

CORE_SECTIONS = (SRHT, MAIL, WEBHOOKS)


def service_base_keys(service: str, default_port: int) -> tuple[Key, ...]:
    """The keys every ``[<service>]`` section has, ahead of the service's own."""
    return (
        Key("origin", Url(), required=True, example=f"https://{service}.example.org",
            description="The public URL of this service, without a trailing slash."),
        Key("connection-string", Text(), default=None, secret=True,
            example=f"postgresql://{service}@localhost/{service}.sr.ht",
            description="SQLAlchemy URL of the service's database. Empty: SQLite at "
                        f"DATA-DIR/{service}.db."),
        Key("bind", Address(), default=f"127.0.0.1:{default_port}",
            example=f"127.0.0.1:{default_port}",
            description="Where `srht serve` listens."),
        Key("workers", Integer(min=1, max=256), default=2, example="2",
            description="gunicorn worker processes for `srht serve`."),
        Key("hosts", List(), default=None, example="",
            description="The hosts (named in the deploy inventory) that run this "
                        "service. Empty: the host the config is on."),
        Key("debug", Boolean(), default=False, example="no",
            description="Flask debug mode. Never on in production."),
    )


def example_secrets_in_use(config: Config) -> list[ConfigProblem]:
    """Secrets of ``config`` that are still the published example values."""
    problems = []
    for name, raw in config.raw.items():
        for key, value in raw.values.items():
            if value.value in EXAMPLE_SECRETS:
                problems.append(ConfigProblem(
                    config.path, value.line, name, key,
                    "is the published example value; generate your own with `srht keygen`"))
    return problems
