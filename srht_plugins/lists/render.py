"""Showing a message's text: escaped, with quoted passages folded, links
made of URLs and of ticket references (``~alice/widget#12`` links to
todo's page of that ticket when the site has todo: its origin is in the
config, and that is all lists knows of it), and a patch's diff
highlighted."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from srht_core import RenderedFile, current_service, render_file

__all__ = ["Part", "render_text", "split_patch"]

TICKET = re.compile(
    r"(?<![\w/~.-])~(?P<owner>[a-z_][a-z0-9_-]{0,63})/(?P<tracker>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    r"#(?P<number>\d{1,9})\b"
)
URL = re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
#: Quoted passages longer than this many lines are folded.
FOLD_AFTER = 4


def _links(line: str, todo: str | None) -> str:
    """One escaped line with its URLs and ticket references as links."""
    out = []
    position = 0
    patterns = [URL] + ([TICKET] if todo else [])
    spans: list[tuple[int, int, str]] = []
    for pattern in patterns:
        for match in pattern.finditer(line):
            if any(start < match.end() and match.start() < end for start, end, _ in spans):
                continue
            if pattern is URL:
                href = match[0]
            else:
                href = f"{todo}/~{match['owner']}/{match['tracker']}/{match['number']}"
            spans.append((match.start(), match.end(), href))
    for start, end, href in sorted(spans):
        out.append(str(escape(line[position:start])))
        out.append(
            f'<a href="{escape(href)}" rel="nofollow noopener">{escape(line[start:end])}</a>'
        )
        position = end
    out.append(str(escape(line[position:])))
    return "".join(out)


def render_text(text: str) -> Markup:
    """``text`` as HTML for a ``<pre>``: every character escaped."""
    todo = current_service().origins.get("todo")
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    out: list[str] = []
    quoted: list[str] = []

    def flush() -> None:
        if not quoted:
            return
        block = "\n".join(_links(line, todo) for line in quoted)
        if len(quoted) > FOLD_AFTER:
            out.append(
                f'<details class="quote"><summary>{len(quoted)} quoted lines</summary>'
                f'<span class="quoted">{block}</span></details>'
            )
        else:
            out.append(f'<span class="quoted">{block}</span>')
        quoted.clear()

    for line in lines:
        if line.startswith(">"):
            quoted.append(line)
            continue
        flush()
        out.append(_links(line, todo))
    flush()
    html = "\n".join(out)
    return Markup(html)  # noqa: S704 - every piece of text went through escape()


@dataclass(frozen=True)
class Part:
    """A patch's text: the commit message and notes, and its diff."""

    message: str
    diff: RenderedFile | None


_DIFF_START = re.compile(r"^(diff --git |Index: |--- \S)", re.M)


def split_patch(text: str, anchor: str) -> Part:
    """The message above a patch's diff, and the diff highlighted (lines
    anchored ``#<anchor><n>``)."""
    match = _DIFF_START.search(text)
    if match is None:
        return Part(text, None)
    diff = text[match.start() :]
    # git's signature under the diff ("-- \n2.39.5") is not part of it.
    diff = re.split(r"^-- $", diff, maxsplit=1, flags=re.M)[0]
    return Part(text[: match.start()], render_file("patch.diff", diff, anchor=anchor))
