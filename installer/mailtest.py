"""The SMTP test message the installer sends before anything is deployed,
so a wrong server, port or password is caught at the question rather than
when the first user waits for a confirmation link.

It connects the way the core's mail job does (``[mail] smtp-encryption``:
STARTTLS, TLS or none), from this machine rather than from the hosts: a
firewall between the hosts and the server is not caught here.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

__all__ = ["send_test_message"]


def send_test_message(answers: dict[str, Any], *, timeout: float = 20) -> str | None:
    """Send a test message to the owner's address with the SMTP answers;
    ``None`` when the server took it, else why not (a sentence, without
    the password)."""
    host, port = answers.get("smtp-host"), int(answers.get("smtp-port") or 587)
    encryption = answers.get("smtp-encryption") or "starttls"
    to = answers.get("owner-email")
    sender = answers.get("smtp-from") or f"srht@{answers.get('domain')}"
    message = EmailMessage()
    message["From"] = f"{answers.get('site-name') or 'srht'} <{sender}>"
    message["To"] = to
    message["Subject"] = "srht-install: test message"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=str(answers.get("domain") or "localhost"))
    message.set_content(
        "This message was sent by srht-install to check the site's SMTP "
        "settings.\nNothing else is needed: the installer goes on.\n"
    )
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if encryption == "tls":
            smtp = smtplib.SMTP_SSL(host, port, context=context, timeout=timeout)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if encryption == "starttls":
                smtp.starttls(context=context)
            user = answers.get("smtp-user")
            if user:
                smtp.login(user, answers.get("smtp-password") or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError:
        return f"{host}:{port} refused the user name or password"
    except smtplib.SMTPNotSupportedError as error:
        return f"{host}:{port}: {error} (try another smtp-encryption)"
    except smtplib.SMTPException as error:
        return f"{host}:{port}: {type(error).__name__}: {error}"
    except ssl.SSLError as error:
        return f"{host}:{port}: TLS failed ({error.reason or error}); check smtp-encryption"
    except OSError as error:
        return f"cannot connect to {host}:{port} ({error.strerror or error})"
    return None
