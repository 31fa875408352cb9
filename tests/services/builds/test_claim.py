"""The runners' internal API hands a queued job out whatever else the
database is doing for its owner at that moment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from .conftest import BuildsSite

pytestmark = pytest.mark.postgres


def test_a_job_is_claimed_while_another_of_its_owner_is_being_submitted(
    site: BuildsSite,
) -> None:
    """A job being submitted holds a key-share lock on its owner's row
    until it commits. The claim locks the job's row only: it used to lock
    the owner's too (the eager join), skip the job as locked, and leave it
    to the watchdog's republishing a minute later (a runner on a broker
    takes each job id once)."""
    alice = site.user("alice")
    first = site.job(alice)
    with site.db.engine.connect() as other:
        # What the insert of alice's next job holds until its commit.
        other.execute(
            sa.text('SELECT 1 FROM "user" WHERE id = :id FOR KEY SHARE'), {"id": alice.id}
        )
        answer = site.internal("/claim", {"runner": "r1", "job": first})
        other.rollback()
    assert answer["job"] is not None, answer
    assert answer["job"]["id"] == first
    assert site.get_job(first).status == "running"
