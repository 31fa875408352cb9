"""Messages as an mbox file (mboxrd): what the per-thread, per-patchset and
per-list downloads serve, and what ``git am`` applies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = ["SEPARATOR", "mbox_entry", "mbox_stream"]

SEPARATOR = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"
_FROM = re.compile(rb"^(>*From )", re.M)


def mbox_entry(raw: bytes) -> bytes:
    """One message of an mboxrd file: the separator, the message with its
    ``From`` lines quoted, and a blank line."""
    body = _FROM.sub(rb">\1", raw.replace(b"\r\n", b"\n"))
    if not body.endswith(b"\n"):
        body += b"\n"
    return SEPARATOR + body + b"\n"


def mbox_stream(raws: Iterable[bytes]) -> Iterator[bytes]:
    for raw in raws:
        yield mbox_entry(raw)
