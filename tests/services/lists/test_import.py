"""``srht lists import ~alice/devel archive.mbox``: an existing archive
comes in with its threads (replies that come before what they answer
included), sends nothing and tells no webhook, and a second run adds
nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from srht_plugins.lists.mbox import mbox_entry

from .conftest import message

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def srht(site: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "srht_core.cli", "--config", str(site.config_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_mbox_comes_in_with_its_threads(site: Any, tmp_path: Path) -> None:
    alice = site.user("alice")
    devel = site.mailing_list(alice, "devel")
    site.subscribe(devel, "carol@example.org")
    mails = [
        message("Release plans", "When?\n", message_id="r1"),
        # An answer stored before the message it answers.
        message(
            "Re: Re: Release plans",
            "Friday.\n",
            message_id="r3",
            in_reply_to="r2@example.org",
            references="<r1@example.org> <r2@example.org>",
        ),
        message("Re: Release plans", "Soon.\n", message_id="r2", in_reply_to="r1@example.org"),
        message("Unrelated", "Hello.\n", message_id="u1"),
    ]
    archive = tmp_path / "archive.mbox"
    archive.write_bytes(b"".join(mbox_entry(m.as_bytes()) for m in mails) + b"From broken\n\n")

    done = srht(site, "lists", "import", "~alice/devel", str(archive))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "Imported 4 messages into ~alice/devel (0 already there, 1 unreadable)."
    )
    assert "message 5: skipped: 5.6.0" in done.stderr
    by_id = {e.message_id: e for e in site.emails()}
    r1, r2, r3 = (by_id[f"r{n}@example.org"] for n in (1, 2, 3))
    assert r1.thread_id == r2.thread_id == r3.thread_id != by_id["u1@example.org"].thread_id
    assert (r2.parent_id, r3.parent_id) == (r1.id, r2.id)
    threads = site.api().get("/lists/alice/devel/threads").json["results"]
    assert sorted(t["messages"] for t in threads) == [1, 3]

    again = srht(site, "lists", "import", "~alice/devel", str(archive))
    assert "Imported 0 messages into ~alice/devel (4 already there, 1 unreadable)." in again.stdout
    assert site.jobs("srht.send-message") == [] and site.deliveries() == []

    missing = srht(site, "lists", "import", "~alice/nothing", str(archive))
    assert missing.returncode == 1
    assert "there is no list ~alice/nothing" in missing.stderr
