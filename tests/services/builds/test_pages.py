"""builds' pages as a person uses them: forms posted with the CSRF token the
page gave, no JavaScript, a running job's page reloading itself."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from srht_plugins.builds.models import CANCELLED, FAILED, QUEUED, SUCCESS

pytestmark = pytest.mark.postgres

BAD = """image: debian/sid
tasks:
  - build: 3
  - build: echo again
"""


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def finish(site: Any, job_id: int, status: str, reason: str = "") -> None:
    """End a job as a runner would."""
    from srht_core import db_session
    from srht_plugins.builds.models import Job
    from srht_plugins.builds.submit import end

    with site.context():
        end(db_session.get(Job, job_id), status, reason)
        db_session.commit()


def test_submit_a_job_and_watch_its_page(site: Any) -> None:
    alice = site.user("alice")
    browser = site.browser(alice)
    form = browser.get("/submit")
    assert form.status_code == 200
    assert "image: debian/bookworm" in text(form)  # an example to start from

    sent = browser.submit(
        "/submit",
        {"manifest": "image: debian/bookworm\ntasks:\n  - hello: echo hi\n", "note": "first"},
    )
    assert sent.status_code == 302
    assert re.search(r"/~alice/job/\d+$", sent.headers["Location"])
    page = browser.get(sent.headers["Location"])
    shown = text(page)
    assert "queued" in shown and "first" in shown and "hello" in shown
    # While it runs (or waits), the page reloads itself: no JavaScript.
    assert '<meta http-equiv="refresh" content="3">' in page.get_data(as_text=True)
    assert "Cancel job" in shown

    job_id = int(sent.headers["Location"].rsplit("/", 1)[1])
    finish(site, job_id, SUCCESS)
    done = browser.get(f"/~alice/job/{job_id}")
    assert 'http-equiv="refresh"' not in done.get_data(as_text=True)
    assert "Cancel job" not in text(done)


def test_a_bad_manifest_lists_every_problem_and_queues_nothing(site: Any) -> None:
    alice = site.user("alice")
    browser = site.browser(alice)
    refused = browser.submit("/submit", {"manifest": BAD})
    assert refused.status_code == 400
    shown = text(refused)
    assert "manifest:1 image: 'debian/sid' is not an image here (debian/bookworm)" in shown
    assert "manifest:3 tasks[0].build: must be text (a shell script), not a number" in shown
    assert "manifest:4 tasks[1]: 'build' is the name of an earlier task" in shown
    assert "nothing was queued" in shown
    # What was typed is kept, to fix it.
    assert "debian/sid" in refused.get_data(as_text=True)
    assert site.api(alice).get("/jobs").json["results"] == []


def test_a_secret_of_someone_else_is_a_problem_of_the_manifest(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    made = (
        site.api(bob)
        .post("/secrets", {"kind": "file", "content": "c2VjcmV0", "path": "~/.token"})
        .json
    )
    refused = site.browser(alice).submit(
        "/submit",
        {"manifest": f"image: debian/bookworm\nsecrets:\n  - {made['id']}\ntasks: [{{a: b}}]\n"},
    )
    assert refused.status_code == 400
    assert f"manifest:3 secrets[0]: you have no secret {made['id']}" in text(refused)


def test_cancelling_a_queued_job_ends_it_at_once(site: Any) -> None:
    alice = site.user("alice")
    job_id = site.job(alice)
    browser = site.browser(alice)
    page = browser.get(f"/~alice/job/{job_id}")
    assert "Cancel job" in text(page)
    cancelled = browser.submit(f"/~alice/job/{job_id}", {}, action=f"/~alice/job/{job_id}/cancel")
    assert cancelled.status_code == 302
    job = site.get_job(job_id)
    assert job.status == CANCELLED
    assert job.reason == "cancelled by its owner"
    shown = text(browser.get(f"/~alice/job/{job_id}"))
    assert "cancelled" in shown and "skipped" in shown


def test_only_the_owner_cancels_and_a_private_job_is_nobodys_else(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    public = site.job(alice)
    private = site.job(alice, visibility="private")
    intruder = site.browser(bob)
    page = intruder.get(f"/~alice/job/{public}")
    assert page.status_code == 200 and "Cancel job" not in text(page)
    csrf = intruder.csrf_token(f"/~alice/job/{public}/resubmit")
    refused = intruder.post(f"/~alice/job/{public}/cancel", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert site.get_job(public).status == QUEUED
    for path in ("", "/log", "/manifest", "/resubmit"):
        assert intruder.get(f"/~alice/job/{private}{path}").status_code == 404
        assert site.browser().get(f"/~alice/job/{private}{path}").status_code in (404, 302)
    assert f"#{private}" not in text(intruder.get("/~alice"))
    assert f"#{private}" in text(site.browser(alice).get("/~alice"))


def test_resubmit_with_an_edited_manifest(site: Any) -> None:
    alice = site.user("alice")
    first = site.job(alice, note="nightly")
    browser = site.browser(alice)
    form = browser.get(f"/~alice/job/{first}/resubmit")
    assert "echo building" in text(form) and "nightly" in text(form)
    edited = "image: debian/bookworm\ntasks:\n  - build: echo rebuilt\n"
    sent = browser.submit(f"/~alice/job/{first}/resubmit", {"manifest": edited})
    assert sent.status_code == 302
    second = int(sent.headers["Location"].rsplit("/", 1)[1])
    assert second != first
    raw = browser.get(f"/~alice/job/{second}/manifest")
    assert raw.get_data(as_text=True) == edited
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert "sandbox" in raw.headers["Content-Security-Policy"]


def test_lists_filter_by_status_and_repository(site: Any) -> None:
    alice = site.user("alice")
    ok = site.job(alice, note="passes")
    bad = site.job(alice, note="breaks")
    pushed = site.job(alice, note="from a push", repository="~alice/hello", commit="a" * 40)
    finish(site, ok, SUCCESS)
    finish(site, bad, FAILED, "Task build failed (exit 2).")
    finish(site, pushed, SUCCESS)
    browser = site.browser()
    everything = text(browser.get("/~alice"))
    assert all(f"#{n}" in everything for n in (ok, bad, pushed))
    failed = text(browser.get("/~alice?status=failed"))
    assert f"#{bad}" in failed and f"#{ok}" not in failed
    by_repo = text(browser.get("/~alice?repository=~alice/hello"))
    assert f"#{pushed}" in by_repo and f"#{ok}" not in by_repo
    repo_page = text(browser.get("/~alice/repos/hello"))
    assert f"#{pushed}" in repo_page and f"#{ok}" not in repo_page
    assert browser.get("/~alice?status=exploded").status_code == 400
    assert browser.get("/~nobody").status_code == 404


def test_the_badge_shows_the_latest_public_job_of_a_repository(site: Any) -> None:
    alice = site.user("alice")
    browser = site.browser()
    unknown = browser.get("/~alice/repos/hello/badge.svg")
    assert unknown.status_code == 200
    assert unknown.headers["Content-Type"].startswith("image/svg+xml")
    assert "builds: unknown" in unknown.get_data(as_text=True)
    job = site.job(alice, repository="~alice/hello", commit="b" * 40)
    finish(site, job, FAILED, "Task test failed (exit 1).")
    assert "builds: failed" in browser.get("/~alice/repos/hello/badge.svg").get_data(as_text=True)
    later = site.job(alice, repository="~alice/hello", commit="c" * 40)
    finish(site, later, SUCCESS)
    svg = browser.get("/~alice/repos/hello/badge.svg").get_data(as_text=True)
    assert "builds: success" in svg and svg.startswith("<svg")
    # A private job never shows on a badge anyone may embed.
    secret = site.job(alice, repository="~alice/hello", commit="d" * 40, visibility="private")
    finish(site, secret, FAILED)
    assert "builds: success" in browser.get("/~alice/repos/hello/badge.svg").get_data(as_text=True)


def test_a_group_lists_its_jobs(site: Any) -> None:
    from srht_core import db_session
    from srht_plugins.builds import submit
    from srht_plugins.builds.models import JobGroup

    alice = site.user("alice")
    with site.context():
        owner = db_session.merge(alice)
        group = JobGroup(owner_id=owner.id, note="main 1234567")
        db_session.add(group)
        ids = [submit.submit(owner, site_manifest(n), group=group).id for n in (1, 2)]
        db_session.commit()
        group_id = group.id
    page = text(site.browser().get(f"/groups/{group_id}"))
    assert "main 1234567" in page and all(f"#{n}" in page for n in ids)
    assert site.browser().get("/groups/999").status_code == 404


def site_manifest(n: int) -> str:
    return f"image: debian/bookworm\ntasks:\n  - step{n}: echo {n}\n"


def test_secrets_are_shown_once_then_only_their_id(site: Any) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    browser = site.browser(alice)
    made = browser.submit(
        "/secrets",
        {
            "name": "deploy token",
            "kind": "file",
            "content": "hunter2-very-secret",
            "path": "~/.config/token",
            "mode": "640",
        },
    )
    assert made.status_code == 200
    shown = text(made)
    uuid = re.search(r"- ([0-9a-f-]{36})", shown)
    assert uuid is not None
    assert "hunter2-very-secret" not in shown  # not even on the page that made it
    listed = text(browser.get("/secrets"))
    assert uuid[1] in listed and "deploy token" in listed and "~/.config/token" in listed
    assert "hunter2" not in listed
    # Sealed at rest: the database holds no trace of it.
    from srht_plugins.builds.models import Secret

    with site.session() as session:
        import sqlalchemy as sa

        stored = session.scalar(sa.select(Secret.sealed))
    assert b"hunter2" not in stored
    # Nobody else sees or deletes it.
    assert uuid[1] not in text(site.browser(bob).get("/secrets"))
    assert site.browser(bob).get(f"/secrets/{uuid[1]}/delete").status_code == 404
    question = browser.get(f"/secrets/{uuid[1]}/delete")
    assert question.status_code == 200 and "Delete the secret deploy token?" in text(question)
    deleted = browser.submit(f"/secrets/{uuid[1]}/delete", {})
    assert deleted.status_code == 302
    after = text(browser.get("/secrets"))
    assert f"Secret {uuid[1]} deleted." in after
    # Once the notice has been read, the id is nowhere on the page.
    assert uuid[1] not in text(browser.get("/secrets"))


def test_a_secret_form_with_problems_says_each(site: Any) -> None:
    alice = site.user("alice")
    refused = site.browser(alice).submit(
        "/secrets", {"kind": "ssh_key", "content": "not a key", "name": "x"}
    )
    assert refused.status_code == 400
    assert "That is not an SSH private key" in text(refused)
    refused = site.browser(alice).submit(
        "/secrets", {"kind": "file", "content": "x", "path": "relative/path"}
    )
    assert "Give an absolute path, or one in the home folder" in text(refused)


def test_enabling_builds_on_a_repository_without_git_says_why(site: Any) -> None:
    alice = site.user("alice")
    refused = site.browser(alice).submit("/repositories", {"repository": "hello"})
    assert refused.status_code == 400
    assert "git said no" in text(refused)
