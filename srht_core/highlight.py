"""Files as pages show them: highlighted by Pygments, one table row per
line, each line number a link to its own anchor (``#L12``).

The lexer is chosen from the file name or, failing that, guessed from the
start of the content; text nothing recognises is shown plain, and so is
text too long to highlight quickly. Rendering a large file costs more than
the rest of a page, so rendered files are kept in one bounded cache per
process, keyed by a hash of their content: a repository's blob and a paste
with the same text are rendered once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename, guess_lexer
from pygments.util import ClassNotFound

from .cache import BoundedCache

__all__ = [
    "HIGHLIGHT_LIMIT",
    "RenderedFile",
    "choose_lexer",
    "highlighted_lines",
    "language_of",
    "render_file",
]

#: Characters of content a lexer is guessed from.
GUESS_SAMPLE = 16 * 1024
#: Text longer than this (in characters) is shown without highlighting:
#: some lexers slow down badly on huge or pathological input.
HIGHLIGHT_LIMIT = 512 * 1024
#: Bytes of rendered HTML kept per process.
CACHE_BUDGET = 64 * 1024 * 1024


@dataclass(frozen=True)
class RenderedFile:
    """A file ready for a page: its language's name, its table of lines, how
    many lines, and whether a lexer other than plain text was used."""

    language: str
    html: Markup
    lines: int
    highlighted: bool


def choose_lexer(filename: str, text: str) -> Lexer:
    """The lexer for a file: by its name, else guessed from its content,
    else plain text."""
    options = {"stripnl": False, "ensurenl": False}
    sample = text[:GUESS_SAMPLE]
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


def language_of(lexer: Lexer) -> str:
    """The name a page shows for what ``lexer`` reads: its language, or
    ``"Plain text"`` for text nothing recognised.

    .. versionadded:: 0.1
    """
    return "Plain text" if isinstance(lexer, TextLexer) else str(lexer.name)


#: One formatter for every highlight: making one costs about 0.7 ms (it
#: builds its stylesheet), formatting with it changes nothing in it.
_FORMATTER = HtmlFormatter(nowrap=True)


def highlighted(text: str, lexer: Lexer) -> str:
    """``text`` highlighted by ``lexer`` as HTML spans (no wrapping element),
    every span closed on its line; for the core's pages and Markdown."""
    html: str = highlight(text, lexer, _FORMATTER)
    return html


def highlighted_lines(filename: str, text: str) -> tuple[Lexer, list[str]]:
    """The lexer used and the highlighted HTML of each line of ``text``
    (self-contained: every span closes on its line), for a page that puts
    something beside each line (git's blame) where :func:`render_file`'s
    table will not do; :func:`language_of` names the lexer.

    .. versionadded:: 0.1
    """
    lexer: Lexer
    if len(text) > HIGHLIGHT_LIMIT:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    else:
        lexer = choose_lexer(filename, text)
    # HtmlFormatter closes every span at the end of its line, so the output
    # splits into self-contained lines.
    lines = highlighted(text, lexer).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lexer, lines or [""]


def _table(lines: list[str], prefix: str, language: str) -> Markup:
    rows = []
    for number, line in enumerate(lines, start=1):
        anchor = f"{prefix}{number}"
        rows.append(
            f'<tr id="{anchor}"><td class="ln"><a href="#{anchor}">{number}</a></td>'
            f'<td class="line">{line}</td></tr>'
        )
    table = (
        f'<table class="code highlight" aria-label="{escape(language)}"><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    return Markup(table)  # noqa: S704 - Pygments escapes the text; the rest is ours


def _render(filename: str, text: str, prefix: str) -> RenderedFile:
    lexer, lines = highlighted_lines(filename, text)
    language = language_of(lexer)
    highlighted = not isinstance(lexer, TextLexer)
    return RenderedFile(language, _table(lines, prefix, language), len(lines), highlighted)


# Rendering is a pure function of its inputs, so one cache serves every app
# in the process; the key hashes the content, so it cannot name other text.
_rendered: BoundedCache[tuple[bytes, str, str], RenderedFile] = BoundedCache(
    100_000, max_weight=CACHE_BUDGET, weigh=lambda rendered: len(rendered.html)
)


def render_file(filename: str, text: str, *, anchor: str = "L") -> RenderedFile:
    """``text`` highlighted as a table of lines anchored ``#<anchor><n>``
    (``L12``; a page showing several files gives each its own prefix)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return _rendered.get_or_make(
        (digest, filename, anchor), lambda: _render(filename, text, anchor)
    )
