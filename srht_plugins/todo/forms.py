"""The forms of todo's pages. They check what a browser can get wrong
(missing fields, lengths); the rules of the domain (names, colours, who may
do what) are checked once, in ``tickets``, for pages and API alike."""

from __future__ import annotations

from typing import Any

from wtforms import ColorField, Field, StringField, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from srht_core import Form

from .events import EVENTS
from .models import ACCESS_NAMES, RESOLUTIONS, VISIBILITIES

VISIBILITY_CHOICES = [
    ("public", "Public: listed on your profile, open to the access below"),
    ("unlisted", "Unlisted: open to the access below for anyone with the link, not listed"),
    ("private", "Private: only you and the users you name"),
]
assert [v for v, _ in VISIBILITY_CHOICES] == list(VISIBILITIES)
ACCESS_CHOICES = [(name, name.capitalize()) for name in ACCESS_NAMES]
RESOLUTION_CHOICES = [(r, r.replace("_", " ").capitalize()) for r in RESOLUTIONS]


class ChoiceField(Field):
    """One value out of ``choices``, shown by the template as radio buttons
    or a select (``todo/macros.html``); wtforms' own choice fields change
    their API between the versions we support."""

    def __init__(self, label: str, choices: list[tuple[str, str]], **kwargs: Any):
        values = [value for value, _label in choices]
        super().__init__(label, [AnyOf(values, message="Choose one of the options.")], **kwargs)
        self.choices = choices

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist:  # absent: keep the default
            self.data = valuelist[0]


class CheckboxesField(Field):
    """Any number of values out of ``choices``: a list of checkboxes."""

    def __init__(self, label: str, choices: list[tuple[str, str]], **kwargs: Any):
        kwargs.setdefault("default", [])
        super().__init__(label, **kwargs)
        self.choices = choices

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(valuelist)

    def pre_validate(self, form: Any) -> None:
        values = {value for value, _label in self.choices}
        for chosen in self.data or ():
            if chosen not in values:
                raise ValueError(f"{chosen!r} is not one of the options.")


class TrackerForm(Form):
    name = StringField("Name", validators=[InputRequired(), Length(max=128)])
    description = TextAreaField("Description (Markdown)", validators=[Length(max=65536)])
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES, default="public")


class TrackerSettingsForm(Form):
    description = TextAreaField("Description (Markdown)", validators=[Length(max=65536)])
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES)
    anonymous_access = CheckboxesField("What anyone may do, signed in or not", ACCESS_CHOICES)
    user_access = CheckboxesField("What any signed-in user may do", ACCESS_CHOICES)


class AccessForm(Form):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    access = CheckboxesField("May", ACCESS_CHOICES, default=["browse"])


class TicketForm(Form):
    title = StringField("Title", validators=[InputRequired(), Length(max=512)])
    description = TextAreaField("Description (Markdown)", validators=[Length(max=65536)])


class CommentForm(Form):
    text = TextAreaField("Comment (Markdown)", validators=[Length(max=65536)])
    resolution = ChoiceField("Resolution", RESOLUTION_CHOICES, default="fixed")


class LabelForm(Form):
    name = StringField("Name", validators=[InputRequired(), Length(max=64)])
    color = ColorField("Colour", validators=[InputRequired()], default="#0b5cad")


class AssignForm(Form):
    username = StringField("Assign to (username)", validators=[InputRequired(), Length(max=64)])


class WebhookForm(Form):
    url = StringField("URL", validators=[InputRequired(), Length(max=2048)])
    events = CheckboxesField("Events", [(e.name, f"{e.name}: {e.description}") for e in EVENTS])
