"""The keys of ``[hello]``, besides those every service has (``origin``,
``connection-string``, ``bind``, ...), which the core adds itself."""

from __future__ import annotations

from srht_core import Key, Section, Text

HELLO = Section(
    "hello",
    description="The hello service: greets visitors by name.",
    keys=(
        Key(
            "greeting",
            Text(),
            default="Hello",
            example="Hello",
            description="What the front page says to visitors.",
        ),
    ),
)
