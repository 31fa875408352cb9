"""Answering a repository's pages with strong ETags and 304s, and keeping
their rendering.

A page addressed by a commit id shows what never changes; one addressed by
a branch shows what the branch points to, resolved once per request. Either
way the page is a function of the commit, of the repository's row (its
header: name, description, visibility; ``updated`` changes with every edit
and every push), of its owner's name, and of this release's templates. That
is its *version*.

For a visitor who is not signed in and has no session (what crawlers and
most readers are), the page is the same for everyone, so:

- its ETag is a hash of its URL and version, known before anything is
  rendered: an ``If-None-Match`` that carries it is answered 304 at once;
- its rendering is kept per worker by :func:`srht_core.anonymous_page`
  under that version.

For a signed-in visitor the page holds their own menu (and a CSRF token
or two): it is rendered every time and never kept, and its ETag is a hash
of the bytes sent, so a 304 still spares the transfer.

Access is checked before any of this (:func:`.common.viewing` answers 404
to a visitor who may not read the repository), so neither a kept page nor
an ETag can reach them; a private repository's pages are never kept (only
anonymous visitors' pages are, and they may not read one) and keep their
``private, no-store``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from flask import Response, request, session
from werkzeug.wrappers import Response as BaseResponse

import srht_core
from srht_core import anonymous_page, viewer

from ..models import PRIVATE
from .common import Viewing

__all__ = ["kept_page"]


def _release() -> str:
    """What changes when this release's pages would render differently:
    srht's version and its templates' names, sizes and times."""
    digest = hashlib.sha256()
    with contextlib.suppress(metadata.PackageNotFoundError):
        digest.update(metadata.version("srht").encode())
    roots = (Path(__file__).resolve().parents[1], Path(srht_core.__file__).resolve().parent)
    for root in (folder / "templates" for folder in roots):
        for file in sorted(root.rglob("*")):
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


RELEASE = _release()


def _stateless() -> bool:
    """Whether the visitor sees the page everyone without an account sees."""
    return viewer() is None and not session


def _matches(tag: str) -> bool:
    return request.if_none_match.contains(tag)


def kept_page(view: Viewing, version: object, render: Callable[[], BaseResponse]) -> BaseResponse:
    """Answer ``render()``'s page of ``view``'s repository, which shows
    ``version`` of it (a commit id, or whatever else the page reads from
    git), with an ETag; 304 when the browser has it already.

    Call it after resolving what the URL names (a missing branch is a 404
    before this), never before :func:`.common.viewing`.
    """
    repository = view.repository
    full = (
        repository.id,
        repository.updated.isoformat(),
        repository.name,
        repository.visibility,
        view.owner.canonical_name,
        RELEASE,
        version,
    )
    if repository.visibility != PRIVATE and _stateless():
        key = repr((request.path, request.query_string, full)).encode()
        tag = "g" + hashlib.sha256(key).hexdigest()[:32]
        if _matches(tag):
            return _headers(Response(status=304), view, tag, shared=True)
        response = anonymous_page(full, render)
        if response.status_code != 200:
            return response
        if session.modified or "Set-Cookie" in response.headers:
            # Rendering gave this visitor something of their own: not the
            # page everyone gets, so no ETag that says it is.
            return _headers(response, view, None, shared=False)
        return _headers(response, view, tag, shared=True)
    rendered = render()
    if rendered.status_code != 200 or rendered.is_streamed:
        return rendered
    tag = "b" + hashlib.sha256(rendered.get_data()).hexdigest()[:32]
    if _matches(tag):
        return _headers(Response(status=304), view, tag, shared=False)
    return _headers(rendered, view, tag, shared=False)


def _headers(
    response: BaseResponse, view: Viewing, tag: str | None, *, shared: bool
) -> BaseResponse:
    """The ETag, and a Cache-Control that has the browser revalidate: a
    shared cache may keep what every visitor gets, only the browser what a
    signed-in one does, and nobody a private repository's page."""
    if tag is not None:
        response.set_etag(tag)
    if view.repository.visibility == PRIVATE:
        response.headers["Cache-Control"] = "private, no-store"
    else:
        response.headers["Cache-Control"] = "no-cache" if shared else "private, no-cache"
        response.vary.add("Cookie")
    return response
