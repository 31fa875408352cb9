"""srht_core.highlight: files as pages show them, highlighted by Pygments,
one anchored table row per line."""

from __future__ import annotations

from srht_core import render_file
from srht_core.highlight import GUESS_SAMPLE, HIGHLIGHT_LIMIT, choose_lexer


def test_the_lexer_comes_from_the_name_before_the_content() -> None:
    assert choose_lexer("setup.py", "<html></html>").name == "Python"
    assert choose_lexer("index.html", "import os").name == "HTML"
    assert choose_lexer("", "#!/usr/bin/env python3\nprint(1)\n").name == "Python"
    assert choose_lexer("", "").name == "Text only"
    assert choose_lexer("unknown.zzz", "plain words").name == "Text only"


def test_guessing_reads_only_the_start_of_a_file() -> None:
    # The shebang is beyond the sample, so nothing is found from content.
    text = " " * GUESS_SAMPLE + "#!/usr/bin/env python\n"
    assert choose_lexer("", text).name == "Text only"


def test_huge_files_are_shown_plain_with_every_line_numbered() -> None:
    big = "def f():\n" * (HIGHLIGHT_LIMIT // 9 + 1)
    shown = render_file("big.py", big)
    assert not shown.highlighted and shown.language == "Plain text"
    assert shown.lines == big.count("\n")
    assert f'id="L{shown.lines}"' in shown.html


def test_line_numbers_match_the_file() -> None:
    shown = render_file("a.py", "\n\nx = '''\nmulti\nline'''\n\n", anchor="F3-L")
    assert shown.lines == 6
    assert shown.html.count("<tr ") == 6
    assert 'id="F3-L6"' in shown.html and 'href="#F3-L1"' in shown.html
    # The same text elsewhere on a page gets its own anchors, not the kept ones.
    first = render_file("a.py", "\n\nx = '''\nmulti\nline'''\n\n")
    assert 'id="L6"' in first.html and "F3-L" not in first.html
    # A string spanning lines is closed and reopened on each line.
    for row in shown.html.split("<tr ")[1:]:
        assert row.count("<span") == row.count("</span>")
