"""Static files with cache-busting URLs, and each page's one stylesheet.

``static_url("style.css")`` in a template gives
``/static/srht/style.css?v=<hash>``: the hash of the file's content, so a
file can be cached for a year and still change on upgrade. The core's files
are under ``/static/srht/``, a service's under ``/static/<service>/``; in
production nginx serves both folders itself.

A page links one stylesheet, ``/style.css?v=<hash>``: the core's
``srht.css`` followed by the service's own ``static/<service>.css``, joined
in memory by the app, so a first visit costs the page and one stylesheet
and a later one the page alone (the stylesheet is cached for a year; a new
version has a new URL). The favicon is inlined in the layout as a ``data:``
URL, so it costs no request either.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from flask import Flask, Response, abort, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from .globals import SrhtState

__all__ = ["static_url"]

CORE_STATIC = Path(__file__).parent / "static"
YEAR = 365 * 24 * 3600


@lru_cache(maxsize=1024)
def _digest(path: Path, mtime: float) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@lru_cache(maxsize=64)
def _joined(paths: tuple[Path, ...], mtimes: tuple[float, ...]) -> tuple[bytes, str]:
    """The files at ``paths`` one after the other, and their version."""
    content = b"\n".join(path.read_bytes() for path in paths)
    return content, hashlib.sha256(content).hexdigest()[:12]


def _stylesheet(paths: tuple[Path, ...]) -> tuple[bytes, str]:
    return _joined(paths, tuple(path.stat().st_mtime for path in paths))


@lru_cache(maxsize=1)
def favicon_data_url() -> str:
    """The site's icon as a ``data:`` URL (the layout's ``<link rel=icon>``)."""
    svg = (CORE_STATIC / "favicon.svg").read_text(encoding="utf-8").strip()
    return "data:image/svg+xml," + quote(svg, safe=" /=:;,'()")


def init_app(app: Flask, state: SrhtState, service_static: Path) -> None:
    folders = state.static_folders
    folders.update({"srht": CORE_STATIC, state.service.name: service_static})
    # Outside debug mode files do not change under a running app, so each
    # URL is worked out once (a stat, a hash and url_for cost more than the
    # rest of the layout).
    cache: dict[tuple[str, str], str] | None = None if app.debug else {}

    def static_url(filename: str, owner: str = "srht") -> str:
        if cache is not None:
            found = cache.get((owner, filename))
            if found is None:
                found = cache[(owner, filename)] = _static_url(filename, owner)
            return found
        return _static_url(filename, owner)

    def _static_url(filename: str, owner: str) -> str:
        folder = folders.get(owner)
        if folder is None:
            raise LookupError(f"no static folder for {owner!r}")
        path = folder / filename
        try:
            version = _digest(path, path.stat().st_mtime)
        except OSError:
            version = "missing"
        return url_for("srht_static", owner=owner, filename=filename, v=version)

    def serve(owner: str, filename: str) -> ResponseReturnValue:
        folder = folders.get(owner)
        if folder is None:
            abort(404)
        max_age = YEAR if request.args.get("v") else 300
        return send_from_directory(folder, filename, max_age=max_age)

    def favicon() -> ResponseReturnValue:
        return send_from_directory(CORE_STATIC, "favicon.ico", max_age=YEAR // 12)

    # The page's stylesheet: the core's, then the service's own
    # <service>.css when it has one (a service needs no base template of
    # its own for it).
    own = service_static / f"{state.service.name}.css"
    parts = (CORE_STATIC / "srht.css", *((own,) if own.is_file() else ()))

    def stylesheet_url() -> str:
        if cache is None:
            return url_for("srht_stylesheet", v=_stylesheet(parts)[1])
        found = cache.get(("", "style.css"))
        if found is None:
            found = cache[("", "style.css")] = url_for("srht_stylesheet", v=_stylesheet(parts)[1])
        return found

    def stylesheet() -> ResponseReturnValue:
        content, version = _stylesheet(parts)
        response = Response(content, mimetype="text/css")
        response.set_etag(version)
        if request.args.get("v") == version:
            response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        else:
            response.headers["Cache-Control"] = "public, max-age=300"
        return response.make_conditional(request)

    app.add_url_rule("/static/<owner>/<path:filename>", "srht_static", serve)
    app.add_url_rule("/favicon.ico", "srht_favicon", favicon)
    app.add_url_rule("/style.css", "srht_stylesheet", stylesheet)
    app.jinja_env.globals["static_url"] = static_url
    app.jinja_env.globals["stylesheet_url"] = stylesheet_url
    app.jinja_env.globals["favicon_url"] = favicon_data_url


def static_url(filename: str, owner: str = "srht") -> str:
    """The cache-busted URL of a static file of the core or of ``owner``."""
    from flask import current_app

    func = current_app.jinja_env.globals["static_url"]
    return func(filename, owner)  # type: ignore[operator,no-any-return]
