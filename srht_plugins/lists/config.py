"""lists' config: the ``[lists]`` section."""

from __future__ import annotations

from srht_core import Address, Integer, Key, Section, Text

#: The largest message the listeners accept by default (bytes on the wire).
DEFAULT_MAX_SIZE = 25 * 1024 * 1024

SCHEMA = [
    Section(
        "lists",
        description="Mailing lists: an archive of threads and patchsets, fed by mail over "
        "LMTP from the host's mail server.",
        keys=(
            Key(
                "posting-domain",
                Text(),
                default=None,
                example="lists.example.org",
                description="The domain of the lists' addresses (~alice/widget-devel@DOMAIN); "
                "its MX record must point at the lists host. Empty: the host name of "
                "[lists] origin.",
            ),
            Key(
                "lmtp-bind",
                Address(),
                default="127.0.0.1:8025",
                description="Where `srht lists lmtp` listens for the mail server (LMTP). "
                "Keep it on loopback: the mail server is the only client.",
            ),
            Key(
                "smtp-bind",
                Address(),
                default="127.0.0.1:2525",
                description="Where `srht lists smtp` listens: plain SMTP for development, "
                "where no mail server runs (`srht up` starts it).",
            ),
            Key(
                "max-message-size",
                Integer(min=1024),
                default=DEFAULT_MAX_SIZE,
                description="The largest message accepted, in bytes; a larger one is "
                "refused with 552.",
            ),
        ),
    ),
]
