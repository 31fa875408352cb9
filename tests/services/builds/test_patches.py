"""Patchsets on a list start jobs: meta, git, lists and builds as real
gunicorn processes on one config and a real PostgreSQL, lists' SMTP
listener as a process of its own, and the real ``git`` making the patches
(``git format-patch``) that arrive by SMTP.

alice links her list to her repository (builds registers a webhook on the
list, acting for her); bob mails a series; lists tells builds by a signed
``patchset:received``; builds reads the series' mbox from lists' API and
the manifests from git, and starts a job group; the jobs' specs, as a
runner claims them, carry the patches and no secrets; when the jobs end,
the patchset's page on lists says ``builds: success`` (or failed).

The background jobs of lists (webhook deliveries) and builds (starting
jobs, reporting) run in this process, one round at a time, so each test
says exactly what happened after each step; every call between the
services still goes over HTTP. The last test runs the jobs for real on a
runner (systemd-nspawn, as ``test_runner``), marked ``deploy``.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from srht_core.config import dump_ini
from srht_core.jobs import run_until_idle
from srht_core.testing import free_port, serve_service, site_config

from .conftest import BuildsSite

TESTS = Path(__file__).parents[2]
sys.path.insert(0, str(TESTS))

from support.accounts import create_user, csrf, log_in, srht  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DOMAIN = "lists.example.org"
SLOT = os.environ.get("SRHT_TESTHOSTS_SLOT", "0")
SECRET = "3096adfb-0733-4a16-99cb-7f525f17e9b2"
#: A bound on waiting for a real job (the first unpacks the image).
PATIENCE = 300


@dataclass
class Person:
    name: str
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class PatchSite(BuildsSite):
    """builds in this process (to read its tables, claim as a runner and
    run its background jobs), lists in this process (to run its webhook
    deliveries), and every service under gunicorn."""

    def __init__(self, app: Any, lists_app: Any, config: Path, origins: dict[str, str]):
        super().__init__(app)
        self.lists_app, self.config, self.origins = lists_app, config, origins
        self.smtp_port = 0
        self.work = Path(tempfile.mkdtemp(prefix="srht-patches-"))

    def person(self, name: str, scopes: str) -> Person:
        user_id = create_user(self.config, name)
        token = srht(self.config, "meta", "token", name, "--scopes", scopes)
        return Person(name, user_id, token.strip().splitlines()[-1])

    def run_everything(self) -> None:
        """lists' deliveries, then builds' jobs (what their workers do)."""
        run_until_idle(self.lists_app)
        run_until_idle(self.app)

    def git(self, *args: str, cwd: Path) -> str:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.work),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Bob",
            "GIT_AUTHOR_EMAIL": "bob@example.org",
            "GIT_COMMITTER_NAME": "Bob",
            "GIT_COMMITTER_EMAIL": "bob@example.org",
        }
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def repository(self, owner: Person, name: str, files: dict[str, str]) -> Path:
        """A private repository of ``owner``'s on git with ``files``,
        pushed; its working copy."""
        git = self.origins["git"]
        made = requests.post(
            git + "/api/repos",
            json={"name": name, "visibility": "private"},
            headers=owner.headers,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        copy = self.work / name
        copy.mkdir()
        for path, text in files.items():
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            (copy / path).write_text(text)
        self.git("init", "-q", "-b", "main", cwd=copy)
        self.git("add", ".", cwd=copy)
        self.git("commit", "-q", "-m", "First", cwd=copy)
        self.push(owner, copy)
        return copy

    def push(self, owner: Person, copy: Path) -> None:
        """Push ``copy``'s main to its repository on git, as ``owner``."""
        pushed = f"{self.origins['git']}/~{owner.name}/{copy.name}".replace(
            "http://", f"http://{owner.name}:{owner.token}@"
        )
        self.git("push", "-q", pushed, "main", cwd=copy)

    def mailing_list(self, owner: Person, name: str) -> None:
        made = requests.post(
            self.origins["lists"] + "/api/lists",
            json={"name": name},
            headers=owner.headers,
            timeout=30,
        )
        assert made.status_code == 201, made.text

    def send_series(
        self, copy: Path, to: str, changes: list[tuple[str, str, str]], *, skip: int = 0
    ) -> None:
        """Commit ``changes`` (``(subject, path, text)``) on a branch of
        ``copy``, ``git format-patch`` them (but the first ``skip``) and
        mail them to ``to``; the branch is dropped again."""
        branch = f"series-{os.urandom(4).hex()}"
        self.git("checkout", "-q", "-b", branch, "main", cwd=copy)
        for subject, path, text in changes:
            (copy / path).write_text(text)
            self.git("commit", "-q", "-a", "-m", subject, cwd=copy)
        out = self.work / branch
        since = f"{branch}~{len(changes) - skip}"
        self.git("format-patch", "-q", "--thread", f"--to={to}", "-o", str(out), since, cwd=copy)
        self.git("checkout", "-q", "main", cwd=copy)
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=60) as client:
            for patch in sorted(out.iterdir()):
                # format-patch's first line is an mbox separator, not a header.
                raw = patch.read_bytes().split(b"\n", 1)[1]
                raw = re.sub(rb"\r?\n", b"\r\n", raw)
                assert not client.sendmail("bob@example.org", [to], raw)

    def builds_api(self, person: Person, method: str, path: str, **kwargs: Any) -> Any:
        return requests.request(
            method,
            self.origins["builds"] + "/api" + path,
            headers=person.headers,
            timeout=60,
            **kwargs,
        )

    def patchset_jobs(self, list_ref: str) -> list[Any]:
        from srht_plugins.builds.models import Job, PatchsetBuild

        with self.session() as session:
            jobs = session.scalars(
                sa.select(Job)
                .join(PatchsetBuild, Job.patchset_build_id == PatchsetBuild.id)
                .where(PatchsetBuild.list_ref == list_ref)
                .order_by(Job.id)
            ).all()
            for job in jobs:
                _ = (job.group, job.patchset_build)
            session.expunge_all()
            return list(jobs)

    def claim(self, job_id: int) -> dict[str, Any]:
        spec = self.internal("/claim", {"runner": "claimer", "job": job_id})["job"]
        assert spec is not None and spec["id"] == job_id
        return spec  # type: ignore[no-any-return]

    def finish(self, job_id: int, status: str, reason: str = "") -> None:
        self.internal(
            f"/jobs/{job_id}/finish", {"runner": "claimer", "status": status, "reason": reason}
        )

    def tools(self, owner: str, name: str, patchset_id: int) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{self.origins['lists']}/api/lists/{owner}/{name}/patchsets/{patchset_id}/tools",
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def patch_site(srht_postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatchSite]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    from srht_core import Config, create_app, state_of

    folder = tmp_path_factory.mktemp("builds-patches")
    images = folder / "images.yml"
    cached = sorted(Path("/var/cache/srht-e2e").glob("image-*.tar.zst"))[-1:]
    # The runner test's image (test hosts' cached Debian); the built-in
    # name stands for it, so the manifests name an image the site has.
    images.write_text(f"debian/bookworm:\n  tarball: {cached[0]}\n" if cached else "")
    ports = {name: free_port() for name in ("meta", "git", "lists", "builds", "smtp")}
    data = site_config(
        folder / "data",
        {
            "meta": {"connection-string": srht_postgres.create_database()},
            "git": {
                "connection-string": srht_postgres.create_database(),
                "repos": str(folder / "repos"),
                "ssh-user": getpass.getuser(),
            },
            "lists": {
                "connection-string": srht_postgres.create_database(),
                "posting-domain": DOMAIN,
            },
            "builds": {
                "connection-string": srht_postgres.create_database(),
                "images": str(images),
                "network": "none",
                "time-limit": "120",
                "memory": "512",
                "disk": "512",
            },
        },
        srht={"internal-networks": "127.0.0.0/8"},
    )
    for name in ("meta", "git", "lists", "builds"):
        data[name]["origin"] = f"http://127.0.0.1:{ports[name]}"
    config_path = folder / "config.ini"
    config_path.write_text(dump_ini(data), encoding="utf-8")
    srht(config_path, "migrate")
    config = Config.from_string(config_path.read_text(), str(config_path))
    builds_app = create_app("builds", config)
    lists_app = create_app("lists", config)
    log = folder / "smtp.log"
    with open(log, "wb") as out:
        listener = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "srht_core.cli",
                "--config",
                str(config_path),
                "lists",
                "smtp",
                "--bind",
                f"127.0.0.1:{ports['smtp']}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        with (
            serve_service("meta", config_path, port=ports["meta"]),
            serve_service("git", config_path, port=ports["git"]),
            serve_service("lists", config_path, port=ports["lists"]),
            serve_service("builds", config_path, port=ports["builds"], workers=2),
        ):
            origins = {
                name: str(data[name]["origin"]) for name in ("meta", "git", "lists", "builds")
            }
            site = PatchSite(builds_app, lists_app, config_path, origins)
            site.smtp_port = ports["smtp"]
            _wait_for_port(ports["smtp"], listener, log)
            yield site
            shutil.rmtree(site.work, ignore_errors=True)
    finally:
        listener.terminate()
        listener.wait(15)
        for app in (builds_app, lists_app):
            state_of(app).db.dispose()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(log.read_text())


SCOPES = "git/repos:RW lists/lists:RW lists/emails:RW lists/tools:RW builds/jobs:RW"


def _manifest(git: str, owner: str, name: str, tasks: str) -> str:
    return (
        "image: debian/bookworm\n"
        f"sources: [{git}/~{owner}/{name}]\n"
        f"secrets: [{SECRET}]\n"
        f"tasks:\n{tasks}"
    )


@pytest.fixture(scope="module")
def alice(patch_site: PatchSite) -> Person:
    """alice, her repository ``hello`` (a manifest at its root and one in
    ``.builds/``: a group of two) and her list ``hello-devel``, linked."""
    site = patch_site
    person = site.person("alice", SCOPES)
    git = site.origins["git"]
    site.repository(
        person,
        "hello",
        {
            "greeting": "hello\n",
            ".builds/show.yml": _manifest(git, "alice", "hello", "  - show: cat hello/greeting\n"),
            ".builds/log.yml": _manifest(
                git, "alice", "hello", "  - log: tail -1 hello/.git/logs/HEAD\n"
            ),
        },
    )
    site.mailing_list(person, "hello-devel")
    linked = site.builds_api(
        person, "POST", "/list-links", json={"list": "hello-devel", "repository": "hello"}
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["list"] == "~alice/hello-devel"
    assert linked.json()["repository"] == "~alice/hello"
    return person


def test_linking_is_refused_for_a_list_not_owned_and_a_repository_without_manifests(
    patch_site: PatchSite, alice: Person
) -> None:
    site = patch_site
    carol = site.person("carol", SCOPES)
    site.mailing_list(carol, "carols")
    site.repository(carol, "bare", {"README": "no manifest here\n"})

    def link(who: Person, list_name: str, repository: str) -> Any:
        return site.builds_api(
            who, "POST", "/list-links", json={"list": list_name, "repository": repository}
        )

    # carol's list is not alice's, whichever way alice names it.
    theirs = link(alice, "~carol/carols", "hello")
    assert theirs.status_code == 403, theirs.text
    assert theirs.json()["errors"][0]["field"] == "list"
    assert "~carol/carols is not your list" in theirs.json()["errors"][0]["reason"]
    missing = link(alice, "carols", "hello")
    assert missing.status_code == 400, missing.text
    assert "you have no list carols on lists" in missing.json()["errors"][0]["reason"]
    # A repository without a manifest, and one alice cannot read.
    bare = link(carol, "carols", "bare")
    assert bare.status_code == 400, bare.text
    reason = bare.json()["errors"][0]["reason"]
    assert "~carol/bare has no build manifest (.build.yml or .builds/*.yml) on main" in reason
    site.mailing_list(alice, "scratch")
    unreadable = link(alice, "scratch", "~carol/bare")
    assert unreadable.status_code == 400, unreadable.text
    assert "~carol/bare does not exist, or you may not read it" in unreadable.text
    # Linked already (alice's fixture did it).
    again = link(alice, "hello-devel", "hello")
    assert again.status_code == 409, again.text
    assert "start the jobs of ~alice/hello already" in again.json()["errors"][0]["reason"]
    # Nothing was linked by the refusals, and no webhook left on carol's list.
    assert site.builds_api(carol, "GET", "/list-links").json()["results"] == []
    hooks = requests.get(
        f"{site.origins['lists']}/api/lists/carol/carols/webhooks",
        headers=carol.headers,
        timeout=30,
    )
    assert hooks.status_code == 200 and hooks.json()["results"] == [], hooks.text

    # The settings page says the same on the web, and wants its CSRF token.
    browser = log_in(site.origins["meta"], "alice")
    page = browser.get(site.origins["builds"] + "/lists", timeout=30)
    assert page.status_code == 200 and "~alice/hello-devel" in page.text
    form = {"list": "~carol/carols", "repository": "hello"}
    forged = browser.post(site.origins["builds"] + "/lists", data=form, timeout=30)
    assert forged.status_code in (400, 403) and "is not your list" not in forged.text
    refused = browser.post(
        site.origins["builds"] + "/lists",
        data={**form, "csrf_token": csrf(page.text)},
        timeout=30,
    )
    assert refused.status_code == 400
    assert "~carol/carols is not your list" in refused.text


def test_unlinking_removes_the_webhook_on_the_list(patch_site: PatchSite, alice: Person) -> None:
    site = patch_site
    site.mailing_list(alice, "other")
    made = site.builds_api(
        alice, "POST", "/list-links", json={"list": "~alice/other", "repository": "~alice/hello"}
    )
    assert made.status_code == 201, made.text
    hooks_url = f"{site.origins['lists']}/api/lists/alice/other/webhooks"
    [hook] = requests.get(hooks_url, headers=alice.headers, timeout=30).json()["results"]
    assert hook["events"] == ["patchset:received"]
    assert hook["url"].startswith(site.origins["builds"] + "/webhooks/lists/")
    gone = site.builds_api(alice, "DELETE", f"/list-links/{made.json()['id']}")
    assert gone.status_code == 204, gone.text
    assert requests.get(hooks_url, headers=alice.headers, timeout=30).json()["results"] == []
    links = site.builds_api(alice, "GET", "/list-links").json()["results"]
    assert [link["list"] for link in links] == ["~alice/hello-devel"]
    # Gone: deleting it again finds nothing.
    refused = site.builds_api(alice, "DELETE", f"/list-links/{made.json()['id']}")
    assert refused.status_code == 404


def _patchset_id(site: PatchSite, subject: str) -> int:
    answer = requests.get(
        f"{site.origins['lists']}/api/lists/alice/hello-devel/patchsets", timeout=30
    )
    assert answer.status_code == 200, answer.text
    found = [p["id"] for p in answer.json()["results"] if p["subject"] == subject]
    assert found, answer.json()
    return int(found[0])


def test_a_patchset_starts_a_job_group_whose_specs_carry_the_patches_and_no_secrets(
    patch_site: PatchSite, alice: Person
) -> None:
    site = patch_site
    copy = site.work / "hello"
    to = f"~alice/hello-devel@{DOMAIN}"
    site.send_series(
        copy,
        to,
        [
            ("Greet the world", "greeting", "hello, world\n"),
            ("Greet it warmly", "greeting", "hello, dear world\n"),
        ],
    )
    site.run_everything()
    jobs = site.patchset_jobs("~alice/hello-devel")
    assert [job.manifest_path for job in jobs] == [".builds/log.yml", ".builds/show.yml"]
    [group] = {job.group_id for job in jobs}
    patchset_id = _patchset_id(site, "Greet the world")
    head = site.git("rev-parse", "main", cwd=copy).strip()
    for job in jobs:
        assert (job.status, job.submitter, job.allow_secrets) == ("queued", "lists", False)
        assert (job.repository, job.commit, job.ref) == ("~alice/hello", head, "refs/heads/main")
        # The group's note names the patchset, its submitter and the list.
        assert job.note == (
            f"Patchset #{patchset_id} “Greet the world” from Bob <bob@example.org> "
            "on ~alice/hello-devel"
        )
        assert job.visibility == "private"  # the repository is
    # The API shows where a job came from.
    shown = site.builds_api(alice, "GET", f"/jobs/{jobs[0].id}").json()
    assert shown["patchset"] == {
        "list": "~alice/hello-devel",
        "id": patchset_id,
        "subject": "Greet the world",
        "version": 1,
        "submitter": "Bob <bob@example.org>",
    }
    assert shown["group"] == group and shown["submitter"] == "lists"
    page = site.browser(alice).get(f"/~alice/job/{jobs[0].id}").get_data(as_text=True)
    lists_page = f"{site.origins['lists']}/~alice/hello-devel/patches/{patchset_id}"
    assert f'<a href="{lists_page}">#{patchset_id}</a> “Greet the world”' in page
    # lists says the jobs run.
    [tool] = site.tools("alice", "hello-devel", patchset_id)
    assert (tool["name"], tool["status"]) == ("builds", "pending")
    assert tool["url"] == f"{site.origins['builds']}/groups/{group}"

    # As a runner claims them: the patches go with the repository's source
    # (a token to clone it, applied at the head of main); no secret does.
    spec = site.claim(jobs[0].id)
    [source] = spec["sources"]
    assert source["url"] == f"{site.origins['git']}/~alice/hello"
    assert source["ref"] == head and source["token"]
    mbox = base64.b64decode(source["patches"]).decode()
    assert mbox.count("\nSubject: [PATCH ") == 2
    assert "Subject: [PATCH 1/2] Greet the world" in mbox
    assert "+hello, dear world" in mbox
    assert source["patchset"] == f"~alice/hello-devel #{patchset_id}"
    assert spec["secrets"] == []
    assert any("Secrets were not given to this job" in note for note in spec["notes"])
    assert spec["environment"]["PATCHSET_ID"] == str(patchset_id)
    assert spec["environment"]["BUILD_SUBMITTER"] == "lists"

    # The same delivery again (lists retries when unsure) starts nothing new.
    with site.lists_app.app_context():
        from srht_core import db_session, redeliver
        from srht_core.webhooks import delivery_table

        delivery = db_session.execute(
            sa.select(delivery_table.c.id).where(delivery_table.c.event == "patchset:received")
        ).scalar_one()
        redeliver(delivery, session=db_session)
        db_session.commit()
    site.run_everything()
    assert [job.id for job in site.patchset_jobs("~alice/hello-devel")] == [j.id for j in jobs]

    # The jobs end; lists' patchset page says so, with a link to the group.
    site.finish(jobs[0].id, "success")
    site.run_everything()
    [tool] = site.tools("alice", "hello-devel", patchset_id)
    assert tool["status"] == "pending" and tool["details"] == "2 jobs, 1 ended"
    spec = site.claim(jobs[1].id)
    site.finish(jobs[1].id, "failed", "Task show failed (exit 1).")
    site.run_everything()
    [tool] = site.tools("alice", "hello-devel", patchset_id)
    assert tool["status"] == "failed"
    assert tool["details"] == ".builds/show.yml: Task show failed (exit 1)."
    page = requests.get(
        f"{site.origins['lists']}/~alice/hello-devel/patches/{patchset_id}", timeout=30
    )
    assert page.status_code == 200
    assert re.search(
        r'<li class="tool tool-failed"><a href="[^"]+/groups/\d+">builds: failed</a>', page.text
    ), page.text


def test_a_patchset_that_arrives_while_lists_cannot_be_asked_is_started_later(
    patch_site: PatchSite, alice: Person
) -> None:
    """builds took the webhook (it is signed and checked, then queued); the
    worker cannot read the patches from lists, so the job waits with the
    reason and runs again later: nothing is lost."""
    from srht_core import utcnow
    from srht_core.jobs import job_table

    site = patch_site
    site.send_series(
        site.work / "hello", f"~alice/hello-devel@{DOMAIN}", [("While away", "greeting", "hi\n")]
    )
    run_until_idle(site.lists_app)  # delivered to builds' gunicorn: 202
    lists = site.state.origins["lists"]
    site.state.origins["lists"] = f"http://127.0.0.1:{free_port()}"
    try:
        run_until_idle(site.app)
    finally:
        site.state.origins["lists"] = lists
    [waiting] = [row for row in site.jobs("patchset") if row.status == "queued"]
    assert waiting.attempts == 1
    assert "lists at http://127.0.0.1:" in waiting.last_error
    assert "cannot be reached" in waiting.last_error
    patchset_id = _patchset_id(site, "While away")
    started = [
        job
        for job in site.patchset_jobs("~alice/hello-devel")
        if job.patchset_build.patchset_id == patchset_id
    ]
    assert started == []
    # lists is back; the job's next attempt (made due now) starts them.
    with site.db.engine.begin() as connection:
        connection.execute(
            job_table.update().where(job_table.c.id == waiting.id).values(run_after=utcnow())
        )
    run_until_idle(site.app)
    started = [
        job
        for job in site.patchset_jobs("~alice/hello-devel")
        if job.patchset_build.patchset_id == patchset_id
    ]
    assert len(started) == 2
    for job in started:  # ended here, so that no runner takes them later
        site.claim(job.id)
        site.finish(job.id, "success")
    run_until_idle(site.app)
    assert site.tools("alice", "hello-devel", patchset_id)[0]["status"] == "success"


def test_a_manifest_that_does_not_clone_the_repository_is_refused_and_lists_says_failed(
    patch_site: PatchSite, alice: Person
) -> None:
    site = patch_site
    copy = site.repository(
        alice,
        "elsewhere",
        {"f": "1\n", ".build.yml": "image: debian/bookworm\ntasks:\n  - t: echo hi\n"},
    )
    site.mailing_list(alice, "elsewhere-devel")
    linked = site.builds_api(
        alice, "POST", "/list-links", json={"list": "elsewhere-devel", "repository": "elsewhere"}
    )
    assert linked.status_code == 201, linked.text
    site.send_series(copy, f"~alice/elsewhere-devel@{DOMAIN}", [("Two", "f", "2\n")])
    site.run_everything()
    [job] = site.patchset_jobs("~alice/elsewhere-devel")
    assert job.status == "failed" and job.submitter == "lists"
    assert job.reason == (
        "The manifest was refused before anything ran:\n.build.yml sources: clones no "
        f"{site.origins['git']}/~alice/elsewhere, so the patches have nowhere to be applied: "
        "add it to sources"
    )
    answer = requests.get(
        f"{site.origins['lists']}/api/lists/alice/elsewhere-devel/patchsets", timeout=30
    )
    [patchset] = answer.json()["results"]
    [tool] = site.tools("alice", "elsewhere-devel", patchset["id"])
    assert tool["status"] == "failed"
    assert tool["details"].startswith(".build.yml: The manifest was refused")

    # The manifest is gone from main since: the next patchset starts no
    # job, and lists says why.
    site.git("rm", "-q", ".build.yml", cwd=copy)
    site.git("commit", "-q", "-m", "No more builds", cwd=copy)
    site.push(alice, copy)
    site.send_series(copy, f"~alice/elsewhere-devel@{DOMAIN}", [("Three", "f", "3\n")])
    site.run_everything()
    assert [j.id for j in site.patchset_jobs("~alice/elsewhere-devel")] == [job.id]
    answer = requests.get(
        f"{site.origins['lists']}/api/lists/alice/elsewhere-devel/patchsets", timeout=30
    )
    newest = answer.json()["results"][0]
    assert newest["subject"] == "Three"
    [tool] = site.tools("alice", "elsewhere-devel", newest["id"])
    assert (tool["status"], tool["details"]) == (
        "cancelled",
        "~alice/elsewhere has no build manifest (.build.yml or .builds/*.yml) on main",
    )


@pytest.mark.deploy
def test_a_patchset_job_runs_with_its_patches_applied_and_one_that_does_not_apply_fails(
    patch_site: PatchSite, alice: Person
) -> None:
    """On a real runner (nspawn, as ``test_runner``): the runner clones
    alice's private repository with her token and applies the series with
    ``git am``; a patch written against a line main does not have fails
    the setup, naming the patch. lists shows both outcomes."""
    from support.ci import require_test_hosts
    from testhosts.image import cache_dir, ensure_image

    from .harness import Runner, runner_folder

    require_test_hosts()
    ensure_image()
    [tarball] = sorted(cache_dir().glob("image-*.tar.zst"))[-1:]
    images = Path(site_images_path(patch_site))
    images.write_text(f"debian/bookworm:\n  tarball: {tarball}\n")
    site = patch_site
    copy = site.work / "hello"
    to = f"~alice/hello-devel@{DOMAIN}"
    site.send_series(copy, to, [("Patch the greeting", "greeting", "hello, patched world\n")])
    site.send_series(
        copy,
        to,
        [("Start elsewhere", "greeting", "good evening\n"), ("Break it", "greeting", "bye\n")],
        skip=1,
    )
    name = f"patches{SLOT}"
    runner_dir = runner_folder("srht-builds-patches-", name)
    runner = Runner(site.config, runner_dir / name, name)
    runner.start()
    try:
        site.run_everything()
        good_id, bad_id = _patchset_id(site, "Patch the greeting"), _patchset_id(site, "Break it")
        jobs = {
            job.id: job
            for job in site.patchset_jobs("~alice/hello-devel")
            if job.patchset_build.patchset_id in (good_id, bad_id)
        }
        assert len(jobs) == 4
        deadline = time.monotonic() + PATIENCE
        while True:
            ended = [site.get_job(job_id) for job_id in jobs]
            if all(job.status not in ("queued", "running") for job in ended):
                break
            assert runner.process is not None and runner.process.poll() is None, runner.output()
            assert time.monotonic() < deadline, runner.output()[-4000:]
            time.sleep(0.5)
    finally:
        runner.stop()
        shutil.rmtree(runner_dir, ignore_errors=True)
    site.run_everything()
    browser = site.browser(alice)
    for job in ended:
        log = browser.get(f"/~alice/job/{job.id}/log").get_data(as_text=True)
        assert alice.token not in log
        if jobs[job.id].patchset_build.patchset_id == good_id:
            assert job.status == "success", (job.reason, log)
            assert "Applying: Patch the greeting" in log
            assert "Secrets were not given to this job" in log
            if job.manifest_path == ".builds/show.yml":
                assert "hello, patched world" in log
            else:
                assert "am: Patch the greeting" in log  # the commit git am made
        else:
            assert job.status == "failed", (job.reason, log)
            assert job.reason.startswith(
                f"Patch 1 (Break it) of patchset ~alice/hello-devel #{bad_id} did not apply to "
                f"{site.origins['git']}/~alice/hello at "
            ), job.reason
            assert "Patch failed at 0001 Break it" in log
    assert site.tools("alice", "hello-devel", good_id)[0]["status"] == "success"
    [bad] = site.tools("alice", "hello-devel", bad_id)
    assert bad["status"] == "failed" and "Patch 1 (Break it)" in bad["details"]


def site_images_path(site: PatchSite) -> str:
    return str(site.state.config["builds"]["images"])
