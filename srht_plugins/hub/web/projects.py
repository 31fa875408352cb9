"""A project's page, and making, changing and deleting projects."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from srht_core import (
    Problem,
    anonymous_page,
    confirm,
    db_session,
    login_required,
    viewer,
    watch,
    watched_page,
)

from .. import activity, projects, sources
from ..access import can_change, changeable_project, find_project
from ..forms import AttachForm, ProjectForm
from ..models import Attachment

bp = Blueprint("projects", __name__)


def project_url(project: Any) -> str:
    return url_for("projects.show", owner=project.owner.username, name=project.name)


@bp.route("/projects/create", methods=["GET", "POST"])
@login_required
def create() -> Any:
    form = ProjectForm()
    if form.validate_on_submit():
        try:
            made = projects.create_project(viewer(), _fields(form))
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"Project {made.ref} created: attach its repositories and trackers.", "success")
            return redirect(
                url_for("projects.resources", owner=made.owner.username, name=made.name)
            )
    status = 400 if form.is_submitted() else 200
    return render_template("hub/project-form.html", form=form), status


def _fields(form: ProjectForm) -> dict[str, Any]:
    return {
        "name": form.name.data,
        "description": form.description.data,
        "readme": form.readme.data,
        "tags": form.tags.data or "",
        "visibility": form.visibility.data,
    }


@bp.get("/~<owner>/<name>")
def show(owner: str, name: str) -> Any:
    # For a visitor without cookies the page is kept, on PostgreSQL, until
    # a row it shows changes (the project, its owner, its resources, whose
    # row changes with each event heard of them too, or an attachment) and
    # at most as long as hub keeps what the services said of the resources:
    # a hit runs no query. Elsewhere the lookup runs and the rendering is
    # kept under the version below.
    return watched_page(lambda: _project_page(owner, name), max_age=sources.CHECK_TTL)


def _project_page(owner: str, name: str) -> Any:
    user = viewer()
    project = find_project(owner, name, user)
    listed = [a.source for a in project.attachments]
    checked = activity.check_sources(listed, user)
    watch(project, project.owner, Attachment, *listed)

    def render() -> Any:
        shown_ids = [s.id for s in checked.shown]
        events = activity.visible_events(user, source_ids=shown_ids)
        return render_template(
            "hub/project.html",
            project=project,
            resources=checked.shown,
            problems=checked.problems,
            events=activity.feed(events) if shown_ids else [],
            can_change=can_change(project, user),
        )

    version = (
        project.id,
        project.updated,
        tuple((s.id, s.visibility, s.title, s.url, s.updated) for s in listed),
        int(time.monotonic() // sources.CHECK_TTL),
    )
    return anonymous_page(version, render)


@bp.route("/~<owner>/<name>/settings", methods=["GET", "POST"])
@login_required
def settings(owner: str, name: str) -> Any:
    project = changeable_project(owner, name, viewer())
    form = ProjectForm(obj=project)
    if not form.is_submitted():
        form.tags.data = ", ".join(project.tag_list)
    if form.validate_on_submit():
        try:
            projects.update_project(project, _fields(form))
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash("Project saved.", "success")
            return redirect(project_url(project))
    status = 400 if form.is_submitted() else 200
    return render_template("hub/project-details.html", form=form, project=project), status


@bp.route("/~<owner>/<name>/resources", methods=["GET", "POST"])
@login_required
def resources(owner: str, name: str) -> Any:
    project = changeable_project(owner, name, viewer())
    found, problems = projects.candidates(project.owner)
    attached = {(a.source.service, a.source.item) for a in project.attachments}
    form = AttachForm()
    form.offer(
        [
            (
                f"{kind.service}:{kind.name}:{kind.fill(kind.title, obj)}",
                f"{kind.fill(kind.title, obj)} ({kind.service}: {kind.name})",
            )
            for kind, obj in found
            if (kind.service, kind.fill(kind.item, obj)) not in attached
        ]
    )
    if form.validate_on_submit():
        service, kind_name, title = form.resource.data.split(":", 2)
        try:
            source = projects.attach(project, service, kind_name, title)
            db_session.commit()
        except Problem as problem:
            db_session.rollback()
            form.show(problem)
        else:
            flash(f"{source.title} attached.", "success")
            return redirect(url_for("projects.resources", owner=owner, name=name))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "hub/resources.html", project=project, form=form, problems=problems
    ), status


@bp.route("/~<owner>/<name>/resources/<int:source_id>/detach", methods=["GET", "POST"])
@login_required
def detach(owner: str, name: str, source_id: int) -> Any:
    project = changeable_project(owner, name, viewer())
    title = next((a.source.title for a in project.attachments if a.source_id == source_id), None)
    if title is None:
        abort(404, f"No resource {source_id} is attached to {project.ref}.")
    question = confirm(
        f"Detach {title} from {project.ref}?",
        "The project no longer shows it or its activity. Nothing changes on its own service.",
        cancel=url_for("projects.resources", owner=owner, name=name),
        button="Detach",
    )
    if question is not None:
        return question
    projects.detach(project, source_id)
    db_session.commit()
    flash(f"{title} detached.", "success")
    return redirect(url_for("projects.resources", owner=owner, name=name))


@bp.route("/~<owner>/<name>/delete", methods=["GET", "POST"])
@login_required
def delete(owner: str, name: str) -> Any:
    project = changeable_project(owner, name, viewer())
    ref = project.ref
    question = confirm(
        f"Delete {ref}?",
        "Its README, tags and the list of its resources are deleted for good. The "
        "repositories, trackers and lists themselves stay as they are on their services.",
        cancel=project_url(project),
        typed=project.name,
    )
    if question is not None:
        return question
    projects.delete_project(project)
    db_session.commit()
    flash(f"Deleted {ref}.", "success")
    return redirect(url_for("home.index"))
