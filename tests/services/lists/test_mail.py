"""Mail in and out, for real: a real ``smtplib`` client talking to ``srht
lists smtp`` and ``srht lists lmtp`` (processes of their own), the answers
an MTA or a sender sees, what the archive then shows, and the copies the
worker sends on through the core's mail."""

from __future__ import annotations

import re
import signal
import smtplib
from typing import Any

import pytest

from .conftest import DOMAIN, message

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LIST = f"~alice/devel@{DOMAIN}"


def test_a_post_and_a_reply_are_archived_threaded_and_sent_on(site: Any, listener: Any) -> None:
    alice, carol = site.user("alice"), site.user("carol")
    devel = site.mailing_list(alice, "devel", description="Widget development.")
    site.subscribe(devel, carol.email)
    site.subscribe(devel, "bob@example.org")

    assert (
        listener.send(message("Frobnicator design", "How should it frob?\n", message_id="q1")) == {}
    )
    assert (
        listener.send(
            message(
                "Re: Frobnicator design",
                "> How should it frob?\nGently.\n",
                sender="Carol <carol@example.org>",
                message_id="a1",
                in_reply_to="q1@example.org",
            )
        )
        == {}
    )
    listener.send(
        message(
            "Re: Frobnicator design",
            "> Gently.\nAgreed.\n",
            message_id="a2",
            in_reply_to="a1@example.org",
            references="<q1@example.org> <a1@example.org>",
        )
    )

    first, reply, nested = site.emails()
    assert first.thread_id == reply.thread_id == nested.thread_id
    assert (reply.parent_id, nested.parent_id) == (first.id, reply.id)
    page = site.browser().get(f"/~alice/devel/threads/{first.thread_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Nested by who answered whom: depth 0, 1, 2, in that order.
    depths = re.findall(r'class="message depth-(\d)"', html)
    assert depths == ["0", "1", "2"]
    assert "How should it frob?" in html and "Gently." in html and "Agreed." in html
    listed = site.browser().get("/~alice/devel").get_data(as_text=True)
    assert "Frobnicator design" in listed and ">3<" in listed  # one thread, three messages

    site.run_jobs()
    copies = site.mail_for(carol.email)
    # Carol gets the question and Bob's answer to her, not her own message.
    assert [c["Message-ID"] for c in copies] == ["<q1@example.org>", "<a2@example.org>"]
    copy = copies[1]
    assert copy["From"] == "Bob <bob@example.org>"  # the author, untouched
    assert copy["In-Reply-To"] == "<a1@example.org>"
    assert copy["References"] == "<q1@example.org> <a1@example.org>"
    assert copy["List-Id"] == f"~alice/devel <devel.alice.{DOMAIN}>"
    assert copy["List-Post"] == f"<mailto:{LIST}>"
    assert copy["List-Unsubscribe"] == f"<mailto:~alice/devel+unsubscribe@{DOMAIN}>"
    assert copy["List-Subscribe"] == f"<mailto:~alice/devel+subscribe@{DOMAIN}>"
    assert copy["List-Archive"] == f"<{site.state.origin}/~alice/devel>"
    assert copy["Archived-At"] == f"<{site.state.origin}/~alice/devel/messages/{nested.id}>"
    assert copy.get_content() == "> Gently.\nAgreed.\n"
    # Bob wrote two of them: he gets only Carol's.
    assert [c["Message-ID"] for c in site.mail_for("bob@example.org")] == ["<a1@example.org>"]


def test_rewrite_from_sends_on_from_the_list_with_the_author_to_reply_to(
    site: Any, listener: Any
) -> None:
    alice = site.user("alice")
    devel = site.mailing_list(alice, "devel", rewrite_from=True)
    site.subscribe(devel, "carol@example.org")
    listener.send(message("Hello", sender="Bob Example <bob@strict.example.org>"))
    site.run_jobs()
    [copy] = site.mail_for("carol@example.org")
    assert copy["From"] == f"Bob Example via ~alice/devel <{LIST}>"
    assert copy["Reply-To"] == "Bob Example <bob@strict.example.org>"


def test_refusals_have_clear_reply_codes(site: Any, listener: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel", post_policy="subscribers")
    site.mailing_list(alice, "old", archived=True)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
        listener.send(message(to=f"~alice/nothing@{DOMAIN}"))
    code, text = unknown.value.recipients[f"~alice/nothing@{DOMAIN}"]
    assert (code, text) == (550, f"5.1.1 <~alice/nothing@{DOMAIN}>: no such list here".encode())
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        listener.send(message(to="~alice/devel@elsewhere.example.org"))

    with pytest.raises(smtplib.SMTPDataError) as refused:
        listener.send(message())
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.decode() == (
        f"5.7.1 bob@example.org may not post to ~alice/devel: only subscribers may post; "
        f"subscribe by writing to ~alice/devel+subscribe@{DOMAIN}"
    )
    with pytest.raises(smtplib.SMTPDataError) as archived:
        listener.send(message(to=f"~alice/old@{DOMAIN}", sender="alice@example.org"))
    assert archived.value.smtp_code == 550
    assert b"archived" in archived.value.smtp_error

    with pytest.raises(smtplib.SMTPDataError) as malformed:
        listener.send(b"Subject: no sender\n\nWho wrote this?\n", to=[LIST])
    assert malformed.value.smtp_code == 550
    assert malformed.value.smtp_error.startswith(b"5.6.0")
    assert site.emails() == []


def test_a_recipient_refused_after_the_data_is_bounced_to_the_sender(
    site: Any, listener: Any
) -> None:
    """Over SMTP one reply answers the data for every recipient: when one
    list takes the message and another refuses it, the sender gets the
    250 and a bounce naming the refused list and why."""
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    site.mailing_list(alice, "closed", post_policy="subscribers")
    closed = f"~alice/closed@{DOMAIN}"
    refused = listener.send(message(), to=[LIST, closed], sender="bob@example.org")
    assert refused == {}  # both recipients passed RCPT; the refusal came after the data
    assert [e.subject for e in site.emails()] == ["Hello"]
    site.run_jobs()
    [bounce] = [m for m in site.mail_for("bob@example.org") if "Undelivered" in str(m["Subject"])]
    assert str(bounce["Auto-Submitted"]) == "auto-replied"
    text = bounce.get_content()
    assert f"<{closed}>: 550 5.7.1 bob@example.org may not post to ~alice/closed" in text
    assert "Subject: Hello" in text  # the headers of what was refused


@pytest.mark.lists_config(lists={"max-message-size": 4096})
def test_a_message_over_the_size_limit_is_refused_with_552(site: Any, listener: Any) -> None:
    site.mailing_list(site.user("alice"), "devel")
    with pytest.raises(smtplib.SMTPException) as refused:
        listener.send(message(body="x" * 70 + "\n" * 100 + ("y" * 70 + "\n") * 100))
    code = getattr(refused.value, "smtp_code", None) or refused.value.args[0]
    assert code == 552
    assert site.emails() == []
    listener.send(message(body="small\n"))  # the connection's next message is fine
    assert len(site.emails()) == 1


def test_a_moderated_list_holds_posts_from_others_for_the_owner(site: Any, listener: Any) -> None:
    alice = site.user("alice")
    devel = site.mailing_list(alice, "devel", post_policy="members", moderated=True)
    site.subscribe(devel, "carol@example.org")

    assert listener.send(message("Please merge my thing", message_id="held")) == {}
    [held] = site.emails()
    assert held.status == "held" and held.thread_id is None
    assert site.browser().get(f"/~alice/devel/messages/{held.id}").status_code == 404
    site.run_jobs()
    [notice] = site.mail_for("alice@example.org")
    assert notice["Subject"] == "Held for moderation: Please merge my thing"
    assert site.mail_for("carol@example.org") == []

    owner = site.browser(alice)
    queue = owner.get("/~alice/devel/moderation").get_data(as_text=True)
    assert "Please merge my thing" in queue
    approved = owner.submit(
        "/~alice/devel/moderation", action=f"/~alice/devel/moderation/{held.id}/approve"
    )
    assert approved.status_code == 302
    [archived] = site.emails()
    assert archived.status == "archived" and archived.thread_id is not None
    site.run_jobs()
    assert [m["Message-ID"] for m in site.mail_for("carol@example.org")] == ["<held@example.org>"]
    # The owner's own post is never held.
    listener.send(message("From the owner", sender="alice@example.org"))
    assert [e.status for e in site.emails()] == ["archived", "archived"]


def test_subscribing_and_unsubscribing_by_mail_with_confirmation(site: Any, listener: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    dave = "Dave <dave@example.org>"

    listener.send(message("subscribe", "", sender=dave, to=f"~alice/devel+subscribe@{DOMAIN}"))
    site.run_jobs()
    [confirmation] = site.mail_for("dave@example.org")
    assert confirmation["Subject"] == "Confirm: subscribe ~alice/devel"
    assert confirmation["From"] == f"~alice/devel <{LIST}>"
    reply_to = str(confirmation["Reply-To"])
    assert re.fullmatch(rf"~alice/devel\+confirm-[0-9a-f]{{32}}@{re.escape(DOMAIN)}", reply_to)
    with site.context():
        from srht_plugins.lists.models import Subscription

        assert site.app.extensions["srht"].db.scoped().query(Subscription).count() == 0

    # Someone else cannot confirm it for Dave.
    with pytest.raises(smtplib.SMTPDataError) as forged:
        listener.send(message("Re: confirm", sender="mallory@example.org", to=reply_to))
    assert forged.value.smtp_code == 550
    # Dave replies (any text).
    listener.send(
        message(
            f"Re: {confirmation['Subject']}",
            "yes\n",
            sender=dave,
            to=reply_to,
            in_reply_to=str(confirmation["Message-ID"]).strip("<>"),
        )
    )
    site.run_jobs()
    welcome = site.mail_for("dave@example.org")[-1]
    assert welcome["Subject"] == "Welcome to ~alice/devel"
    listener.send(message("A post", sender="alice@example.org", message_id="post1"))
    site.run_jobs()
    assert site.mail_for("dave@example.org")[-1]["Message-ID"] == "<post1@example.org>"
    # A confirmation is used once.
    with pytest.raises(smtplib.SMTPDataError):
        listener.send(message("Re: again", sender=dave, to=reply_to))

    listener.send(message("unsubscribe", "", sender=dave, to=f"~alice/devel+unsubscribe@{DOMAIN}"))
    site.run_jobs()
    ask = site.mail_for("dave@example.org")[-1]
    assert ask["Subject"] == "Confirm: unsubscribe ~alice/devel"
    listener.send(message("Re: unsubscribe", sender=dave, to=str(ask["Reply-To"])))
    site.run_jobs()
    assert site.mail_for("dave@example.org")[-1]["Subject"] == "Unsubscribed from ~alice/devel"
    listener.send(message("Another post", sender="alice@example.org", message_id="post2"))
    site.run_jobs()
    assert "<post2@example.org>" not in [m["Message-ID"] for m in site.mail_for("dave@example.org")]


def test_lmtp_answers_each_recipient_after_the_data(site: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    site.mailing_list(alice, "closed", post_policy="members")
    lmtp = site.listen("lmtp")
    with lmtp.smtp() as client:
        client.ehlo_or_helo_if_needed()
        assert client.mail("postfix@example.org")[0] == 250
        assert client.rcpt(LIST)[0] == 250
        assert client.rcpt(f"~alice/closed@{DOMAIN}")[0] == 250
        assert client.rcpt(f"~alice/none@{DOMAIN}")[0] == 550  # refused before the data
        first = client.data(message(to=f"{LIST}, ~alice/closed@{DOMAIN}").as_bytes())
        second = client.getreply()  # LMTP: one answer per accepted recipient
    assert first[0] == 250 and first[1].startswith(b"2.0.0 archived at ")
    assert second[0] == 550 and b"only its members may post" in second[1]
    [stored] = site.emails()
    assert stored.list_id != 0


def test_nothing_acknowledged_is_lost_when_the_listener_is_killed(site: Any) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    first = site.listen("smtp")
    first.send(message("Kept", message_id="kept"))
    first.stop(signal.SIGKILL)  # right after the 250, no goodbye
    [kept] = site.emails()
    assert kept.message_id == "kept@example.org" and kept.status == "archived"

    # The sender (or an MTA that missed the 250) tries again: taken, not doubled.
    second = site.listen("smtp")
    assert second.send(message("Kept", message_id="kept")) == {}
    assert len(site.emails()) == 1


def test_the_owner_sets_a_patchset_status_by_replying_with_a_header(
    site: Any, listener: Any
) -> None:
    alice = site.user("alice")
    site.mailing_list(alice, "devel")
    patch = (
        "frob: be gentle\n---\n frob.c | 2 +-\n\n"
        "diff --git a/frob.c b/frob.c\n--- a/frob.c\n+++ b/frob.c\n@@ -1 +1 @@\n-hard\n+soft\n"
    )
    listener.send(message("[PATCH] frob: be gentle", patch, message_id="p1"))
    for who, expected in (("bob@example.org", "proposed"), ("alice@example.org", "applied")):
        listener.send(
            message(
                "Re: [PATCH] frob: be gentle",
                "Thanks!\n",
                sender=who,
                in_reply_to="p1@example.org",
                headers={"X-Srht-Patchset-Update": "APPLIED"},
            )
        )
        [patchset] = site.api(alice).get("/lists/alice/devel/patchsets").json["results"]
        assert patchset["status"] == expected, who
