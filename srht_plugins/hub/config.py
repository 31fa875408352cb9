"""The keys of ``[hub]``, besides those every service has (``origin``,
``connection-string``, ``bind``, ...), which the core adds itself."""

from __future__ import annotations

from srht_core import Integer, Key, Section, Text

SCHEMA = [
    Section(
        "hub",
        description="Hub: people, projects and the front door of the site.",
        keys=(
            Key(
                "site-description",
                Text(),
                default="",
                example="A forge for the projects of the Example community.",
                description="What this site is, in a sentence or two, shown to visitors "
                "on the home page (Markdown). Empty: nothing but the site's name and owner.",
            ),
            Key(
                "refresh-interval",
                Integer(min=1),
                default=300,
                example="300",
                description="Seconds between hub's checks of every attached resource "
                "(repository, tracker, ...) with its service: one made private or deleted "
                "there leaves the public pages within this time at the latest.",
            ),
            Key(
                "service-timeout",
                Integer(min=1, max=60),
                default=3,
                example="3",
                description="Seconds hub waits for another service while building a page; "
                "one that takes longer is named on the page as unreachable.",
            ),
        ),
    )
]
