"""The forms of git's pages. They check what a browser can get wrong
(lengths, choices); the rules of the domain (names, who may be given
access) are checked once, by the operations in ``repos``, for pages and
API alike, and a :class:`srht_core.Problem` they raise is shown at its
field (``form.show``). The core's macros render them (``m.form``)."""

from __future__ import annotations

from wtforms import StringField, TextAreaField
from wtforms.validators import Length

from srht_core import ChoiceField, Form

from .models import MODES, READ, VISIBILITIES
from .repos import MAX_DESCRIPTION, MAX_NAME

VISIBILITY_CHOICES = [
    ("public", "Public: anyone can see and clone it, and it is listed on your page"),
    ("unlisted", "Unlisted: anyone with the link can see and clone it"),
    ("private", "Private: only you and those you give access can see it"),
]
assert [v for v, _ in VISIBILITY_CHOICES] == list(VISIBILITIES)
MODE_CHOICES = [("ro", "Read: browse, clone and fetch"), ("rw", "Read and write: also push")]
assert [m for m, _ in MODE_CHOICES] == list(MODES)
NAME_HELP = (
    f"Up to {MAX_NAME} letters, digits, dots, dashes and underscores; it becomes part of the URL."
)
DESCRIPTION_HELP = f"Optional: what it is, in at most {MAX_DESCRIPTION} characters."
NAME_KW = {"spellcheck": "false", "autocomplete": "off"}


class CreateForm(Form):
    name = StringField(
        "Name",
        validators=[Length(max=MAX_NAME)],
        description=NAME_HELP,
        render_kw={"autofocus": True, **NAME_KW},
    )
    description = TextAreaField(
        "Description",
        validators=[Length(max=MAX_DESCRIPTION)],
        description=DESCRIPTION_HELP,
        render_kw={"rows": 2},
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES, default="public")


def details_form(branches: list[str], **data: object) -> Form:
    """The form of a repository's details, its default branch one of
    ``branches`` (or none, before the first push)."""

    class DetailsForm(Form):
        description = TextAreaField(
            "Description",
            validators=[Length(max=MAX_DESCRIPTION)],
            description=DESCRIPTION_HELP,
            render_kw={"rows": 2},
        )
        visibility = ChoiceField("Visibility", VISIBILITY_CHOICES)
        default_branch = ChoiceField(
            "Default branch",
            [(b, b) for b in branches] or [("", "(nothing pushed yet)")],
            select=True,
            description="The branch the summary shows and clones check out.",
        )

    return DetailsForm(data=data)


class RenameForm(Form):
    name = StringField(
        "New name",
        validators=[Length(max=MAX_NAME)],
        description="The old name keeps leading here (web, clone and push) until you make "
        "another repository with it.",
        render_kw=NAME_KW,
    )


class GrantForm(Form):
    username = StringField(
        "User",
        validators=[Length(max=64)],
        description="Their username; they must have signed in here once.",
        render_kw=NAME_KW,
    )
    mode = ChoiceField("Access", MODE_CHOICES, default=READ)
