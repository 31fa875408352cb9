"""Outgoing mail, as a background job.

:func:`send_mail` records a ``srht.send-mail`` job in the caller's
transaction; the worker delivers it through ``[mail]``'s SMTP server, or,
with no ``smtp-host``, writes it to the outbox folder as an ``.eml`` file a
developer can read. Mail is never silently dropped: a delivery failure is
retried with backoff and, in the end, left failed in the job table.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from .globals import current_service
from .jobs import enqueue

__all__ = ["build_message", "deliver", "outbox_dir", "send_mail"]


def send_mail(
    to: str,
    subject: str,
    body: str,
    *,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    session: Any = None,
) -> int:
    """Queue a plain-text message to ``to``; returns the job id.

    :param headers: extra headers; one the core sets itself (``From``)
        is replaced, so a service can send from its own address.
    """
    return enqueue(
        "srht.send-mail",
        session=session,
        to=to,
        subject=subject,
        body=body,
        reply_to=reply_to,
        headers=headers or {},
    )


def outbox_dir() -> Path:
    config = current_service().config
    configured = config.get("mail", "outbox-dir")
    return Path(configured) if configured else Path(config["srht"]["data-dir"]) / "outbox"


def build_message(
    to: str,
    subject: str,
    body: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    config = current_service().config
    sender = (
        config.get("mail", "smtp-from")
        or config.get("srht", "site-owner-email")
        or f"srht@{config['srht']['global-domain']}"
    )
    message = EmailMessage()
    message["From"] = f"{config['srht']['site-name']} <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=str(config["srht"]["global-domain"]))
    if reply_to:
        message["Reply-To"] = reply_to
    for name, value in (headers or {}).items():
        del message[name]  # a caller's header replaces the default (From, say)
        message[name] = value
    message.set_content(body)
    return message


def deliver(
    to: str,
    subject: str,
    body: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """The ``srht.send-mail`` job: send now, or write to the outbox."""
    config = current_service().config
    message = build_message(to, subject, body, reply_to, headers)
    host = config.get("mail", "smtp-host")
    if not host:
        folder = outbox_dir()
        folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_")
        (folder / f"{name}.eml").write_bytes(bytes(message))
        return
    port = int(config.get("mail", "smtp-port"))
    encryption = config.get("mail", "smtp-encryption")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if encryption == "tls":
        smtp = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
    else:
        smtp = smtplib.SMTP(host, port, timeout=30)
    with smtp:
        if encryption == "starttls":
            smtp.starttls(context=context)
        user = config.get("mail", "smtp-user")
        if user:
            smtp.login(user, config.get("mail", "smtp-password") or "")
        smtp.send_message(message)
