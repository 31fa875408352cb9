"""Outgoing mail, as a background job.

:func:`send_mail` records a ``srht.send-mail`` job in the caller's
transaction; the worker delivers it through ``[mail]``'s SMTP server, or,
with no ``smtp-host``, writes it to the outbox folder as an ``.eml`` file a
developer can read. Mail is never silently dropped: a delivery failure is
retried with backoff and, in the end, left failed in the job table.

:func:`send_message` does the same for a message the service built whole
(a mailing list passing a post on with its own headers, attachments and
threading): its bytes go out as they are, to the envelope recipients given.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from .globals import current_service
from .jobs import enqueue

__all__ = [
    "build_message",
    "deliver",
    "deliver_message",
    "deliver_now",
    "outbox_dir",
    "send_mail",
    "send_message",
]

log = logging.getLogger("srht.mail")


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


def send_message(
    message: bytes,
    recipients: Sequence[str],
    *,
    sender: str | None = None,
    session: Any = None,
) -> int:
    """Queue ``message``, a whole RFC 5322 message as bytes, for delivery
    to the envelope ``recipients`` exactly as it is (its headers are not
    touched, so a signature over them stays valid); returns the job id.

    The job (``srht.send-message``) is recorded in ``session`` like
    :func:`send_mail`'s, retried with backoff, and sends one SMTP
    transaction with every recipient. Without ``smtp-host`` each recipient
    gets an ``.eml`` file in the outbox, with a ``Delivered-To`` line on top
    saying whose copy it is.

    :param sender: the envelope sender (where bounces go); default
        ``[mail] smtp-from``.

    .. versionadded:: 0.1
    """
    return enqueue(
        "srht.send-message",
        session=session,
        message=base64.b64encode(message).decode("ascii"),
        recipients=list(recipients),
        sender=sender,
    )


def _default_sender(config: Any = None) -> str:
    config = config or current_service().config
    return str(
        config.get("mail", "smtp-from")
        or config.get("srht", "site-owner-email")
        or f"srht@{config['srht']['global-domain']}"
    )


def outbox_dir(config: Any = None) -> Path:
    config = config or current_service().config
    configured = config.get("mail", "outbox-dir")
    return Path(configured) if configured else Path(config["srht"]["data-dir"]) / "outbox"


def build_message(
    to: str,
    subject: str,
    body: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    config: Any = None,
) -> EmailMessage:
    config = config or current_service().config
    sender = _default_sender(config)
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
    with _connect(host) as smtp:
        smtp.send_message(message)


def _connect(host: str, config: Any = None) -> smtplib.SMTP:
    """An SMTP connection to ``[mail]``'s server, secured and signed in as
    configured."""
    config = config or current_service().config
    port = int(config.get("mail", "smtp-port"))
    encryption = config.get("mail", "smtp-encryption")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if encryption == "tls":
        smtp = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
    else:
        smtp = smtplib.SMTP(host, port, timeout=30)
    try:
        if encryption == "starttls":
            smtp.starttls(context=context)
        user = config.get("mail", "smtp-user")
        if user:
            smtp.login(user, config.get("mail", "smtp-password") or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def deliver_now(config: Any, to: str, subject: str, body: str) -> None:
    """Send a plain-text message right away with ``config``'s ``[mail]``
    (or write it to the outbox), for a program that runs outside any
    service and has no job queue (the scheduled backup). Raises what
    :mod:`smtplib` raises.

    .. versionadded:: 0.1
    """
    message = build_message(to, subject, body, config=config)
    host = config.get("mail", "smtp-host")
    if not host:
        folder = outbox_dir(config)
        folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_")
        (folder / f"{name}.eml").write_bytes(bytes(message))
        return
    with _connect(host, config) as smtp:
        smtp.send_message(message)


def deliver_message(message: str, recipients: list[str], sender: str | None = None) -> None:
    """The ``srht.send-message`` job: ``message`` (base64) to ``recipients``.

    A recipient the server refuses for good (5xx) is logged and not tried
    again; a temporary refusal of all of them, or a failure to connect,
    raises, so the job is retried.
    """
    config = current_service().config
    data = base64.b64decode(message)
    host = config.get("mail", "smtp-host")
    if not host:
        folder = outbox_dir()
        folder.mkdir(parents=True, exist_ok=True)
        found = re.search(rb"^Message-ID:[ \t]*<?([^>\r\n]*)", data, re.I | re.M)
        stem = (found[1].decode("ascii", "replace") if found else "message").replace("/", "_")
        for number, recipient in enumerate(recipients):
            copy = f"Delivered-To: {recipient}\n".encode() + data
            (folder / f"{stem}.{number}.eml").write_bytes(copy)
        return
    # SMTP wants CRLF line ends; stored messages have LF.
    wire = re.sub(rb"\r?\n", b"\r\n", data)
    with _connect(host) as smtp:
        try:
            refused = smtp.sendmail(sender or _default_sender(), recipients, wire)
        except smtplib.SMTPRecipientsRefused as error:
            if any(code < 500 for code, _reason in error.recipients.values()):
                raise
            refused = error.recipients
    for recipient, (code, reason) in refused.items():
        log.warning("%s refused mail for %s: %s %r", host, recipient, code, reason)
