"""Hostile and broken mail: each is stored cleanly or refused with a clear
answer, and the archive's pages show what was stored, escaped, never a 500.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = pytest.mark.postgres

LIST = f"~alice/devel@{DOMAIN}"


@pytest.fixture
def devel(site: Any) -> Any:
    alice = site.user("alice")
    made = site.mailing_list(alice, "devel")
    site.subscribe(made, "carol@example.org")
    return made


def pages_of(site: Any) -> list[str]:
    """Every archive page of every stored message, fetched anonymously,
    each checked to be a 200; returns the HTML ones."""
    out = []
    browser = site.browser()
    for path in ["/~alice/devel", "/~alice/devel/patches", "/~alice/devel?search=a"]:
        response = browser.get(path)
        assert response.status_code == 200, path
        out.append(response.get_data(as_text=True))
    for email in site.emails():
        for path in (
            f"/~alice/devel/threads/{email.thread_id}",
            f"/~alice/devel/messages/{email.id}",
            f"/~alice/devel/messages/{email.id}/raw",
            f"/~alice/devel/threads/{email.thread_id}/mbox",
        ):
            response = browser.get(path)
            assert response.status_code == 200, (path, response.get_data()[:500])
            if response.mimetype == "text/html":
                out.append(response.get_data(as_text=True))
    return out


def deliver(site: Any, raw: bytes) -> str:
    return site.deliver(raw, LIST)


def test_broken_mime_is_stored_with_what_can_be_read(site: Any, devel: Any) -> None:
    unterminated = (
        b"From: bob@example.org\nSubject: broken multipart\nMessage-ID: <b1@x>\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\n\n'
        b"--XYZ\nContent-Type: text/plain\n\nThe text part.\n"
        b"--XYZ\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        b"!!!! not base64 at all ####\n"
    )  # no closing boundary, a base64 part that is not base64
    no_boundary = (
        b"From: bob@example.org\nSubject: no boundary\nMessage-ID: <b2@x>\n"
        b"Content-Type: multipart/alternative\n\nJust some text.\n"
    )
    bad_encoding = (
        b"From: bob@example.org\nSubject: =?utf-8?B?not-base64!?=\nMessage-ID: <b3@x>\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"Soft =\nbreak and =ZZ junk =C3=A9\n"
    )
    for raw in (unterminated, no_boundary, bad_encoding):
        assert deliver(site, raw).startswith("250 2.0.0 archived"), raw[:60]
    first, second, third = site.emails()
    assert first.body.startswith("The text part.")
    assert [a.content_type for a in first.attachments] == ["application/pdf"]
    assert "Just some text." in second.body
    assert "break and" in third.body and "é" in third.body
    pages_of(site)


def test_a_message_without_a_sender_or_headers_is_refused(site: Any, devel: Any) -> None:
    assert deliver(site, b"just text, no headers at all\n").startswith("550 5.6.0")
    assert deliver(site, b"Subject: hi\n\nno From\n").startswith("550 5.6.0")
    assert deliver(site, b"From: not an address\nSubject: hi\n\nx\n").startswith("550 5.1.7")
    two = b"From: a@example.org\nFrom: b@example.org\nSubject: hi\n\nx\n"
    assert deliver(site, two).startswith("550 5.6.0")
    assert deliver(site, b"").startswith("550 5.6.0")
    assert site.emails() == []


def test_a_10_mb_attachment_crosses_the_wire_and_downloads_intact(
    site: Any, devel: Any, listener: Any
) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    big = message("A big file", "See attached.\n", message_id="big")
    big.add_attachment(payload, maintype="application", subtype="octet-stream", filename="big.bin")
    assert listener.send(big) == {}
    [stored] = site.emails()
    [attachment] = stored.attachments
    assert (attachment.filename, attachment.size) == ("big.bin", len(payload))
    downloaded = site.browser().get(f"/~alice/devel/messages/{stored.id}/attachments/1")
    assert downloaded.status_code == 200 and downloaded.get_data() == payload
    assert downloaded.headers["Content-Type"] == "application/octet-stream"
    page = site.browser().get(f"/~alice/devel/threads/{stored.thread_id}").get_data(as_text=True)
    assert "big.bin" in page and "10.5 MB" in page


def test_header_injection_attempts_stay_in_their_header(site: Any, devel: Any) -> None:
    raw = (
        b"From: =?utf-8?q?Mallory=0D=0ABcc:_victim@example.org?= <mallory@example.org>\n"
        b"To: " + LIST.encode() + b"\n"
        b"Subject: =?utf-8?q?Hello=0D=0ABcc:_victim@example.org=0D=0A=0D=0Abody?=\n"
        b"Message-ID: <inj@x>\n\nHi.\n"
    )
    assert deliver(site, raw).startswith("250 2.0.0 archived")
    [stored] = site.emails()
    assert "\n" not in stored.subject and "\r" not in stored.subject
    assert stored.subject == "Hello Bcc: victim@example.org  body"
    assert stored.sender_address == "mallory@example.org"
    assert "\n" not in stored.sender_name
    site.run_jobs()
    # The copies go to the subscribers and nobody else.
    delivered = [str(m["Delivered-To"]) for m in site.outbox()]
    assert delivered == ["carol@example.org"]
    [copy] = site.outbox()
    assert copy.get_all("Bcc") is None
    # Asking for a subscription with such a name answers only the address.
    ask = (
        b"From: =?utf-8?q?x=0D=0ABcc:_victim@example.org?= <dave@example.org>\n"
        b"Subject: subscribe\nMessage-ID: <inj2@x>\n\n"
    )
    assert site.deliver(ask, f"~alice/devel+subscribe@{DOMAIN}").startswith("250")
    site.run_jobs()
    confirmations = [m for m in site.outbox() if m["Subject"] == "Confirm: subscribe ~alice/devel"]
    assert [str(m["To"]) for m in confirmations] == ["dave@example.org"]
    assert all(m.get_all("Bcc") is None for m in confirmations)
    pages_of(site)


def test_html_with_scripts_is_shown_as_text(site: Any, devel: Any) -> None:
    raw = (
        b"From: bob@example.org\nSubject: <script>alert('subject')</script>\nMessage-ID: <h1@x>\n"
        b"Content-Type: text/html; charset=utf-8\n\n"
        b"<html><head><style>p{}</style><script>alert('head')</script></head><body>"
        b'<p onclick="steal()">Hello <b>there</b>&amp; welcome</p>'
        b"<img src=x onerror=alert(1)><script>alert('body')</script><p>Second</p></body></html>\n"
    )
    assert deliver(site, raw).startswith("250 2.0.0 archived")
    [stored] = site.emails()
    assert stored.from_html
    assert stored.body == "Hello there& welcome\nSecond\n"
    for page in pages_of(site):
        assert "<script>alert" not in page
        assert "onerror=alert" not in page and 'onclick="steal' not in page
    shown = site.browser().get(f"/~alice/devel/messages/{stored.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in shown
    raw_page = site.browser().get(f"/~alice/devel/messages/{stored.id}/raw")
    assert raw_page.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "sandbox" in raw_page.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("iso-8859-1", "Café crème"),
        ("koi8-r", "Привет, мир"),
        ("shift_jis", "こんにちは"),
        ("windows-1252", "“quoted” – dash"),
        ("utf-16", "Wide text"),
    ],
)
def test_other_charsets_are_decoded(site: Any, devel: Any, charset: str, text: str) -> None:
    subject = (
        f"=?{charset}?b?" + __import__("base64").b64encode(text.encode(charset)).decode() + "?="
    )
    raw = (
        f"From: bob@example.org\nSubject: {subject}\nMessage-ID: <{charset}@x>\n"
        f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: base64\n\n"
    ).encode() + __import__("base64").encodebytes((text + "\n").encode(charset))
    assert deliver(site, raw).startswith("250 2.0.0 archived")
    [stored] = site.emails()
    assert stored.subject == text
    assert stored.body.strip() == text
    assert text in site.browser().get(f"/~alice/devel/messages/{stored.id}").get_data(as_text=True)


def test_lying_and_unknown_charsets_and_raw_8bit_are_read(site: Any, devel: Any) -> None:
    lying = (
        b"From: bob@example.org\nSubject: lying\nMessage-ID: <l1@x>\n"
        b"Content-Type: text/plain; charset=utf-8\n\nCaf\xe9 in latin-1\n"
    )
    unknown = (
        b"From: bob@example.org\nSubject: unknown\nMessage-ID: <l2@x>\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\n\nplain words\n"
    )
    eight_bit = (
        "From: Zoë <zoe@example.org>\nSubject: Grüße aus Köln\nMessage-ID: <l3@x>\n"
        "Content-Type: text/plain; charset=utf-8\n\nÜmlauts\x00 and a NUL\n"
    ).encode()
    for raw in (lying, unknown, eight_bit):
        assert deliver(site, raw).startswith("250 2.0.0 archived"), raw[:40]
    first, second, third = site.emails()
    assert first.body == "Café in latin-1\n"
    assert second.body == "plain words\n"
    assert third.subject == "Grüße aus Köln" and third.body == "Ümlauts and a NUL\n"
    assert (third.sender_name, third.sender_address) == ("Zoë", "zoe@example.org")
    pages_of(site)


def test_odd_headers_are_kept_within_bounds(site: Any, devel: Any) -> None:
    long_id = "x" * 2000
    raw = (
        f"From: bob@example.org\nSubject: {'s' * 5000}\nMessage-ID: <{long_id}@x>\n"
        f"Date: the day after tomorrow\nReferences: {' '.join(f'<r{i}@x>' for i in range(3000))}\n"
        "\nbody\n"
    ).encode()
    assert deliver(site, raw).startswith("250 2.0.0 archived")
    nameless = b"From: bob@example.org\nSubject: no id\n\nbody\n"
    assert deliver(site, nameless).startswith("250 2.0.0 archived")
    first, second = site.emails()
    assert len(first.message_id) == 512 and len(first.subject) == 1024
    assert first.date is not None  # unreadable Date: when it arrived
    assert second.message_id.endswith(f"@{DOMAIN}")
    pages_of(site)
