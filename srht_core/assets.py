"""Static files with cache-busting URLs.

``static_url("style.css")`` in a template gives
``/static/srht/style.css?v=<hash>``: the hash of the file's content, so a
file can be cached for a year and still change on upgrade. The core's files
are under ``/static/srht/``, a service's under ``/static/<service>/``; in
production nginx serves both folders itself.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask, abort, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from .globals import SrhtState

__all__ = ["static_url"]

CORE_STATIC = Path(__file__).parent / "static"
YEAR = 365 * 24 * 3600


@lru_cache(maxsize=1024)
def _digest(path: Path, mtime: float) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


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

    app.add_url_rule("/static/<owner>/<path:filename>", "srht_static", serve)
    app.add_url_rule("/favicon.ico", "srht_favicon", favicon)
    app.jinja_env.globals["static_url"] = static_url
    # The layout links the service's own stylesheet, <service>.css, when it
    # has one: a service needs no base template of its own for it.
    own = f"{state.service.name}.css"
    app.jinja_env.globals["srht_service_css"] = own if (service_static / own).is_file() else None


def static_url(filename: str, owner: str = "srht") -> str:
    """The cache-busted URL of a static file of the core or of ``owner``."""
    from flask import current_app

    func = current_app.jinja_env.globals["static_url"]
    return func(filename, owner)  # type: ignore[operator,no-any-return]
