"""A file of a paste as it is: raw (to read, or to fetch with curl) and as
a download under its own name. Both are locked down with
:func:`srht_core.sandbox`, so a browser runs nothing they hold."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Blueprint, Response, abort

from srht_core import sandbox

from ..models import Paste, PasteFile
from .pastes import keep_private, paste_or_404

bp = Blueprint("files", __name__)


def _file_or_404(paste: Paste, position: int) -> PasteFile:
    for file in paste.files:
        if file.position == position:
            return file
    abort(404, f"Paste {paste.slug} has no file {position}.")


def _raw(paste: Paste, file: PasteFile) -> Response:
    return keep_private(sandbox(Response(file.content, mimetype="text/plain")), paste)


@bp.get("/~<username>/<slug>/raw/<int:position>")
def raw_file(username: str, slug: str, position: int) -> Response:
    paste = paste_or_404(username, slug)
    return _raw(paste, _file_or_404(paste, position))


_SEPARATORS = re.compile(r"[/\\]")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"';]")
_NOT_ASCII_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_disposition(filename: str, fallback: str) -> str:
    """A ``Content-Disposition`` that saves the file under the last part of
    its name, without directories, quotes or control characters; ASCII in
    ``filename``, the full name in ``filename*`` (RFC 6266)."""
    name = _UNSAFE.sub("", _SEPARATORS.split(filename)[-1]).strip().lstrip(".")
    name = name or fallback
    plain = _NOT_ASCII_NAME.sub("_", name).strip("_").lstrip(".") or fallback
    header = f'attachment; filename="{plain}"'
    if plain != name:
        header += "; filename*=UTF-8''" + quote(name, safe="")
    return header


@bp.get("/~<username>/<slug>/download/<int:position>")
def download_file(username: str, slug: str, position: int) -> Response:
    paste = paste_or_404(username, slug)
    file = _file_or_404(paste, position)
    response = _raw(paste, file)
    response.headers["Content-Disposition"] = download_disposition(
        file.filename, f"paste-{paste.slug}-{file.position}.txt"
    )
    return response
