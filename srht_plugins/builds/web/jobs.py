"""The pages of jobs: the index, submitting (and resubmitting with an edited
manifest), a job's page with its log, its raw log, manifest and artifacts,
cancelling, job groups, the lists of a user's and a repository's jobs, and
a repository's status badge.

No JavaScript: a running job's page reloads itself every few seconds, so
its log grows as the runner sends it; the raw log URL serves ``curl``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from srht_core import (
    ChoiceField,
    Form,
    current_service,
    db_session,
    login_required,
    paginate,
    sandbox,
    viewer,
)

from .. import submit
from ..access import can_see, changeable_job, find_user, listed_jobs, readable_group, readable_job
from ..manifest import MAX_LENGTH, ManifestError
from ..models import (
    MAX_NOTE,
    PRIVATE,
    PUBLIC,
    STATUSES,
    SUCCESS,
    UNLISTED,
    WEB,
    Artifact,
    Job,
    LogChunk,
)

bp = Blueprint("jobs", __name__)

PER_PAGE = 25
#: A task's log shown on the page is its last this many bytes; the raw log
#: has all of it.
SHOWN_LOG = 256 * 1024
#: Seconds between reloads of a running job's page.
REFRESH = 3

EXAMPLE = """image: debian/bookworm
tasks:
  - hello: |
      echo "Hello from job $JOB_ID"
"""


class SubmitForm(Form):
    manifest = TextAreaField(
        "Manifest",
        validators=[DataRequired(), Length(max=MAX_LENGTH)],
        description="YAML: image, packages, sources, environment, secrets, tasks, artifacts, "
        "triggers.",
    )
    note = StringField("Note", validators=[Length(max=MAX_NOTE)], description="Optional.")
    visibility = ChoiceField(
        "Visibility",
        [
            (PUBLIC, "Public: anyone, and listed"),
            (UNLISTED, "Unlisted: anyone with the link"),
            (PRIVATE, "Private: you alone"),
        ],
        default=PUBLIC,
    )


def _submitted(
    form: SubmitForm, problems: list[str], *, source: Job | None = None
) -> ResponseReturnValue:
    status = 400 if form.is_submitted() else 200
    return render_template(
        "builds/submit.html", form=form, problems=problems, source=source
    ), status


def _submit_form(form: SubmitForm, source: Job | None = None) -> ResponseReturnValue:
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            job = submit.submit(
                viewer(),
                form.manifest.data,
                note=form.note.data or "",
                visibility=form.visibility.data,
                submitter=WEB,
                repository=source.repository if source else None,
                commit=source.commit if source else None,
                ref=source.ref if source else None,
                manifest_path=source.manifest_path if source else None,
            )
            db_session.commit()
        except ManifestError as error:
            db_session.rollback()
            problems = [str(problem) for problem in error.problems]
            form.manifest.errors = [
                *form.manifest.errors,
                f"The manifest has {len(problems)} problem{'' if len(problems) == 1 else 's'}; "
                "nothing was queued.",
            ]
        else:
            flash(f"Job #{job.id} queued.", "success")
            return redirect(url_for("jobs.job", owner=job.owner.username, job_id=job.id))
    return _submitted(form, problems, source=source)


@bp.get("/")
def index() -> ResponseReturnValue:
    """Your jobs when signed in, the site's public jobs otherwise."""
    user = viewer()
    stmt = listed_jobs(user, user) if user is not None else listed_jobs(None)
    page = paginate(db_session, stmt.order_by(Job.id.desc()), per_page=PER_PAGE)
    return render_template("builds/index.html", page=page)


@bp.route("/submit", methods=["GET", "POST"])
@login_required
def submit_page() -> ResponseReturnValue:
    form = SubmitForm()
    if not form.is_submitted():
        form.manifest.data = EXAMPLE
    return _submit_form(form)


@bp.route("/~<owner>/job/<int:job_id>/resubmit", methods=["GET", "POST"])
@login_required
def resubmit(owner: str, job_id: int) -> ResponseReturnValue:
    source = readable_job(job_id, viewer(), owner)
    form = SubmitForm()
    if not form.is_submitted():
        form.manifest.data = source.manifest
        form.note.data = source.note
        form.visibility.data = source.visibility
    return _submit_form(form, source)


def _logs(job: Job) -> dict[int, tuple[bytes, bool]]:
    """``{position: (the end of its log, whether the start was cut)}``."""
    sizes: dict[int, int] = dict(
        db_session.execute(
            sa.select(LogChunk.position, sa.func.sum(sa.func.length(LogChunk.data)))
            .where(LogChunk.job_id == job.id)
            .group_by(LogChunk.position)
        ).all()
    )
    out: dict[int, tuple[bytes, bool]] = {}
    pieces: dict[int, list[bytes]] = defaultdict(list)
    kept: dict[int, int] = defaultdict(int)
    # Newest first, stopping per task once enough is kept.
    rows = db_session.execute(
        sa.select(LogChunk.position, LogChunk.data)
        .where(LogChunk.job_id == job.id)
        .order_by(LogChunk.id.desc())
    )
    for position, data in rows:
        if kept[position] >= SHOWN_LOG:
            continue
        pieces[position].append(data)
        kept[position] += len(data)
    for position, parts in pieces.items():
        text = b"".join(reversed(parts))
        cut = int(sizes.get(position) or 0) > len(text[-SHOWN_LOG:]) or len(text) > SHOWN_LOG
        out[position] = (text[-SHOWN_LOG:], cut)
    return out


@bp.get("/~<owner>/job/<int:job_id>")
def job(owner: str, job_id: int) -> ResponseReturnValue:
    user = viewer()
    found = readable_job(job_id, user, owner)
    logs = {
        position: (data.decode("utf-8", "replace"), cut)
        for position, (data, cut) in _logs(found).items()
    }
    artifacts = db_session.scalars(
        sa.select(Artifact).where(Artifact.job_id == found.id).order_by(Artifact.id)
    ).all()
    return render_template(
        "builds/job.html",
        job=found,
        logs=logs,
        artifacts=artifacts,
        is_owner=user is not None and user.id == found.owner_id,
        refresh=None if found.is_finished else REFRESH,
        lists_origin=current_service().origins.get("lists"),
    )


def _plain(body: Any, *, filename: str | None = None) -> Response:
    response = Response(body, mimetype="text/plain")
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return sandbox(response)


@bp.get("/~<owner>/job/<int:job_id>/log")
def raw_log(owner: str, job_id: int) -> ResponseReturnValue:
    """The whole log as plain text: setup, then each task."""
    found = readable_job(job_id, viewer(), owner)
    rows = db_session.scalars(
        sa.select(LogChunk.data).where(LogChunk.job_id == found.id).order_by(LogChunk.id)
    ).all()
    return _plain(b"".join(rows))


@bp.get("/~<owner>/job/<int:job_id>/log/<task>")
def raw_task_log(owner: str, job_id: int, task: str) -> ResponseReturnValue:
    """One task's log (``setup`` for the job's setup)."""
    found = readable_job(job_id, viewer(), owner)
    positions = {t.name: t.position for t in found.tasks} | {"setup": 0}
    if task not in positions:
        abort(404, f"Job #{job_id} has no task {task}.")
    rows = db_session.scalars(
        sa.select(LogChunk.data)
        .where(LogChunk.job_id == found.id, LogChunk.position == positions[task])
        .order_by(LogChunk.id)
    ).all()
    return _plain(b"".join(rows))


@bp.get("/~<owner>/job/<int:job_id>/manifest")
def raw_manifest(owner: str, job_id: int) -> ResponseReturnValue:
    return _plain(readable_job(job_id, viewer(), owner).manifest)


@bp.get("/~<owner>/job/<int:job_id>/artifacts/<name>")
def artifact(owner: str, job_id: int, name: str) -> ResponseReturnValue:
    found = readable_job(job_id, viewer(), owner)
    item = db_session.scalar(
        sa.select(Artifact)
        .where(Artifact.job_id == found.id, Artifact.name == name)
        .options(sa.orm.undefer(Artifact.data))
    )
    if item is None:
        abort(404, f"Job #{job_id} kept no artifact {name}.")
    response = Response(item.data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{item.name}"'
    return sandbox(response)


@bp.post("/~<owner>/job/<int:job_id>/cancel")
@login_required
def cancel(owner: str, job_id: int) -> ResponseReturnValue:
    found = changeable_job(job_id, viewer(), owner)
    if found.is_finished:
        flash(f"Job #{job_id} had already ended ({found.status}).", "info")
    else:
        submit.cancel(found)
        db_session.commit()
        flash(
            f"Job #{job_id} cancelled."
            if found.is_finished
            else f"Job #{job_id} is being stopped.",
            "success",
        )
    return redirect(url_for("jobs.job", owner=found.owner.username, job_id=found.id))


@bp.get("/groups/<int:group_id>")
def group(group_id: int) -> ResponseReturnValue:
    user = viewer()
    found = readable_group(group_id, user)
    jobs = [j for j in found.jobs if can_see(j, user)]
    return render_template("builds/group.html", group=found, jobs=jobs)


def _filters() -> tuple[str | None, str | None]:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400, f"{status!r} is not a job status ({', '.join(STATUSES)}).")
    repository = (request.args.get("repository") or "").strip()[:200] or None
    return status, repository


@bp.get("/~<owner>")
def user_jobs(owner: str) -> ResponseReturnValue:
    person = find_user(owner)
    status, repository = _filters()
    stmt = listed_jobs(viewer(), person)
    if status:
        stmt = stmt.where(Job.status == status)
    if repository:
        stmt = stmt.where(Job.repository == repository)
    page = paginate(db_session, stmt.order_by(Job.id.desc()), per_page=PER_PAGE)
    repositories = db_session.scalars(
        listed_jobs(viewer(), person)
        .with_only_columns(Job.repository)
        .where(Job.repository.is_not(None))
        .distinct()
        .order_by(Job.repository)
    ).all()
    return render_template(
        "builds/user.html",
        person=person,
        page=page,
        status=status,
        repository=repository,
        repositories=repositories,
        statuses=STATUSES,
    )


@bp.get("/~<owner>/repos/<name>")
def repository_jobs(owner: str, name: str) -> ResponseReturnValue:
    person = find_user(owner)
    ref = f"~{person.username}/{name}"
    status, _ignored = _filters()
    stmt = listed_jobs(viewer(), person).where(Job.repository == ref)
    if status:
        stmt = stmt.where(Job.status == status)
    page = paginate(db_session, stmt.order_by(Job.id.desc()), per_page=PER_PAGE)
    return render_template(
        "builds/repository.html",
        person=person,
        name=name,
        ref=ref,
        page=page,
        status=status,
        statuses=STATUSES,
    )


BADGE_COLOURS = {
    SUCCESS: "#2e7d32",
    "failed": "#c62828",
    "timeout": "#c62828",
    "cancelled": "#6d6d6d",
    "running": "#1565c0",
    "queued": "#6d6d6d",
}


@bp.get("/~<owner>/repos/<name>/badge.svg")
def badge(owner: str, name: str) -> ResponseReturnValue:
    """The state of the repository's latest public job, as an SVG badge
    for a README."""
    person = find_user(owner)
    latest = db_session.scalar(
        sa.select(Job)
        .where(
            Job.owner_id == person.id,
            Job.repository == f"~{person.username}/{name}",
            Job.visibility == PUBLIC,
        )
        .order_by(Job.id.desc())
        .limit(1)
    )
    status = latest.status if latest is not None else "unknown"
    svg = render_template(
        "builds/badge.svg",
        status=status,
        colour=BADGE_COLOURS.get(status, "#6d6d6d"),
        status_width=7 * len(status) + 12,
    )
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-cache"
    return sandbox(response)
