"""paste's pages from the outside: creating a paste with the form (CSRF
token from the page), more file slots without JavaScript, highlighting and
line anchors, raw and download views, a user's list, deleting, and what
the form refuses."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from srht_core import state_of
from srht_plugins.paste.web.files import download_disposition

from .conftest import PasteSite, csrf_token, text

pytestmark = pytest.mark.postgres


def slug_of(response: Any) -> str:
    assert response.status_code == 303, text(response)[-2000:]
    return urlsplit(response.headers["Location"]).path.rsplit("/", 1)[-1]


def test_anonymous_visitors_are_sent_to_meta_to_log_in(paste_site: PasteSite) -> None:
    answer = paste_site.browser().get("/")
    assert answer.status_code == 302
    meta = paste_site.state.origins["meta"]
    assert answer.headers["Location"].startswith(meta + "/login?return_to=")


def test_create_a_paste_with_the_form_and_read_it_back(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    browser = paste_site.browser(alice)
    created = browser.create([("hello.py", "def greet():\r\n    return 'hi'\r\n")], "public")
    slug = slug_of(created)
    assert created.headers["Location"].endswith(f"/~alice/{slug}")

    page = browser.get(f"/~alice/{slug}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "hello.py" in body and "Python" in body
    assert '<span class="k">def</span>' in body
    # Each line is an anchor, and its number links to it.
    assert '<tr id="L2"><td class="ln"><a href="#L2">2</a></td>' in body

    raw = browser.get(f"/~alice/{slug}/raw/1")
    # Browsers send CRLF from text areas; the paste keeps Unix line breaks.
    assert raw.get_data(as_text=True) == "def greet():\n    return 'hi'\n"


def test_another_file_slot_comes_from_a_button_not_javascript(paste_site: PasteSite) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    first = browser.get("/").get_data(as_text=True)
    assert 'name="files-0-content"' in first and 'name="files-1-content"' not in first
    more = browser.post(
        "/",
        data={
            "csrf_token": csrf_token(first),
            "visibility": "unlisted",
            "files-0-filename": "a.txt",
            "files-0-content": "one",
            "add_file": "1",
        },
    )
    assert more.status_code == 200
    shown = more.get_data(as_text=True)
    assert 'name="files-1-content"' in shown
    assert 'value="a.txt"' in shown and "\none</textarea>" in shown

    created = browser.post(
        "/",
        data={
            "csrf_token": csrf_token(shown),
            "visibility": "unlisted",
            "create": "1",
            "files-0-filename": "a.txt",
            "files-0-content": "one",
            "files-1-filename": "b.rs",
            "files-1-content": "fn main() {}\n",
        },
    )
    slug = slug_of(created)
    body = browser.get(f"/~alice/{slug}").get_data(as_text=True)
    assert "a.txt" in body and "b.rs" in body and "Rust" in body
    # Lines of the second file have their own anchors.
    assert 'id="F2-L1"' in body and 'href="#F2-L1"' in body


def test_blank_extra_slots_are_ignored(paste_site: PasteSite) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    slug = slug_of(browser.create([("", ""), ("notes.txt", "remember"), ("", "")]))
    body = text(browser.get(f"/~alice/{slug}"))
    assert "notes.txt" in body and "1 file" in body


@pytest.mark.parametrize(
    ("filename", "content", "language", "token"),
    [
        ("main.py", "import os\n", "Python", '<span class="kn">import</span>'),
        ("Makefile", "all:\n\techo hi\n", "Makefile", "echo"),
        ("lib.rs", "pub fn f() {}\n", "Rust", '<span class="k">pub</span>'),
        ("", "#!/bin/sh\necho hello\n", "Bash", '<span class="nb">echo</span>'),
        ("notes", "Just a few words, nothing more.\n", "Plain text", "Just a few words"),
    ],
)
def test_highlighting_from_the_name_else_the_content(
    paste_site: PasteSite, filename: str, content: str, language: str, token: str
) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    slug = slug_of(browser.create([(filename, content)]))
    body = browser.get(f"/~alice/{slug}").get_data(as_text=True)
    assert f"{language} · " in body
    assert token in body


def test_raw_and_download_views(paste_site: PasteSite) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    slug = slug_of(browser.create([("page.html", "<script>alert(1)</script>\n")]))
    for view in ("raw", "download"):
        answer = browser.get(f"/~alice/{slug}/{view}/1")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in answer.headers["Content-Security-Policy"]
        assert answer.get_data(as_text=True) == "<script>alert(1)</script>\n"
    download = browser.get(f"/~alice/{slug}/download/1")
    assert download.headers["Content-Disposition"] == 'attachment; filename="page.html"'
    assert "Content-Disposition" not in browser.get(f"/~alice/{slug}/raw/1").headers
    assert browser.get(f"/~alice/{slug}/raw/2").status_code == 404


def test_a_users_list_shows_what_the_viewer_may_see(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    bob = paste_site.user("bob")
    owner = paste_site.browser(alice)
    slugs = {
        v: slug_of(owner.create([(f"{v}.txt", v)], v)) for v in ("public", "unlisted", "private")
    }

    mine = text(owner.get("/~alice"))
    assert all(slug in mine for slug in slugs.values())
    for viewer in (paste_site.browser(), paste_site.browser(bob)):
        listed = text(viewer.get("/~alice"))
        assert slugs["public"] in listed and "public.txt" in listed
        assert slugs["unlisted"] not in listed and slugs["private"] not in listed
        assert "private.txt" not in listed
    assert paste_site.browser().get("/~nobody").status_code == 404


def test_the_owner_deletes_a_paste_after_confirming(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    bob = paste_site.user("bob")
    owner = paste_site.browser(alice)
    slug = slug_of(owner.create([("x.txt", "bye"), ("", "and this")], "public"))
    path = f"/~alice/{slug}/delete"

    other = paste_site.browser(bob)
    assert other.get(path).status_code == 404
    token = csrf_token(other.get("/").get_data(as_text=True))
    refused = other.post(path, data={"csrf_token": token, "confirmed": "yes"})
    assert refused.status_code == 404
    # A forged form (no token from the page) deletes nothing either.
    assert owner.post(path, data={"confirmed": "yes"}).status_code == 400
    assert owner.get(f"/~alice/{slug}").status_code == 200

    # The paste page leads to the question, which says what will be lost.
    assert f'href="{path}"' in text(owner.get(f"/~alice/{slug}"))
    question = owner.get(path)
    assert question.status_code == 200
    shown = text(question)
    assert "Delete x.txt?" in shown and "It holds 2 files: x.txt, File 2." in shown
    assert "cannot be undone" in shown and f'href="/~alice/{slug}"' in shown
    # Posting without the page's answer (a link prefetched, say) asks again.
    token = csrf_token(question.get_data(as_text=True))
    assert owner.post(path, data={"csrf_token": token}).status_code == 200
    assert owner.get(f"/~alice/{slug}").status_code == 200

    done = owner.submit(path, {})
    assert done.status_code == 303 and urlsplit(done.headers["Location"]).path == "/~alice"
    assert "x.txt is deleted." in text(owner.get("/~alice"))
    assert owner.get(f"/~alice/{slug}").status_code == 404
    assert owner.get(f"/~alice/{slug}/raw/1").status_code == 404


def _listed_names(page: str) -> dict[str, str]:
    """slug -> the name the list links it by."""
    return dict(re.findall(r'<td><a href="/~alice/([0-9a-f]{16})">([^<]*)</a>', page))


def _crumbs(page: str) -> list[str]:
    header = re.search(r'<h1 class="crumbs">(.*?)</h1>', page, re.DOTALL)
    assert header, "no page header"
    return [
        html.unescape(re.sub(r"<[^>]+>", "", part)).strip()
        for part in re.findall(r"<(?:a|span)(?: href=\"[^\"]*\")?>(.*?)</(?:a|span)>", header[1])
    ]


def test_the_list_and_the_page_name_a_paste_alike(paste_site: PasteSite) -> None:
    """The first file's name, or "Untitled paste" and the paste's id."""
    browser = paste_site.browser(paste_site.user("alice"))
    named = slug_of(browser.create([("notes.md", "# hi"), ("b.txt", "b")], "public"))
    unnamed = slug_of(browser.create([("", "no name"), ("second.txt", "x")], "public"))
    expected = {named: "notes.md", unnamed: f"Untitled paste {unnamed}"}

    listed = _listed_names(browser.get("/~alice").get_data(as_text=True))
    assert listed == expected
    for slug, name in expected.items():
        page = browser.get(f"/~alice/{slug}").get_data(as_text=True)
        assert _crumbs(page) == ["~alice", name]
        assert re.search(r"<title>([^<]*)</title>", page)[1].startswith(f"{name} · ~alice")


def test_every_problem_of_the_form_at_once(paste_make_site: Callable[..., PasteSite]) -> None:
    site = paste_make_site({"max-file-size": "100"})
    browser = site.browser(site.user("alice"))
    refused = browser.create(
        [("a.txt", ""), ("", ""), ("a.txt", "y"), ("big.txt", "x" * 101)], "public"
    )
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    # Blank slots are dropped, so the form comes back numbered as its
    # problems are: what was the third slot is File 2 now.
    listed = re.findall(r'<li><a href="#([^"]+)">([^<]+)</a>: ([^<]+)</li>', html.unescape(page))
    assert listed == [
        ("files-0-content", "File 1: Contents", "A file needs contents."),
        (
            "files-2-filename",
            "File 2: File name",
            "File 1 has this name already; give each file its own.",
        ),
        (
            "files-3-content",
            "File 3: Contents",
            "This file is 101 bytes; a file may be at most 100 bytes.",
        ),
    ]
    for target, _label, _reason in listed:
        assert f'id="{target}"' in page
    assert re.findall(r"<legend>(File \d+)</legend>", page) == ["File 1", "File 2", "File 3"]
    assert 'name="files-1-content"' not in page  # the blank slot
    assert 'value="big.txt"' in page  # what was typed comes back


def test_pages_are_built_from_the_kit(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    owner, visitor = paste_site.browser(alice), paste_site.browser()
    empty = text(owner.get("/~alice"))
    assert 'class="empty"' in empty and "You have no pastes yet." in empty
    assert 'href="/">New paste</a>' in empty
    assert "No public pastes of ~alice to show." in text(visitor.get("/~alice"))

    slug = slug_of(owner.create([("a.py", "x = 1\n")], "private"))
    mine = owner.get("/~alice").get_data(as_text=True)
    assert '<div class="table-scroll"' in mine and '<table class="list' in mine
    assert '<span class="badge badge-private">Private</span>' in mine
    page = owner.get(f"/~alice/{slug}").get_data(as_text=True)
    assert '<header class="page">' in page
    assert '<span class="badge badge-private">Private</span>' in page
    assert "1 file, created " in text(owner.get(f"/~alice/{slug}"))
    form = owner.get("/").get_data(as_text=True)
    assert '<fieldset id="visibility" class="choices' in form
    assert re.search(
        r'value="unlisted" checked>\s*<label for="visibility-1">Unlisted</label>', form
    )
    assert "anyone with the link can see it" in form


@pytest.mark.parametrize(
    ("path", "signed_in", "message"),
    [
        ("/~nobody", False, "No user ~nobody has pastes here."),
        ("/~alice/0123456789abcdef", False, "~alice has no paste 0123456789abcdef here."),
        ("/~alice/0123456789abcdef/raw/1", False, "~alice has no paste 0123456789abcdef here."),
        ("/~alice/{slug}/raw/9", False, "Paste {slug} has no file 9."),
        ("/~alice/{private}", False, "~alice has no paste {private} here."),
        ("/~alice/{slug}/delete", True, "~alice has no paste {slug} of yours."),
    ],
)
def test_not_found_says_what_is_missing(
    paste_site: PasteSite, path: str, signed_in: bool, message: str
) -> None:
    owner = paste_site.browser(paste_site.user("alice"))
    slugs = {
        "slug": slug_of(owner.create([("a.txt", "a")], "public")),
        "private": slug_of(owner.create([("b.txt", "b")], "private")),
    }
    bob = paste_site.user("bob")
    browser = paste_site.browser(bob if signed_in else None)
    answer = browser.get(path.format(**slugs))
    assert answer.status_code == 404
    assert message.format(**slugs) in text(answer)
    assert "b.txt" not in text(answer)


def test_forms_without_the_csrf_token_are_refused(paste_site: PasteSite) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    refused = browser.post(
        "/", data={"files-0-content": "x", "visibility": "public", "create": "1"}
    )
    assert refused.status_code == 400
    assert "/~alice/" not in text(browser.get("/~alice"))


# -- hostile input ---------------------------------------------------------------


def test_size_limits_from_the_config(paste_make_site: Callable[..., PasteSite]) -> None:
    site = paste_make_site({"max-file-size": "100", "max-paste-size": "150"})
    browser = site.browser(site.user("alice"))
    big = browser.create([("big.txt", "x" * 101)])
    assert big.status_code == 400
    assert "This file is 101 bytes; a file may be at most 100 bytes." in text(big)
    # Counted in bytes of UTF-8: 40 three-byte characters are 120 bytes.
    assert browser.create([("wide.txt", "€" * 40)]).status_code == 400

    together = browser.create([("a.txt", "a" * 80), ("b.txt", "b" * 80)])
    assert together.status_code == 400
    assert "This paste is 160 bytes in all; a paste may be at most 150 bytes." in text(together)
    assert slug_of(browser.create([("a.txt", "a" * 75), ("b.txt", "b" * 75)]))


@pytest.mark.parametrize(
    ("files", "visibility", "message"),
    [
        ([("", "")], "public", "A paste needs at least one file with contents."),
        ([("named.txt", "")], "public", "A file needs contents."),
        ([("a.txt", "x")], "secret", "Choose public, unlisted or private."),
        ([("a.txt", "x"), ("a.txt", "y")], "public", "File 1 has this name already"),
        ([("a.txt", "nul \x00 byte")], "public", "This is not text"),
        ([("x" * 256, "x")], "public", "at most 255 characters"),
    ],
)
def test_what_the_form_refuses(
    paste_site: PasteSite, files: list[tuple[str, str]], visibility: str, message: str
) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    refused = browser.create(files, visibility)
    assert refused.status_code == 400
    assert message in text(refused)
    # The form comes back filled in, with the error next to its field.
    assert 'class="errors"' in refused.get_data(as_text=True) or "flash error" in refused.get_data(
        as_text=True
    )
    assert "/~alice/" not in text(paste_site.browser().get("/~alice"))


def test_script_in_content_and_file_name_is_shown_as_text(paste_site: PasteSite) -> None:
    alice = paste_site.user("alice")
    browser = paste_site.browser(alice)
    hostile = "<script>alert('name')</script>.html"
    slug = slug_of(browser.create([(hostile, "<script>alert('body')</script>\n")], "public"))
    for path in (f"/~alice/{slug}", "/~alice", f"/~alice/{slug}/delete"):
        body = browser.get(path).get_data(as_text=True)
        assert "<script>" not in body, path
        assert "&lt;script&gt;" in body, path


def test_file_names_with_paths_and_quotes_download_safely(paste_site: PasteSite) -> None:
    browser = paste_site.browser(paste_site.user("alice"))
    name = '../../etc/"pass"wd;.txt'
    slug = slug_of(browser.create([(name, "x")]))
    header = browser.get(f"/~alice/{slug}/download/1").headers["Content-Disposition"]
    assert header == 'attachment; filename="passwd.txt"'
    assert browser.get(f"/~alice/{slug}").status_code == 200


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("a/b\\c.txt", 'attachment; filename="c.txt"'),
        ("..", 'attachment; filename="paste-s-1.txt"'),
        (".bashrc", 'attachment; filename="bashrc"'),
        ("", 'attachment; filename="paste-s-1.txt"'),
        (
            "naïve café.txt",
            "attachment; filename=\"na_ve_caf_.txt\"; filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt",
        ),
        (
            'x"; filename="evil.exe',
            'attachment; filename="x_filename_evil.exe"; '
            "filename*=UTF-8''x%20filename%3Devil.exe",
        ),
    ],
)
def test_download_disposition(filename: str, expected: str) -> None:
    assert download_disposition(filename, "paste-s-1.txt") == expected
    assert re.fullmatch(
        r'attachment; filename="[A-Za-z0-9._-]+"(; filename\*=\S+)?',
        download_disposition(filename, "paste-s-1.txt"),
    )


def test_a_page_kept_for_anonymous_visitors_follows_the_paste(paste_site: PasteSite) -> None:
    """Visitors without cookies get the paste page from srht_core's page
    cache, but only while the paste is there for them to see, and as it is
    now: private, renamed or deleted shows at once."""
    from srht_plugins.paste.models import Paste, User

    alice = paste_site.user("alice")
    owner = paste_site.browser(alice)
    slug = slug_of(owner.create([("a.py", "x = 1\n")], "public"))
    visitor = paste_site.browser()
    pages = [visitor.get(f"/~alice/{slug}") for _ in range(3)]
    assert all(page.status_code == 200 and "Set-Cookie" not in page.headers for page in pages)
    assert pages[0].get_data() == pages[2].get_data()
    assert state_of(paste_site.app).page_cache.hits == 2

    def change(**values: Any) -> None:
        with paste_site.db() as session:
            paste = session.query(Paste).filter_by(slug=slug).one()
            for name, value in values.items():
                setattr(paste, name, value)

    change(visibility="private")
    assert visitor.get(f"/~alice/{slug}").status_code == 404
    assert owner.get(f"/~alice/{slug}").status_code == 200
    change(visibility="unlisted")
    assert "unlisted" in text(visitor.get(f"/~alice/{slug}"))

    with paste_site.db() as session:
        session.get(User, alice).username = "alicia"
    assert visitor.get(f"/~alice/{slug}").status_code == 404
    assert 'href="/~alicia"' in text(visitor.get(f"/~alicia/{slug}"))

    assert owner.submit(f"/~alicia/{slug}/delete", {}).status_code == 303
    assert visitor.get(f"/~alicia/{slug}").status_code == 404


def test_a_kept_paste_page_answers_without_a_query_until_its_row_changes(
    paste_site: PasteSite,
) -> None:
    """On PostgreSQL a visitor without cookies gets the kept page with no
    query at all (the paste and user tables are watched, migration
    paste0003); a change written by another worker (here, another
    connection) drops it when the notification arrives."""
    import sqlalchemy as sa
    from support import wait_until

    db = state_of(paste_site.app).db
    alice = paste_site.user("alice")
    slug = slug_of(paste_site.browser(alice).create([("a.py", "x = 1\n")], "public"))
    visitor = paste_site.browser()
    assert db.row_feed().wait_live()
    assert visitor.get(f"/~alice/{slug}").status_code == 200

    def kept_without_a_query() -> bool:
        # PostgreSQL's notices of the writes above may arrive after the
        # first view and drop it once.
        with db.count_statements() as statements:
            answered = visitor.get(f"/~alice/{slug}").status_code == 200
        return answered and statements[0] == 0

    wait_until(kept_without_a_query, what="a view answered from the kept page")

    elsewhere = sa.create_engine(db.url)
    try:
        with elsewhere.begin() as connection:
            connection.execute(sa.text("UPDATE paste SET visibility = 'private'"))
        wait_until(
            lambda: visitor.get(f"/~alice/{slug}").status_code == 404,
            what="the paste made private to be 404",
        )
    finally:
        elsewhere.dispose()
