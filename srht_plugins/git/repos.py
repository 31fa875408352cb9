"""Repositories as things people make: names, their folders on disk,
creating, renaming, changing, deleting, access grants and webhooks.

The database row and the folder change together: a folder is made before
the row is committed and removed if the commit fails; a deleted
repository's row is committed away before its folder is removed, so a
crash can leave an unused folder behind but never a row without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from srht_core import Problem, current_service, db_session, url_problem, user_named, utcnow

from .models import MODES, VISIBILITIES, AccessGrant, Redirect, Repository, User, Webhook
from .plumbing import GitError, GitRepo

__all__ = [
    "add_webhook",
    "clone_urls",
    "create_repository",
    "delete_repository",
    "find_user",
    "grant_access",
    "name_problem",
    "repos_dir",
    "repository_path",
    "update_repository",
]

MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_WEBHOOKS = 20
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
NAME_RULE = (
    "Use letters, digits, dots, dashes and underscores, starting with a letter, digit or "
    "underscore."
)
_NAME = re.compile(NAME_PATTERN)
#: The branch a new repository's HEAD points to until something is pushed.
INITIAL_BRANCH = "main"


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a repository name, if anything."""
    if not name:
        return "Give the repository a name."
    if len(name) > MAX_NAME:
        return f"Use at most {MAX_NAME} characters."
    if not _NAME.match(name):
        return NAME_RULE
    if name.endswith(".git"):
        return "Leave out the .git at the end: clone URLs work with or without it."
    return None


def _check(
    name: str | None = None, description: str | None = None, visibility: str | None = None
) -> None:
    if name is not None and (problem := name_problem(name)):
        raise Problem("name", problem)
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise Problem("description", f"Use at most {MAX_DESCRIPTION} characters.")
    if visibility is not None and visibility not in VISIBILITIES:
        raise Problem("visibility", "Choose one of " + ", ".join(VISIBILITIES) + ".")


# -- on disk ---------------------------------------------------------------------------


def repos_dir() -> Path:
    """``[git] repos``, or DATA-DIR/git."""
    config = current_service().config
    configured = config["git"]["repos"]
    return Path(configured) if configured else Path(config["srht"]["data-dir"]) / "git"


def repository_path(repository: Repository) -> Path:
    return repos_dir() / repository.folder


def open_repository(repository: Repository) -> GitRepo:
    return GitRepo(repository_path(repository))


def clone_urls(owner: str, name: str) -> tuple[str, str | None]:
    """The HTTP and SSH clone URLs of ``~owner/name`` (SSH: ``None`` where
    the site serves no SSH, ``[git] ssh = no``)."""
    state = current_service()
    path = f"~{owner}/{name}"
    if not state.section["ssh"]:
        return f"{state.origin}/{path}", None
    host = urlsplit(state.origin).hostname or "localhost"
    return f"{state.origin}/{path}", f"{state.section['ssh-user']}@{host}:{path}"


# -- changes ---------------------------------------------------------------------------


def _name_taken(owner: User, name: str, but: int | None = None) -> bool:
    stmt = sa.select(Repository.id).where(Repository.owner_id == owner.id, Repository.name == name)
    if but is not None:
        stmt = stmt.where(Repository.id != but)
    return db_session.scalar(stmt) is not None


def _forget_old_name(owner: User, name: str) -> None:
    db_session.execute(
        sa.delete(Redirect).where(Redirect.owner_id == owner.id, Redirect.name == name)
    )


def create_repository(
    owner: User, name: str, description: str | None = None, visibility: str = "public"
) -> Repository:
    """Make a repository: its row and its bare folder, committed.

    :raises Problem: the name is not valid or taken (409), or another
        field is not valid.
    """
    _check(name, description, visibility)
    if _name_taken(owner, name):
        raise Problem("name", f"You have a repository named {name} already.", 409)
    repository = Repository(
        owner_id=owner.id, name=name, description=description or None, visibility=visibility
    )
    db_session.add(repository)
    _forget_old_name(owner, name)  # the name now means this repository
    db_session.flush()
    path = repository_path(repository)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # --shared=group: pushes over SSH run as [git] ssh-user, over HTTP as
        # the service's own user; both are in the repository's group.
        subprocess.run(
            [
                "git",
                "init",
                "--bare",
                "--quiet",
                "--shared=group",
                f"--initial-branch={INITIAL_BRANCH}",
                str(path),
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        db_session.commit()
    except BaseException:
        db_session.rollback()
        shutil.rmtree(path, ignore_errors=True)
        raise
    return repository


def update_repository(
    repository: Repository,
    owner: User,
    *,
    name: str | None = None,
    description: str | None = None,
    visibility: str | None = None,
    default_branch: str | None = None,
) -> None:
    """Change what is given (``None`` leaves a field alone; an empty
    description clears it), committed. Renaming keeps the old name as a
    redirect.

    :raises Problem: naming the field to blame.
    """
    _check(name, description, visibility)
    if default_branch is not None:
        git = open_repository(repository)
        if default_branch not in git.branches():
            raise Problem(
                "default_branch", f"There is no branch {default_branch} in this repository."
            )
        git.set_head(default_branch)
    if name is not None and name != repository.name:
        if _name_taken(owner, name, but=repository.id):
            raise Problem("name", f"You have a repository named {name} already.", 409)
        old = repository.name
        _forget_old_name(owner, name)
        db_session.add(Redirect(owner_id=owner.id, name=old, repository_id=repository.id))
        repository.name = name
    if description is not None:
        repository.description = description.strip() or None
    if visibility is not None:
        repository.visibility = visibility
    repository.updated = utcnow()
    db_session.commit()


def delete_repository(repository: Repository) -> None:
    """Delete a repository, its old names and grants, then its folder."""
    path = repository_path(repository)
    db_session.delete(repository)
    db_session.commit()
    shutil.rmtree(path, ignore_errors=True)


def find_user(username: str) -> User:
    """The user ``username`` (a leading ``~`` allowed), as this service knows them.

    :raises Problem: (404, field ``username``) for a user who never signed in here.
    """
    name = username.strip().lstrip("~")
    user: User | None = user_named(name)
    if user is None:
        raise Problem(
            "username",
            f"No user ~{name} is known here yet: they must sign in to this git service once.",
            404,
        )
    return user


def grant_access(repository: Repository, user: User, mode: str | None) -> None:
    """Give ``user`` ``mode`` access (``ro``, ``rw``), or take it away
    (``None``), committed."""
    if mode is not None and mode not in MODES:
        raise Problem("mode", "Choose ro (read) or rw (read and write).")
    if user.id == repository.owner_id:
        raise Problem("user", "The owner always has full access.")
    grant = db_session.scalar(
        sa.select(AccessGrant).where(
            AccessGrant.repository_id == repository.id, AccessGrant.user_id == user.id
        )
    )
    if mode is None:
        if grant is not None:
            db_session.delete(grant)
    elif grant is None:
        db_session.add(AccessGrant(repository_id=repository.id, user_id=user.id, mode=mode))
    else:
        grant.mode = mode
    db_session.commit()


def add_webhook(repository: Repository, url: str) -> Webhook:
    """Tell ``url`` about every push to ``repository`` from now on, committed.

    :raises Problem: (field ``url``) for a URL no service can call, or one
        webhook too many.
    """
    url = url.strip()
    reason = url_problem(url)
    if reason is not None:
        raise Problem("url", reason)
    count = db_session.scalar(
        sa.select(sa.func.count())
        .select_from(Webhook)
        .where(Webhook.repository_id == repository.id)
    )
    if (count or 0) >= MAX_WEBHOOKS:
        raise Problem("url", f"a repository may have at most {MAX_WEBHOOKS} webhooks")
    hook = Webhook(repository_id=repository.id, url=url)
    db_session.add(hook)
    db_session.commit()
    return hook


def delete_repositories_of(user: User) -> None:
    """Delete every repository of a user whose account is deleted."""
    for repository in db_session.scalars(
        sa.select(Repository).where(Repository.owner_id == user.id)
    ).all():
        delete_repository(repository)


def default_branch(repository: Repository) -> str | None:
    try:
        return open_repository(repository).head_branch()
    except GitError:
        return None
