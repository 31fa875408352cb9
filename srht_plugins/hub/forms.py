"""The forms of hub's pages. They check what a browser can get wrong; the
rules of projects are checked once, in ``projects``, for pages and API."""

from __future__ import annotations

from wtforms import StringField, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from srht_core import ChoiceField, Form

from .models import MAX_DESCRIPTION, MAX_NAME, MAX_README, VISIBILITIES

VISIBILITY_CHOICES = [
    ("public", "Public: anyone may see it, and it is listed on explore and your profile"),
    ("unlisted", "Unlisted: anyone with the link may see it; not listed"),
    ("private", "Private: only you"),
]
assert [v for v, _ in VISIBILITY_CHOICES] == list(VISIBILITIES)


class ProjectForm(Form):
    name = StringField(
        "Name",
        validators=[InputRequired(), Length(max=MAX_NAME)],
        description="Letters, digits, dots, dashes and underscores, starting with a letter "
        "or digit; it becomes part of the project's URL.",
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    description = StringField(
        "Description", validators=[Length(max=MAX_DESCRIPTION)], description="One line."
    )
    readme = TextAreaField(
        "README",
        validators=[Length(max=MAX_README)],
        description="Markdown, shown on the project's page.",
        render_kw={"rows": 10},
    )
    tags = StringField(
        "Tags",
        description="Up to 10, separated by spaces or commas: lower-case letters, digits, "
        "dots, pluses and dashes.",
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES, default="public")


class AttachForm(Form):
    resource = ChoiceField("Resource", [], select=True)

    def offer(self, choices: list[tuple[str, str]]) -> None:
        """Offer ``choices`` (known only once the services were asked)."""
        self.resource.choices = choices
        values = [value for value, _label in choices]
        message = "Choose one of your resources that is not attached yet."
        self.resource.validators = [AnyOf(values, message=message)]
