"""srht_core.mail: mail is a job. Without an SMTP server it lands in the
outbox as an .eml file; with one it crosses a real SMTP connection; when
the server cannot be reached it waits for a retry, never dropped."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from srht_core.jobs import job_table, run_until_idle
from srht_core.mail import send_mail
from srht_core.testing import free_port


def mail_jobs(app: Any) -> list[Any]:
    with app.extensions["srht"].db.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(job_table)
                .where(job_table.c.name == "srht.send-mail")
                .order_by(job_table.c.id)
            )
        )


def queue_mail(app: Any, *args: Any, **kwargs: Any) -> int:
    """Queue a message as a view would: in the app's session, committed."""
    from srht_core import db_session

    with app.test_request_context(method="POST"):
        job_id = send_mail(*args, **kwargs)
        db_session.commit()
    return job_id


@pytest.mark.postgres
def test_without_smtp_host_mail_is_written_to_the_outbox_by_the_worker(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    app = make_app("chores", chores_config())
    outbox = tmp_path / "data" / "outbox"

    queue_mail(
        app,
        "alice@example.org",
        "Your chores",
        "Water the plants.\n",
        reply_to="bob@example.org",
        headers={"X-Chores": "weekly"},
    )
    assert not outbox.exists() or list(outbox.iterdir()) == []  # only the worker sends

    run_until_idle(app)

    [eml] = outbox.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "alice@example.org"
    assert message["From"] == "srht test <srht@127.0.0.1>"
    assert message["Subject"] == "Your chores"
    assert message["Reply-To"] == "bob@example.org"
    assert message["X-Chores"] == "weekly"
    assert message["Message-ID"].strip("<>") + ".eml" == eml.name
    assert message.get_content() == "Water the plants.\n"
    assert [job.status for job in mail_jobs(app)] == ["done"]


@pytest.mark.postgres
def test_mail_queued_in_a_rolled_back_transaction_is_never_sent(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    from srht_core import db_session

    app = make_app("chores", chores_config())
    with app.test_request_context(method="POST"):
        send_mail("alice@example.org", "Never", "This transaction fails.")
        db_session.rollback()

    run_until_idle(app)

    assert mail_jobs(app) == []
    assert not (tmp_path / "data" / "outbox").exists()


@pytest.mark.postgres
def test_with_smtp_host_mail_crosses_a_real_smtp_connection(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    smtp_sink: Any,
    tmp_path: Path,
) -> None:
    app = make_app(
        "chores",
        chores_config(
            mail={
                "smtp-host": smtp_sink.host,
                "smtp-port": smtp_sink.port,
                "smtp-encryption": "none",
                "smtp-from": "chores@example.org",
            }
        ),
    )

    queue_mail(app, "alice@example.org", "Your chores", "Sweep the floor.\n.\nThen rest.\n")
    assert smtp_sink.messages == []

    run_until_idle(app)

    [received] = smtp_sink.wait_for(1)
    assert received.sender == "chores@example.org"
    assert received.recipients == ["alice@example.org"]
    message = received.message
    assert message["From"] == "srht test <chores@example.org>"
    assert message["Subject"] == "Your chores"
    # a line holding only a dot survives SMTP's dot-stuffing
    assert message.get_content() == "Sweep the floor.\n.\nThen rest.\n"
    assert [job.status for job in mail_jobs(app)] == ["done"]
    assert not (tmp_path / "data" / "outbox").exists()


@pytest.mark.postgres
def test_an_unreachable_smtp_server_leaves_the_mail_queued_for_a_retry(
    chores_plugin: Any, chores_config: Callable[..., Any], make_app: Callable[..., Any]
) -> None:
    app = make_app(
        "chores",
        chores_config(
            mail={"smtp-host": "127.0.0.1", "smtp-port": free_port(), "smtp-encryption": "none"}
        ),
    )

    queue_mail(app, "alice@example.org", "Your chores", "Nobody is listening.")
    run_until_idle(app)

    [job] = mail_jobs(app)
    assert (job.status, job.attempts) == ("queued", 1)
    assert "ConnectionRefusedError" in job.last_error
    assert job.run_after - job.updated == timedelta(seconds=30)  # the mail job's backoff


def message_jobs(app: Any) -> list[Any]:
    with app.extensions["srht"].db.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(job_table)
                .where(job_table.c.name == "srht.send-message")
                .order_by(job_table.c.id)
            )
        )


#: A message built whole by a service (a list passing a post on): its
#: headers, threading and parts must reach every recipient as they are.
WHOLE = (
    b"From: Alice <alice@example.org>\n"
    b"To: ~alice/dev@lists.example.org\n"
    b"Subject: [PATCH] frob: fix\n"
    b"Message-ID: <patch-1@example.org>\n"
    b"In-Reply-To: <cover@example.org>\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; h=from:subject; b=abc\n"
    b"List-Id: <dev.alice.lists.example.org>\n"
    b"\n"
    b"The fix.\n"
    b".\n"
    b"-- \n"
    b"Alice\n"
)


def queue_message(app: Any, *args: Any, **kwargs: Any) -> int:
    from srht_core import db_session
    from srht_core.mail import send_message

    with app.test_request_context(method="POST"):
        job_id = send_message(*args, **kwargs)
        db_session.commit()
    return job_id


@pytest.mark.postgres
def test_a_whole_message_reaches_every_recipient_unchanged_over_smtp(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    smtp_sink: Any,
) -> None:
    app = make_app(
        "chores",
        chores_config(
            mail={
                "smtp-host": smtp_sink.host,
                "smtp-port": smtp_sink.port,
                "smtp-encryption": "none",
                "smtp-from": "chores@example.org",
            }
        ),
    )
    queue_message(
        app,
        WHOLE,
        ["bob@example.org", "carol@example.org"],
        sender="~alice/dev+bounces@lists.example.org",
    )
    assert smtp_sink.messages == []  # only the worker sends

    run_until_idle(app)

    [received] = smtp_sink.wait_for(1)  # one transaction, every recipient
    assert received.sender == "~alice/dev+bounces@lists.example.org"
    assert received.recipients == ["bob@example.org", "carol@example.org"]
    assert received.data.replace(b"\r\n", b"\n") == WHOLE  # not a header touched
    assert [job.status for job in message_jobs(app)] == ["done"]


@pytest.mark.postgres
def test_without_smtp_host_each_recipient_gets_a_copy_in_the_outbox(
    chores_plugin: Any,
    chores_config: Callable[..., Any],
    make_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    app = make_app("chores", chores_config())
    queue_message(app, WHOLE, ["bob@example.org", "carol@example.org"])
    run_until_idle(app)

    copies = sorted((tmp_path / "data" / "outbox").glob("*.eml"))
    assert [p.name for p in copies] == ["patch-1@example.org.0.eml", "patch-1@example.org.1.eml"]
    for path, whose in zip(copies, ["bob@example.org", "carol@example.org"], strict=True):
        assert path.read_bytes() == f"Delivered-To: {whose}\n".encode() + WHOLE


@pytest.mark.postgres
def test_an_unreachable_smtp_server_keeps_a_whole_message_for_a_retry(
    chores_plugin: Any, chores_config: Callable[..., Any], make_app: Callable[..., Any]
) -> None:
    app = make_app(
        "chores",
        chores_config(
            mail={"smtp-host": "127.0.0.1", "smtp-port": free_port(), "smtp-encryption": "none"}
        ),
    )
    queue_message(app, WHOLE, ["bob@example.org"])
    run_until_idle(app)

    [job] = message_jobs(app)
    assert (job.status, job.attempts) == ("queued", 1)
    assert "ConnectionRefusedError" in job.last_error
