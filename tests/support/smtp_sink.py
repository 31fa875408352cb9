"""A minimal SMTP server on loopback that keeps every message it is given.

Enough of RFC 5321 for :mod:`smtplib` (EHLO/HELO, MAIL, RCPT, DATA with
dot-unstuffing, RSET, NOOP, QUIT), so tests can see mail really cross a
socket without a mail server on the machine.
"""

from __future__ import annotations

import socketserver
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Received:
    """One message as the sink got it."""

    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The message parsed, with SMTP's CRLF line ends made plain LF (as a
        mailbox stores it)."""
        parsed = message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Box:
    messages: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink.localhost ESMTP test sink")
        sender, recipients = "", []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-sink.localhost")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 sink.localhost")
            elif verb == "MAIL":
                sender, recipients = _address(line), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(_address(line))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    data = self.rfile.readline(1 << 20)
                    if not data or data in (b".\r\n", b".\n"):
                        break
                    lines.append(data[1:] if data.startswith(b"..") else data)
                box = self.server.box
                with box.arrived:
                    box.messages.append(Received(sender, recipients, b"".join(lines)))
                    box.arrived.notify_all()
                self.reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                if verb == "RSET":
                    sender, recipients = "", []
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


def _address(line: str) -> str:
    _verb, _sep, rest = line.partition(":")
    return rest.strip().split(" ")[0].strip("<>")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    box: _Box


class SmtpSink:
    """``with SmtpSink() as sink: ... sink.port ... sink.wait_for(1)``."""

    def __init__(self, host: str = "127.0.0.1"):
        self._server = _Server((host, 0), _Handler)
        self._server.box = _Box()
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def messages(self) -> list[Received]:
        with self._server.box.arrived:
            return list(self._server.box.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The messages once ``count`` have arrived; fails after ``timeout``."""
        box = self._server.box
        deadline = time.monotonic() + timeout
        with box.arrived:
            while len(box.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(box.messages)} of {count} messages arrived")
                box.arrived.wait(left)
            return list(box.messages)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
