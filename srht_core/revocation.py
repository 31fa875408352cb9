"""Revocation: whether meta has revoked a token or a login session, or
deleted the account it was sealed for.

Tokens and login cookies are verified by every service without asking meta
(see :mod:`.tokens` and :mod:`.identity`); to honour revocation, each
service asks meta's internal API for what was revoked since its last look,
at most every :data:`REVOCATION_INTERVAL` seconds, so a revoked token or
session stops working everywhere within that time. meta itself answers from
its own database: the identity provider implements the ``is_revoked`` hook,
which the core then uses instead of the cache (see
:meth:`srht_core.SrhtState.is_revoked`, which every check goes through).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError, ServiceUnreachable

__all__ = [
    "CLOCK_SKEW",
    "GRACE",
    "REVOCATION_INTERVAL",
    "RETRY_INTERVAL",
    "RevocationCache",
]

log = logging.getLogger("srht.tokens")

#: Seconds a service may go without asking meta for revocations.
REVOCATION_INTERVAL = 30
#: Seconds between two attempts to reach meta when it does not answer.
RETRY_INTERVAL = 5
#: Seconds tokens are still accepted after the last good answer from meta.
GRACE = 300
#: Seconds a revocation is kept past the expiry meta gave for it (a login
#: session's is reckoned from its record, made just before its cookie).
CLOCK_SKEW = 600


class RevocationCache:
    """Token and session ids meta has revoked, refreshed at most every interval.

    When meta cannot be reached, the cache retries every
    :data:`RETRY_INTERVAL` seconds (not on every request, which would stall
    them all) and keeps accepting tokens for :data:`GRACE` seconds after
    its last good answer; past that it refuses every token (503) rather
    than let a revoked one through indefinitely.

    :param fetch: asks meta what was revoked since a UNIX time and returns
        its answer (``{"revoked": [[kind, id, expires], ...], "now": t}``);
        raises :class:`OSError` when meta cannot be reached.
    """

    def __init__(self, fetch: Callable[[float], Any], interval: float = REVOCATION_INTERVAL):
        self.fetch = fetch
        self.interval = interval
        #: ``{(kind, id): expires}``: when the revoked token or session would
        #: have stopped working anyway (UNIX time; ``None``: never). Past that
        #: (and :data:`CLOCK_SKEW`), the id is forgotten: nothing can present it.
        self.revoked: dict[tuple[str, int], float | None] = {}
        self.checked = -1e9  # last good answer (monotonic)
        self.tried = -1e9  # last attempt, good or not
        #: Why the last attempt failed (the fetch's error), ``None`` after a good one.
        self.failure: OSError | None = None
        self.since = 0.0
        self.lock = threading.Lock()

    def is_revoked(self, kind: str, token_id: int, user: int | None = None) -> bool:
        """Whether meta revoked ``kind`` number ``token_id``, or deleted
        ``user`` (the user id the token or session was sealed for: meta
        names a deleted account as ``("user", id)``, its rows being gone).

        .. versionchanged:: 0.1
            ``user``: a deleted account's credentials are refused too.
        """
        now = time.monotonic()
        if now - self.checked > self.interval and now - self.tried > RETRY_INTERVAL:
            self.refresh()
        if time.monotonic() - self.checked > GRACE:
            failure = self.failure
            where = (
                f"at {failure.url.partition('?')[0]} ({failure.reason})"
                if isinstance(failure, ServiceUnreachable)
                else f"({failure or 'no answer'})"
            )
            raise ApiError(
                503,
                "token revocations cannot be checked right now: meta, the identity "
                f"service, cannot be reached {where}; try again shortly",
            )
        return (kind, token_id) in self.revoked or (
            user is not None and ("user", user) in self.revoked
        )

    def refresh(self) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.checked <= self.interval or now - self.tried <= RETRY_INTERVAL:
                return
            self.tried = now
            try:
                answer = self.fetch(self.since)
            except OSError as error:
                self.failure = error
                log.warning("could not fetch token revocations from meta: %s", error)
                return
            self.failure = None
            for kind, token_id, *rest in (answer or {}).get("revoked", []):
                expires = rest[0] if rest else None  # meta before 0.1 sent no expiry
                self.revoked[(str(kind), int(token_id))] = (
                    None if expires is None else float(expires)
                )
            self.since = float((answer or {}).get("now", self.since))
            self.checked = time.monotonic()
            self.forget_expired(time.time())

    def forget_expired(self, now: float) -> None:
        """Drop revocations of what has expired by ``now`` (a UNIX time)."""
        horizon = now - CLOCK_SKEW
        for key in [
            key
            for key, expires in self.revoked.items()
            if expires is not None and expires < horizon
        ]:
            del self.revoked[key]
