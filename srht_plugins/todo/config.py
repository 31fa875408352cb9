"""todo's config: the ``[todo]`` section."""

from __future__ import annotations

from srht_core import Email, Key, Section

SCHEMA = [
    Section(
        "todo",
        description="Ticket trackers: tickets, comments, labels, subscriptions and webhooks.",
        keys=(
            Key(
                "notify-from",
                Email(),
                default=None,
                example="todo@example.org",
                description="The From address of the notifications sent to subscribers. "
                "Empty: [mail] smtp-from.",
            ),
        ),
    ),
]
