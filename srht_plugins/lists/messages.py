"""Reading a message as it arrived: its headers, its text, its
attachments, and whether it is a patch.

Mail is hostile input. Everything here copes with what real and forged
messages hold: broken MIME, unknown or lying charsets, encoded words that
decode to line breaks (a header-injection attempt), HTML with scripts,
huge parts. Nothing read here is ever sent on as a header: the list
passes the raw bytes on, and what it shows is text, escaped by the pages.
A message without a sender address is refused (:class:`Malformed`).
"""

from __future__ import annotations

import codecs
import email
import email.errors
import email.header
import email.policy
import email.utils
import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message

import nh3

from .models import MAX_ADDRESS, MAX_FILENAME, MAX_MESSAGE_ID, MAX_NAME, MAX_SUBJECT

__all__ = [
    "Malformed",
    "PatchSubject",
    "Parsed",
    "attachment_part",
    "parse",
    "parse_patch_subject",
]

#: An address as the pages and the permission checks use it.
ADDRESS = re.compile(
    r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}$|^[^@\s<>]+@localhost$"
)
_MSGID = re.compile(r"<([^<>\s]+)>")
_ANGLE_ADDRESS = re.compile(r"^(.*)<([^<>\s]+@[^<>\s]+)>\s*$", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
#: Text shown of one message at most; the raw message keeps the rest.
MAX_BODY = 1024 * 1024
#: A diff in a patch's text.
_DIFF = re.compile(r"^(diff --git |Index: |--- \S.*\n\+\+\+ )", re.M)
_PATCH_SUBJECT = re.compile(
    r"^\s*\[(?P<tags>[^\]]*\bPATCH\b[^\]]*)\]\s*(?P<title>.*)$", re.I | re.S
)
_VERSION = re.compile(r"^v(\d{1,4})$", re.I)
_NUMBERS = re.compile(r"^(\d{1,4})/(\d{1,4})$")


class Malformed(ValueError):
    """A message the list cannot take; the reason is the SMTP reply's text."""


@dataclass(frozen=True)
class PatchSubject:
    """What ``[widget PATCH v2 3/5] frob: fix`` says."""

    title: str
    prefix: str = ""
    version: int = 1
    #: 0 for a cover letter; 1 for a lone patch.
    number: int = 1
    total: int = 1


@dataclass(frozen=True)
class AttachmentInfo:
    number: int
    filename: str
    content_type: str
    size: int


@dataclass
class Parsed:
    """What a message says, cleaned for storing and showing."""

    message_id: str
    in_reply_to: str | None
    references: list[str]
    subject: str
    sender_name: str
    sender_address: str
    date: datetime | None
    body: str
    from_html: bool
    headers: str
    attachments: list[AttachmentInfo] = field(default_factory=list)
    #: The lower-cased names and decoded values of the headers a list acts on.
    patchset_update: str | None = None
    #: The series this message belongs to, when it is a patch or a cover letter.
    patch: PatchSubject | None = None


def clean(text: str, limit: int | None = None) -> str:
    """``text`` on one line, with no control characters (an encoded word
    decoding to a line break must not become one), cut to ``limit``."""
    text = _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    text = text.strip()
    return text[:limit] if limit is not None else text


_RAW_8BIT = re.compile(r"[\udc80-\udcff]")


def _unescape_8bit(value: str) -> str:
    """A header sent as raw 8-bit bytes (not RFC 2047), read as UTF-8, or
    as Windows-1252 when it is not UTF-8."""
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_header(value: object) -> str:
    """A header's value with its encoded words decoded, whatever they hold
    (a header of raw 8-bit bytes comes as an ``email.header.Header``)."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        out = []
        for chunk, charset in email.header.decode_header(value):
            if isinstance(chunk, str):
                out.append(chunk)
            elif charset in (None, "unknown-8bit"):
                out.append(_unescape_8bit(chunk.decode("ascii", "surrogateescape")))
            else:
                out.append(_charset_text(chunk, charset))
        return "".join(out)
    text = str(value)
    if _RAW_8BIT.search(text):
        return _unescape_8bit(text)
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return text.encode("ascii", "replace").decode("ascii")


def _ids(value: str | None) -> list[str]:
    return [m[:MAX_MESSAGE_ID] for m in _MSGID.findall(str(value or ""))]


def _charset_text(payload: bytes, charset: str | None) -> str:
    name = (charset or "us-ascii").strip().strip('"').lower()
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    if name in ("us-ascii", "ascii"):
        name = "utf-8"  # mail labelled ASCII is often UTF-8 in truth
    try:
        return payload.decode(name)
    except UnicodeDecodeError:
        # A lying label: what most such mail turns out to be.
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("cp1252", "replace")


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def text_of(part: Message) -> str:
    return _charset_text(_payload(part), part.get_content_charset()).replace("\x00", "")


_BLOCK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6]|/pre|/blockquote|hr)\b[^>]*>", re.I)


def html_to_text(markup: str) -> str:
    """The text of an HTML part: no tags, no scripts or styles, entities
    decoded, a line break where a block ended."""
    marked = _BLOCK.sub(lambda m: m[0] + "\n", markup)
    text = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    text = html.unescape(text)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _kinds(message: Message) -> Iterator[tuple[str, Message]]:
    """Each leaf part as ``("text" | "html" | "attachment", part)``, in
    order; the same order every time (attachments are numbered by it)."""
    have_text = False
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            kind = "text/plain"  # a multipart without parts (no boundary): its text
        disposition = part.get_content_disposition()
        if disposition != "attachment" and kind == "text/plain" and not have_text:
            have_text = True
            yield "text", part
        elif disposition != "attachment" and kind == "text/html":
            yield "html", part
        elif disposition == "inline" and kind == "text/plain":
            yield "text-more", part
        else:
            yield "attachment", part


def _filename(part: Message, number: int) -> str:
    try:
        name = part.get_filename()
    except (LookupError, UnicodeError, ValueError):
        name = None
    name = clean(decode_header(name)) if name else ""
    name = name.replace("/", "_").replace("\\", "_").lstrip(".")
    return name[:MAX_FILENAME] or f"attachment-{number}"


def attachment_part(raw: bytes, number: int) -> tuple[str, str, bytes] | None:
    """Attachment ``number`` (from 1) of a stored message: its file name,
    content type and bytes; ``None`` when there is no such attachment."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    count = 0
    for kind, part in _kinds(message):
        if kind == "attachment":
            count += 1
            if count == number:
                return _filename(part, number), part.get_content_type(), _payload(part)
    return None


def _date(message: Message) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if not 1970 <= parsed.year <= 9999:
        return None
    return parsed


def _sender(message: Message) -> tuple[str, str]:
    raw = message.get_all("From") or []
    if len(raw) != 1:
        raise Malformed("5.6.0 the message needs exactly one From header")
    # The address from the raw header (an address is ASCII); the name decoded.
    # A header of raw 8-bit bytes is read as text first.
    text = decode_header(raw[0]) if isinstance(raw[0], email.header.Header) else str(raw[0])
    name, address = email.utils.parseaddr(text)
    address = address.strip()
    angle = _ANGLE_ADDRESS.search(text)
    if angle is not None and (not ADDRESS.match(address) or address != angle[2]):
        # An encoded word holding ":" or "@" (a header-injection attempt,
        # say) confuses the parser; the address in angle brackets is it.
        name, address = angle[1].strip().strip('"'), angle[2]
    if not address or not ADDRESS.match(address) or len(address) > MAX_ADDRESS:
        raise Malformed("5.1.7 the From header holds no address mail can be sent back to")
    return clean(decode_header(name), MAX_NAME), address


def parse_patch_subject(subject: str) -> PatchSubject | None:
    """The series ``subject`` names, or ``None`` when it is no patch's
    (a reply's ``Re: [PATCH ...]`` is not)."""
    match = _PATCH_SUBJECT.match(subject)
    if match is None:
        return None
    version, number, total, prefix = 1, 1, 1, []
    for word in match["tags"].split():
        if _VERSION.match(word):
            version = int(word[1:])
        elif _NUMBERS.match(word):
            number, total = (int(n) for n in word.split("/"))
        elif word.upper() not in ("PATCH", "RFC", "RESEND"):
            prefix.append(word)
    if total < 1 or number > total or version < 1:
        return None
    return PatchSubject(
        clean(match["title"], MAX_SUBJECT), " ".join(prefix)[:128], version, number, total
    )


def has_diff(text: str) -> bool:
    return _DIFF.search(text) is not None


def parse(raw: bytes, *, domain: str = "srht.invalid") -> Parsed:
    """Read ``raw`` (a whole message); :class:`Malformed` when it cannot be
    archived. A message without a ``Message-ID`` is given one (in
    ``domain``), as a mail server would."""
    if not raw.strip():
        raise Malformed("5.6.0 the message is empty")
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not message.keys():
        raise Malformed("5.6.0 the message has no headers")
    name, address = _sender(message)
    ids = _ids(message.get("Message-ID"))
    message_id = ids[0] if ids else f"{uuid.uuid4().hex}@{domain}"
    parents = _ids(message.get("In-Reply-To"))
    references = _ids(" ".join(str(v) for v in message.get_all("References") or []))
    subject = clean(decode_header(message.get("Subject")), MAX_SUBJECT)
    body, from_html, html_body = "", False, None
    attachments: list[AttachmentInfo] = []
    extra: list[str] = []
    for kind, part in _kinds(message):
        if kind == "text" and not body:
            body = text_of(part)
        elif kind == "text-more":
            extra.append(text_of(part))
        elif kind == "html":
            html_body = html_body or text_of(part)
        else:
            number = len(attachments) + 1
            attachments.append(
                AttachmentInfo(
                    number,
                    _filename(part, number),
                    part.get_content_type()[:128],
                    len(_payload(part)),
                )
            )
    if not body and html_body:
        body, from_html = html_to_text(html_body), True
    if extra:
        body = "\n".join([body, *extra])
    body = body.replace("\r\n", "\n")[:MAX_BODY]
    header_lines = [f"{key}: {clean(decode_header(value))}" for key, value in message.items()]
    update = message.get("X-Srht-Patchset-Update")
    patch = parse_patch_subject(subject)
    if patch is not None and patch.number > 0 and not has_diff(body):
        patch = None  # "[PATCH 2/3]" on a message with no diff is talk, not a patch
    return Parsed(
        message_id=message_id,
        in_reply_to=parents[0] if parents else (references[-1] if references else None),
        references=references,
        subject=subject,
        sender_name=name,
        sender_address=address,
        date=_date(message),
        body=body,
        from_html=from_html,
        headers="\n".join(header_lines),
        attachments=attachments,
        patchset_update=clean(decode_header(update)).lower() if update else None,
        patch=patch,
    )
