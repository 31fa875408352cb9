"""Files as the paste page shows them: highlighted by Pygments, one table
row per line, each line number a link to its own anchor.

The lexer is chosen from the file name or, failing that, guessed from the
start of the content; text nothing recognises is shown plain. Rendering a
large file costs more than the rest of a page, so rendered files are kept
in a small cache keyed by their content's hash, bounded in bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename, guess_lexer
from pygments.util import ClassNotFound

#: Characters of content that a lexer is guessed from.
GUESS_SAMPLE = 16 * 1024
#: Files larger than this (in characters) are shown without highlighting:
#: some lexers slow down badly on huge or pathological input.
HIGHLIGHT_LIMIT = 512 * 1024
#: Bytes of rendered HTML the cache keeps.
CACHE_BUDGET = 64 * 1024 * 1024


@dataclass(frozen=True)
class RenderedFile:
    """A file ready for the page: its language's name and its table of lines."""

    language: str
    html: Markup
    lines: int
    highlighted: bool


def choose_lexer(filename: str, content: str) -> Lexer:
    """The lexer for a file: by its name, else guessed from its content,
    else plain text."""
    options = {"stripnl": False, "ensurenl": False}
    sample = content[:GUESS_SAMPLE]
    if filename:
        try:
            return get_lexer_for_filename(filename, sample, **options)
        except ClassNotFound:
            pass
    if sample.strip():
        try:
            return guess_lexer(sample, **options)
        except ClassNotFound:
            pass
    return TextLexer(**options)


def anchor_prefix(position: int) -> str:
    """Line anchors of a paste's files: ``L12`` in the first file,
    ``F2-L12`` in the second, and so on, so that every line of a page has
    its own and the common one-file paste gets the short form."""
    return "L" if position == 1 else f"F{position}-L"


def _table(lines: list[str], prefix: str, language: str) -> str:
    rows = []
    for number, line in enumerate(lines, start=1):
        anchor = f"{prefix}{number}"
        rows.append(
            f'<tr id="{anchor}"><td class="ln"><a href="#{anchor}">{number}</a></td>'
            f'<td class="line">{line}</td></tr>'
        )
    label = escape(language)
    return (
        f'<table class="code highlight" aria-label="{label}"><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _render(filename: str, content: str, prefix: str) -> RenderedFile:
    if len(content) > HIGHLIGHT_LIMIT:
        lexer: Lexer = TextLexer(stripnl=False, ensurenl=False)
        highlighted = False
    else:
        lexer = choose_lexer(filename, content)
        highlighted = not isinstance(lexer, TextLexer)
    # HtmlFormatter closes every span at the end of its line, so the output
    # splits into self-contained lines.
    body = highlight(content, lexer, HtmlFormatter(nowrap=True))
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        lines = [""]
    language = lexer.name if highlighted else "Plain text"
    html = Markup(_table(lines, prefix, language))  # noqa: S704 - Pygments escapes the text
    return RenderedFile(language, html, len(lines), highlighted)


class _Cache:
    """Least recently used, bounded by the bytes of HTML it holds."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[tuple[bytes, str, str], RenderedFile] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[bytes, str, str]) -> RenderedFile | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: tuple[bytes, str, str], value: RenderedFile) -> None:
        size = len(value.html)
        if size > self.budget:
            return
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.used += size
            while self.used > self.budget:
                _key, dropped = self.items.popitem(last=False)
                self.used -= len(dropped.html)


# Rendering is a pure function of its inputs, so one cache serves every app
# in the process.
_cache = _Cache(CACHE_BUDGET)


def render_file(filename: str, content: str, position: int = 1) -> RenderedFile:
    """The file highlighted as a table of lines, anchored for ``position``."""
    prefix = anchor_prefix(position)
    key = (hashlib.sha256(content.encode("utf-8", "surrogatepass")).digest(), filename, prefix)
    found = _cache.get(key)
    if found is None:
        found = _render(filename, content, prefix)
        _cache.put(key, found)
    return found
