"""Files as the blob page shows them: highlighted by Pygments, one table
row per line, each line number a link to its own anchor (``#L12``).

The lexer is chosen from the file name or, failing that, guessed from the
start of the content; text nothing recognises is shown plain, and so is
text too long to highlight quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename, guess_lexer
from pygments.util import ClassNotFound

#: Characters of content a lexer is guessed from.
GUESS_SAMPLE = 16 * 1024
#: Text longer than this (in characters) is shown without highlighting:
#: some lexers slow down badly on huge or pathological input.
HIGHLIGHT_LIMIT = 512 * 1024


@dataclass(frozen=True)
class RenderedFile:
    """A file ready for the page: its language and its table of lines."""

    language: str
    html: Markup
    lines: int


def choose_lexer(filename: str, text: str) -> Lexer:
    """The lexer for a file: by its name, else guessed from its content,
    else plain text."""
    options = {"stripnl": False, "ensurenl": False}
    sample = text[:GUESS_SAMPLE]
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


def highlighted_lines(filename: str, text: str) -> tuple[str, list[str]]:
    """The language and the highlighted HTML of each line of ``text``."""
    lexer: Lexer
    if len(text) > HIGHLIGHT_LIMIT:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    else:
        lexer = choose_lexer(filename, text)
    # HtmlFormatter closes every span at the end of its line, so the output
    # splits into self-contained lines.
    body = highlight(text, lexer, HtmlFormatter(nowrap=True))
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    language = "Plain text" if isinstance(lexer, TextLexer) else lexer.name
    return language, lines or [""]


def render_file(filename: str, text: str) -> RenderedFile:
    """``text`` highlighted as a table of anchored lines."""
    language, lines = highlighted_lines(filename, text)
    rows = []
    for number, line in enumerate(lines, start=1):
        rows.append(
            f'<tr id="L{number}"><td class="ln"><a href="#L{number}">{number}</a></td>'
            f'<td class="line">{line}</td></tr>'
        )
    table = (
        f'<table class="code highlight" aria-label="{escape(language)}"><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    return RenderedFile(language, Markup(table), len(lines))  # noqa: S704 - Pygments escapes
