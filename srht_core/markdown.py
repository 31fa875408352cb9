"""Markdown rendered safely: CommonMark with tables and strikethrough, bare
http(s) URLs made links (linkify-it-py), code fences highlighted by
Pygments, and the HTML cleaned by nh3 (ammonia) so that nothing a user
writes can run script or break the page."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from .cache import BoundedCache
from .highlight import highlighted

__all__ = ["render_markdown"]

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}


def _highlight(code: str, lang: str, _attrs: str) -> str:
    if not lang:
        return ""
    try:
        lexer = get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    # markdown-it uses a result starting with <pre as the whole block.
    body = highlighted(code, lexer)
    return f'<pre class="highlight"><code>{body}</code></pre>\n'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "highlight": _highlight})
    md.enable(["table", "strikethrough", "linkify"])
    # Only URLs written with their scheme: "setup.py" or "a@b" in a ticket is
    # not a link to a host of that name.
    assert md.linkify is not None  # set by the "linkify" option above
    md.linkify.set({"fuzzy_link": False, "fuzzy_email": False})
    return md


#: Rendered Markdown kept per process, by a hash of the text: a README, a
#: ticket or a comment is shown again and again, and rendering it costs
#: 1-3 ms (parsing, highlighting, sanitizing) where the lookup costs 10 µs.
_rendered: BoundedCache[bytes, Markup] = BoundedCache(
    10_000, max_weight=16 * 1024 * 1024, weigh=len
)


def render_markdown(text: str | None) -> Markup:
    """Render ``text`` as Markdown into sanitized HTML, safe to put in a page.
    Each process keeps its recent renderings (by a hash of the text, within
    16 MiB), so showing the same text again costs a lookup.

    .. versionchanged:: 0.1
       Bare ``http``/``https`` URLs are links (written with their scheme
       only: ``setup.py`` stays text).
    """
    digest = hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).digest()
    return _rendered.get_or_make(digest, lambda: _render(text or ""))


def _render(text: str) -> Markup:
    html = _parser().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above
