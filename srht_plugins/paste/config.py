"""paste's config: the ``[paste]`` section."""

from __future__ import annotations

from srht_core import Integer, Key, Section

SCHEMA = [
    Section(
        "paste",
        description="Pastes: text files shared by link.",
        keys=(
            Key(
                "max-file-size",
                Integer(min=1),
                default=1024 * 1024,
                example="1048576",
                description="Largest file a paste may hold, in bytes of UTF-8 text.",
            ),
            Key(
                "max-paste-size",
                Integer(min=1),
                default=4 * 1024 * 1024,
                example="4194304",
                description="Largest paste, in bytes of UTF-8 text of all its files together; "
                "the web server's request limit must allow at least this much.",
            ),
        ),
    ),
]
