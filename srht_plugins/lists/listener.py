"""The mail listeners: LMTP for the host's mail server (``srht lists
lmtp``), and plain SMTP for development, where no mail server runs (``srht
lists smtp``, which ``srht up`` starts).

Both are aiosmtpd servers on one asyncio loop. The work of each command
(looking a list up, storing a message) is the service's ordinary
synchronous code, run in a worker thread inside the app's context, so the
loop keeps answering other connections meanwhile.

``RCPT TO`` is answered at once (550 for an address that is no list here);
after the data, LMTP answers once per accepted recipient, each answer given
only after that recipient's transaction committed. SMTP has one answer for
the whole message: 250 when at least one recipient took it, and then a
bounce to the envelope sender for the others (no mail server stands in
between to write one).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from email.utils import formataddr
from typing import Any, TypeVar

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask

from srht_core import current_service, db_session, send_mail, state_of

from .addresses import posting_domain
from .config import DEFAULT_MAX_SIZE
from .inbound import Reply, check_recipient, receive

__all__ = ["Handler", "serve"]

log = logging.getLogger("srht.lists.listener")

T = TypeVar("T")


class Handler:
    """aiosmtpd's handler: the hooks its servers call."""

    def __init__(self, app: Flask, *, lmtp: bool):
        self.app = app
        self.lmtp = lmtp

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        def in_app() -> T:
            with self.app.app_context():
                return work(*args)

        return await asyncio.get_running_loop().run_in_executor(None, in_app)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._run(check_recipient, address)
        if reply.ok:
            envelope.rcpt_tos.append(address)
        return str(reply)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        sender = envelope.mail_from or ""
        replies = []
        for address in envelope.rcpt_tos:
            replies.append(await self._run(receive, address, sender, raw))
        for address, reply in zip(envelope.rcpt_tos, replies, strict=True):
            log.info("from <%s> to <%s>: %s", sender, address, reply)
        if self.lmtp:
            return "\r\n".join(str(reply) for reply in replies)
        taken = [reply for reply in replies if reply.ok]
        if not taken:
            return str(replies[0])
        refused = [
            (address, reply)
            for address, reply in zip(envelope.rcpt_tos, replies, strict=True)
            if not reply.ok
        ]
        if refused and sender:
            await self._run(_bounce, sender, refused, raw)
        return str(taken[0])


def _bounce(sender: str, refused: list[tuple[str, Reply]], raw: bytes) -> None:
    """Tell ``sender`` which recipients did not take their message."""
    lines = [f"<{address}>: {reply}" for address, reply in refused]
    head = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[0].decode("utf-8", "replace")
    domain = posting_domain()
    send_mail(
        sender,
        "Undelivered mail returned to sender",
        "Your message could not be delivered to these recipients:\n\n"
        + "\n".join(lines)
        + "\n\nIts headers were:\n\n"
        + head
        + "\n",
        headers={
            "From": formataddr(("Mail Delivery System", f"mailer-daemon@{domain}")),
            "Auto-Submitted": "auto-replied",
        },
        session=db_session,
    )
    db_session.commit()


def _factory(app: Flask, lmtp: bool, loop: asyncio.AbstractEventLoop) -> Callable[[], SMTP]:
    with app.app_context():
        limit = int(current_service().section.get("max-message-size") or DEFAULT_MAX_SIZE)
        domain = posting_domain()
    handler = Handler(app, lmtp=lmtp)
    kind = LMTP if lmtp else SMTP

    def make() -> SMTP:
        return kind(
            handler,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=domain,
            ident="srht lists",
            loop=loop,
        )

    return make


def serve(app: Flask, bind: str, *, lmtp: bool, ready: Callable[[str], None] | None = None) -> None:
    """Listen on ``bind`` (``HOST:PORT``) until SIGTERM or SIGINT."""
    host, _sep, port = bind.rpartition(":")
    host = host.strip("[]")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = loop.run_until_complete(
            loop.create_server(_factory(app, lmtp, loop), host=host, port=int(port))
        )
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        kind = "LMTP" if lmtp else "SMTP"
        log.info("%s listening on %s for %s", kind, bind, state_of(app).service.name)
        if ready is not None:
            ready(f"{kind} on {bind}")
        loop.run_until_complete(stop.wait())
        server.close()
        loop.run_until_complete(server.wait_closed())
    finally:
        loop.close()
